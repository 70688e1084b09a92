// The vSphere About parser and the endpoint a libvirt URI implies. The sample answer is what
// govmomi's simulator sent (tests/data/esxi/vcsim-service-content.xml); the ESXi 4.1 one is the
// seed's host in the shape real ESX(i) sends (other prefixes, no XML declaration).
#include "plugins/esxi/vsphere.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "inventory/version.h"
#include "plugins/esxi/testing.h"

namespace labctl::esxi {
namespace {

std::string read(const std::string& rel) {
  std::ifstream in(std::string(LABCTL_SOURCE_DIR) + "/" + rel, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string envelope(const std::string& body, const std::string& prefix = "soapenv") {
  return "<" + prefix + ":Envelope xmlns:" + prefix +
         "=\"http://schemas.xmlsoap.org/soap/envelope/\"><" + prefix + ":Body>" + body + "</" +
         prefix + ":Body></" + prefix + ":Envelope>";
}

std::string about(const std::string& version, const std::string& build) {
  return "<RetrieveServiceContentResponse xmlns=\"urn:vim25\"><returnval><about><name>VMware "
         "ESXi</name><fullName>VMware ESXi " +
         version + " build-" + build + "</fullName><vendor>VMware, Inc.</vendor><version>" +
         version + "</version><build>" + build +
         "</build><apiType>HostAgent</apiType><apiVersion>4.1</apiVersion>"
         "<productLineId>embeddedEsx</productLineId></about></returnval>"
         "</RetrieveServiceContentResponse>";
}

TEST(ParseAbout, ReadsTheSimulatorsServiceContent) {
  const std::string xml = read("tests/data/esxi/vcsim-service-content.xml");
  ASSERT_FALSE(xml.empty());
  auto a = parse_about(xml);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->name, "VMware ESXi");
  EXPECT_EQ(a->full_name, "VMware ESXi 6.5.0 build-5969303");
  EXPECT_EQ(a->version, "6.5.0");
  EXPECT_EQ(a->build, "5969303");
  EXPECT_EQ(a->api_type, "HostAgent");
  EXPECT_EQ(a->api_version, "6.5");
  EXPECT_EQ(a->product_line, "embeddedEsx");
  EXPECT_EQ(a->version_text(), "6.5.0 build 5969303");
}

TEST(ParseAbout, VersionTextIsWhatTheCatalogsSchemeReads) {
  auto a = parse_about(envelope(about("4.1.0", "260247"), "soap"));
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->version_text(), "4.1.0 build 260247");
  auto v = inventory::parse_version(inventory::VersionScheme::Esxi, a->version_text());
  ASSERT_TRUE(v) << v.error().message();
  auto target = inventory::parse_version(inventory::VersionScheme::Esxi, "4.1.0 build 260247");
  ASSERT_TRUE(target);
  EXPECT_TRUE(inventory::same_version(*v, *target));
  // Without a build the text is the version alone.
  auto nobuild = parse_about(envelope(about("6.0.0", "")));
  ASSERT_TRUE(nobuild) << nobuild.error().message();
  EXPECT_EQ(nobuild->version_text(), "6.0.0");
}

TEST(ParseAbout, SoapFaultGivesItsFaultstring) {
  auto a = parse_about(envelope(
      "<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Unsupported version "
      "URI</faultstring></soapenv:Fault>"));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), Errc::NotSupported);
  EXPECT_NE(a.error().message().find("Unsupported version URI"), std::string::npos);
}

