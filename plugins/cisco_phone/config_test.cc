#include "plugins/cisco_phone/config.h"

#include <gtest/gtest.h>

#include <pugixml.hpp>

namespace labctl::cisco_phone {
namespace {

PhoneConfig phone() {
  PhoneConfig c;
  c.device = "reception";
  c.mac = "00:0B:82:01:FC:42";
  c.model = "CP-7911G";
  c.sip_server = "192.168.0.10";
  c.phone_label = "Reception";
  c.load_information = "SIP11.9-4-2SR1-1S";
  c.ntp_server = "192.168.0.10";
  c.lines.push_back({"1001", "Front desk", "", "s3cret-pw", ""});
  return c;
}

bool mentions(const std::vector<Problem>& ps, const std::string& field, const std::string& text) {
  for (const auto& p : ps)
    if (p.field == field && p.message.find(text) != std::string::npos) return true;
  return false;
}

TEST(CiscoPhoneConfig, SepFileNameIsUpperHexWithoutSeparators) {
  EXPECT_EQ(sep_file_name("00:0b:82:01:fc:42").value(), "SEP000B8201FC42.cnf.xml");
  EXPECT_EQ(sep_file_name("000b.8201.fc42").value(), "SEP000B8201FC42.cnf.xml");
  EXPECT_FALSE(sep_file_name("00:0b:82:01:fc"));
  EXPECT_FALSE(sep_file_name("00:0b:82:01:fc:4g"));
}

TEST(CiscoPhoneConfig, RendersTheElementsThePhoneReads) {
  auto xml = render_sep_config(phone(), Limits{});
  ASSERT_TRUE(xml) << xml.error().message();
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(xml->c_str()));
  auto dev = doc.child("device");
  EXPECT_STREQ(dev.child_value("deviceProtocol"), "SIP");
  EXPECT_STREQ(dev.child_value("loadInformation"), "SIP11.9-4-2SR1-1S");
  auto cm = dev.child("devicePool")
                .child("callManagerGroup")
                .child("members")
                .child("member")
                .child("callManager");
  EXPECT_STREQ(cm.child("ports").child_value("sipPort"), "5060");
  EXPECT_STREQ(cm.child_value("processNodeName"), "192.168.0.10");
  auto line = dev.child("sipProfile").child("sipLines").child("line");
  EXPECT_STREQ(line.attribute("button").value(), "1");
  EXPECT_STREQ(line.child_value("featureID"), "9");
  EXPECT_STREQ(line.child_value("proxy"), "USECALLMANAGER");
  EXPECT_STREQ(line.child_value("name"), "1001");
  EXPECT_STREQ(line.child_value("authName"), "1001") << "authName is always written";
  EXPECT_STREQ(line.child_value("authPassword"), "s3cret-pw");
  EXPECT_STREQ(line.child_value("displayName"), "Front desk");
  EXPECT_STREQ(dev.child("sipProfile").child_value("phoneLabel"), "Reception");
  EXPECT_STREQ(dev.child("devicePool")
                   .child("dateTimeSetting")
                   .child("ntps")
                   .child("ntp")
                   .child_value("name"),
               "192.168.0.10");
}

TEST(CiscoPhoneConfig, XmlSpecialCharactersAreEscaped) {
  PhoneConfig c = phone();
  c.lines[0].display_name = "R&D <lab>";
  c.lines[0].password = "a<b&c";
  auto xml = render_sep_config(c, Limits{});
  ASSERT_TRUE(xml);
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(xml->c_str()));
  auto line = doc.child("device").child("sipProfile").child("sipLines").child("line");
  EXPECT_STREQ(line.child_value("displayName"), "R&D <lab>");
  EXPECT_STREQ(line.child_value("authPassword"), "a<b&c");
}

TEST(CiscoPhoneConfig, TheSeedsThirtyTwoCharacterPasswordIsRefusedWithoutShowingIt) {
  PhoneConfig c = phone();
  c.lines[0].password = "0123456789abcdef0123456789abcdef";
  auto ps = validate(c, Limits{});
  ASSERT_TRUE(mentions(ps, "sip.password", "32 characters"));
  EXPECT_TRUE(mentions(ps, "sip.password", "at most 15"));
  for (const auto& p : ps)
    EXPECT_EQ(describe(p).find("0123456789abcdef"), std::string::npos);
  auto xml = render_sep_config(c, Limits{});
  ASSERT_FALSE(xml);
  EXPECT_NE(xml.error().message().find("reception: sip.password"), std::string::npos);
  // The limit is data: a model allowed 32 accepts it.
  EXPECT_TRUE(validate(c, Limits{32, 12}).empty());
}

TEST(CiscoPhoneConfig, LabelLengthSpacesAndOtherFieldsAreChecked) {
  PhoneConfig c = phone();
  c.phone_label = "Front Desk Reception";
  c.sip_port = 70000;
  c.lines[0].extension = "10 01";
  auto ps = validate(c, Limits{});
  EXPECT_TRUE(mentions(ps, "label", "20 characters"));
  EXPECT_TRUE(mentions(ps, "label", "space"));
  EXPECT_TRUE(mentions(ps, "sip.port", "70000"));
  EXPECT_TRUE(mentions(ps, "extension", "not a SIP user name"));
  c = phone();
  c.lines.clear();
  EXPECT_TRUE(mentions(validate(c, Limits{}), "extension", "no line"));
}

TEST(CiscoPhoneConfig, DuplicateMacsAndExtensionsAcrossPhones) {
  PhoneConfig a = phone();
  PhoneConfig b = phone();
  b.device = "office";
  b.mac = "00-0b-82-01-fc-42";
  PhoneConfig d = phone();
  d.device = "lab";
  d.mac = "00:0b:82:01:fc:43";
  d.lines[0].extension = "1002";
  auto ps = validate_all({a, b, d}, Limits{});
  EXPECT_TRUE(mentions(ps, "mac", "same MAC as reception"));
  EXPECT_TRUE(mentions(ps, "extension", "'1001' is also reception's"));
  for (const auto& p : ps)
    EXPECT_NE(p.device, "lab") << describe(p);
}

TEST(CiscoPhoneConfig, XmlDefaultNamesTheServerAndTheLoad) {
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(render_xml_default("10.0.0.1", 5070, "SCCP11.8-5-2S").c_str()));
  auto def = doc.child("Default");
  EXPECT_STREQ(def.child_value("loadInformation"), "SCCP11.8-5-2S");
  EXPECT_STREQ(def.child("callManagerGroup")
                   .child("members")
                   .child("member")
                   .child("callManager")
                   .child("ports")
                   .child_value("sipPort"),
               "5070");
}

}  // namespace
}  // namespace labctl::cisco_phone
