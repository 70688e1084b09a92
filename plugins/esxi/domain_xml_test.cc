// Domain XML templates: what `labctl validate` checks before libvirt ever sees one.
#include "plugins/esxi/domain_xml.h"

#include <gtest/gtest.h>

#include <fstream>

#include "plugins/esxi/testing.h"

namespace labctl::esxi {
namespace {

TEST(InspectDomainXml, ReadsNameAndType) {
  auto f = inspect_domain_xml(
      "<domain type='vmware'>\n  <name> dns </name>\n  <memory>1024</memory>\n</domain>");
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->name, "dns");
  EXPECT_EQ(f->type, "vmware");
}

TEST(InspectDomainXml, SaysWhatIsWrong) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"<domain type='kvm'><name>a</name>", "not well-formed XML"},
      {"<network><name>a</name></network>", "root element is <network>"},
      {"<domain><name>a</name></domain>", "no type attribute"},
      {"<domain type='kvm'><uuid>x</uuid></domain>", "has no <name>"},
      {"<domain type='kvm'><name>a</name><name>b</name></domain>", "more than one <name>"},
      {"<domain type='kvm'><name>  </name></domain>", "<name> is empty"},
      {"", "not well-formed XML"},
  };
  for (const auto& [xml, why] : cases) {
    auto f = inspect_domain_xml(xml);
    ASSERT_FALSE(f) << xml;
    EXPECT_EQ(f.error().code(), Errc::InvalidInput);
    EXPECT_NE(f.error().message().find(why), std::string::npos) << f.error().message();
  }
}

TEST(ReadTemplate, ChecksTheNameAgainstTheVm) {
  const auto file = testing::source("tests/data/esxi/osx-server.xml");
  auto ok = read_template(file, "osx-server");
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_NE(ok->find("<name>osx-server</name>"), std::string::npos);
  auto other = read_template(file, "osx");
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message().find("defines the domain 'osx-server', but the VM is 'osx'"),
            std::string::npos)
      << other.error().message();
  auto missing = read_template("/nonexistent/vm.xml", "vm");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::NotFound);
}

TEST(ReadTemplate, RefusesHugeFiles) {
  const auto file = std::filesystem::temp_directory_path() / "labctl-esxi-huge-template.xml";
  {
    std::ofstream out(file);
    out << "<domain type='test'><name>big</name><description>";
    out << std::string(2u << 20, 'x');
    out << "</description></domain>";
  }
  auto t = read_template(file, "big");
  std::filesystem::remove(file);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message().find("over 1 MiB"), std::string::npos);
}

}  // namespace
}  // namespace labctl::esxi