TEST(ParseAbout, RefusesWhatIsNotAnAboutWithAVersion) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not XML"},
      {"<html><body>login</body></html>", "not a SOAP envelope"},
      {"<soapenv:Envelope xmlns:soapenv=\"x\"/>", "no SOAP Body"},
      {envelope("<RetrieveServiceContentResponse/>"), "no ServiceContent.about"},
      {envelope(about("6.5.0; reboot", "1")), "not a dotted version"},
      {envelope(about(".5", "1")), "not a dotted version"},
      {envelope(about("6..5", "1")), "not a dotted version"},
      {envelope(about("", "1")), "not a dotted version"},
      {envelope(about("6.5.0.1", "1")), "at most three numbers"},
      {envelope(about("6.5.1234567890", "1")), "not a dotted version"},
      {envelope(about("6.5.0", "12a")), "not a build number"},
      {envelope(about("6.5.0", "1234567890123")), "not a build number"},
  };
  for (const auto& [xml, why] : cases) {
    auto a = parse_about(xml);
    ASSERT_FALSE(a) << xml;
    EXPECT_EQ(a.error().code(), Errc::InvalidInput) << xml;
    EXPECT_NE(a.error().message().find(why), std::string::npos) << a.error().message();
  }
  EXPECT_FALSE(parse_about(std::string(2u << 20, ' ')));
}

TEST(ParseAbout, TextThatIsNotUtf8IsReplacedNotPassedOn) {
  // Found by the fuzzer: an invalid byte in apiType made the probe's JSON throw when printed.
  auto a = parse_about(envelope(about("4.1.0", "260247"))
                           .replace(envelope(about("4.1.0", "260247")).find("HostAgent"), 9,
                                    "Host\x94"
                                    "ent"));
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->api_type,
            "Host\xEF\xBF\xBD"
            "ent");
  EXPECT_NO_THROW((void)a->to_json().dump());
  auto fault =
      parse_about(envelope("<soapenv:Fault><faultstring>bad \xff</faultstring></soapenv:Fault>"));
  ASSERT_FALSE(fault);
  EXPECT_NO_THROW((void)nlohmann::json(fault.error().message()).dump());
  EXPECT_EQ(valid_utf8("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(VsphereEndpoint, FollowsTheLibvirtUri) {
  struct Case {
    std::string uri, url;
    bool verify;
  };
  const std::vector<Case> cases = {
      {"esx://esx1.lab/", "https://esx1.lab/sdk", true},
      {"esx://root@127.0.0.1:8989/?no_verify=1", "https://127.0.0.1:8989/sdk", false},
      {"ESX://10.0.0.5?transport=http&no_verify=0", "http://10.0.0.5/sdk", true},
      {"vpx://vc.lab/DC0/cluster/esx1?no_verify=1", "https://vc.lab/sdk", false},
      {"gsx://gsx.lab:8222/", "http://gsx.lab:8222/sdk", true},
  };
  for (const auto& c : cases) {
    auto e = vsphere_endpoint(c.uri);
    ASSERT_TRUE(e) << c.uri << ": " << e.error().message();
    EXPECT_EQ(e->url, c.url) << c.uri;
    EXPECT_EQ(e->verify, c.verify) << c.uri;
  }
  EXPECT_EQ(vsphere_endpoint("test:///default").error().code(), Errc::NotSupported);
  EXPECT_EQ(vsphere_endpoint("qemu:///system").error().code(), Errc::NotSupported);
  EXPECT_EQ(vsphere_endpoint("esx:///").error().code(), Errc::InvalidInput);
}

TEST(UriScheme, IsTheLowerCasePartBeforeTheSlashes) {
  EXPECT_EQ(uri_scheme("esx://h/"), "esx");
  EXPECT_EQ(uri_scheme("QEMU+SSH://h/system"), "qemu+ssh");
  EXPECT_EQ(uri_scheme("test:///default"), "test");
  EXPECT_EQ(uri_scheme("/var/run/x"), "");
  EXPECT_EQ(uri_scheme("://h"), "");
  EXPECT_TRUE(is_vsphere_scheme("vpx"));
  EXPECT_FALSE(is_vsphere_scheme("qemu"));
}

TEST(FetchAbout, NothingListeningIsUnreachable) {
  testing::ClosedPort port;
  ASSERT_NE(port.port(), 0);
  const std::string url = "https://127.0.0.1:" + std::to_string(port.port()) + "/sdk";
  auto a = fetch_about({url, false}, std::chrono::milliseconds(3000));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), Errc::Unreachable) << a.error().message();
  EXPECT_NE(a.error().message().find(url), std::string::npos) << a.error().message();
}

}  // namespace
}  // namespace labctl::esxi
