#include "agents/net/dhcp/snippets.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agents/net/dhcp/codec.h"

namespace labctl::dhcp {
namespace {

const std::vector<std::uint32_t> kTwo = {0x0a630001, 0x0a630002};  // 10.99.0.1, 10.99.0.2

std::string snippet(Format f, const std::vector<std::uint32_t>& ips = kTwo,
                    std::optional<std::string> name = std::nullopt) {
  auto r = dhcp_snippet(f, ips, std::move(name));
  EXPECT_TRUE(r) << r.error().message();
  return r ? *r : "";
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t nl = s.find('\n', pos);
    out.push_back(s.substr(pos, nl - pos));
    pos = nl == std::string::npos ? s.size() : nl + 1;
  }
  return out;
}

// The lines that are not comments.
std::vector<std::string> body(const std::string& s, std::string_view comment) {
  std::vector<std::string> out;
  for (auto& l : lines(s))
    if (l.rfind(comment, 0) != 0) out.push_back(l);
  return out;
}

TEST(DhcpSnippets, FormatNames) {
  for (Format f : all_formats()) {
    auto back = parse_format(format_name(f));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, f);
  }
  EXPECT_EQ(parse_format("Cisco-IOS"), Format::CiscoIos);
  auto bad = parse_format("dnsmsq");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::InvalidInput);
  EXPECT_EQ(bad.error().message(),
            "unknown DHCP server format 'dnsmsq' (did you mean 'dnsmasq'?); valid formats: isc, "
            "kea, dnsmasq, cisco-ios, mikrotik, hex");
  auto none = parse_format("");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("valid formats: isc, kea"), std::string::npos);
}

TEST(DhcpSnippets, EveryFormatStartsWithAComment) {
  const std::vector<std::pair<Format, std::string>> markers = {
      {Format::Isc, "# "},      {Format::Kea, "// "},     {Format::Dnsmasq, "# "},
      {Format::CiscoIos, "! "}, {Format::Mikrotik, "# "}, {Format::Hex, "# "}};
  for (const auto& [f, marker] : markers) {
    const std::string s = snippet(f);
    EXPECT_EQ(s.rfind(marker + "labctl dhcp options:", 0), 0u) << format_name(f) << ":\n" << s;
    EXPECT_NE(lines(s)[0].find("150 is binary"), std::string::npos) << s;
    EXPECT_EQ(s.back(), '\n');
  }
}

TEST(DhcpSnippets, Isc) {
  EXPECT_EQ(body(snippet(Format::Isc), "#"),
            (std::vector<std::string>{"option cisco-tftp-servers code 150 = array of ip-address;",
                                      "option cisco-tftp-servers 10.99.0.1, 10.99.0.2;",
                                      "option tftp-server-name \"10.99.0.1\";"}));
}

TEST(DhcpSnippets, Kea) {
  const std::string s = snippet(Format::Kea, kTwo, "tftp.lab");
  EXPECT_EQ(body(s, "//"),
            (std::vector<std::string>{
                "\"option-def\": [",
                "  { \"name\": \"cisco-tftp-servers\", \"code\": 150, \"space\": \"dhcp4\", "
                "\"type\": \"ipv4-address\", \"array\": true }",
                "],", "\"option-data\": [",
                "  { \"name\": \"cisco-tftp-servers\", \"code\": 150, \"space\": \"dhcp4\", "
                "\"data\": \"10.99.0.1, 10.99.0.2\", \"always-send\": true },",
                "  { \"name\": \"tftp-server-name\", \"code\": 66, \"space\": \"dhcp4\", "
                "\"data\": \"tftp.lab\", \"always-send\": true }",
                "]"}));
}

TEST(DhcpSnippets, Dnsmasq) {
  EXPECT_EQ(body(snippet(Format::Dnsmasq), "#"),
            (std::vector<std::string>{"dhcp-option-force=150,10.99.0.1,10.99.0.2",
                                      "dhcp-option-force=66,\"10.99.0.1\""}));
}

TEST(DhcpSnippets, CiscoIos) {
  EXPECT_EQ(
      body(snippet(Format::CiscoIos, kTwo, "cucm1.lab"), "!"),
      (std::vector<std::string>{"ip dhcp pool labctl-phones", " option 150 ip 10.99.0.1 10.99.0.2",
                                " option 66 ascii cucm1.lab"}));
}

TEST(DhcpSnippets, Mikrotik) {
  EXPECT_EQ(body(snippet(Format::Mikrotik), "#"),
            (std::vector<std::string>{
                "/ip dhcp-server option add code=150 name=tftp-150 value=0x0a6300010a630002",
                "/ip dhcp-server option add code=66 name=tftp-66 value=\"'10.99.0.1'\"",
                "/ip dhcp-server option sets add name=labctl-tftp options=tftp-150,tftp-66"}));
}

TEST(DhcpSnippets, HexIsTheWireBytes) {
  EXPECT_EQ(body(snippet(Format::Hex), "#"), (std::vector<std::string>{"96080a6300010a630002",
                                                                       "42093130"
                                                                       "2e39392e302e31"}));
  EXPECT_EQ(body(snippet(Format::Hex, {0x0a000001}), "#")[0], "96040a000001");
}

TEST(DhcpSnippets, RefusesBadInput) {
  auto err = [](const std::vector<std::uint32_t>& ips, std::optional<std::string> name) {
    auto r = dhcp_snippet(Format::Isc, ips, std::move(name));
    EXPECT_FALSE(r);
    if (r) return std::string();
    EXPECT_EQ(r.error().code(), Errc::InvalidInput);
    return r.error().message();
  };
  EXPECT_EQ(err({}, std::nullopt), "no TFTP server address given");
  EXPECT_EQ(err(std::vector<std::uint32_t>(64, 0x0a000001), std::nullopt),
            "64 TFTP server addresses: option 150 holds at most 63");
  EXPECT_EQ(err({0}, std::nullopt), "TFTP server 0.0.0.0 is the unspecified address");
  EXPECT_EQ(err({0x7f000001}, std::nullopt), "TFTP server 127.0.0.1 is a loopback address");
  EXPECT_EQ(err({0xe0000001}, std::nullopt), "TFTP server 224.0.0.1 is a multicast address");
  EXPECT_EQ(err({0xffffffff}, std::nullopt),
            "TFTP server 255.255.255.255 is the broadcast address");
  EXPECT_EQ(err({0x0a630001, 0x0a630001}, std::nullopt), "TFTP server 10.99.0.1 is listed twice");
  EXPECT_EQ(err(kTwo, ""), "empty TFTP server name");
  EXPECT_EQ(err(kTwo, "a \"b\""),
            "TFTP server name 'a \"b\"': only letters, digits, '.', '-' and '_' are allowed");
  EXPECT_EQ(err(kTwo, std::string(256, 'a')),
            "TFTP server name of 256 bytes: option 66 holds at most 255");
  // 63 addresses are fine: 252 bytes of option 150.
  std::vector<std::uint32_t> many;
  for (std::uint32_t i = 1; i <= 63; ++i)
    many.push_back(0x0a630000 + i);
  auto hex = dhcp_snippet(Format::Hex, many, std::nullopt);
  ASSERT_TRUE(hex);
  EXPECT_EQ(body(*hex, "#")[0].substr(0, 4), "96fc");
}

}  // namespace
}  // namespace labctl::dhcp
