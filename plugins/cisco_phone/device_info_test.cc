#include "plugins/cisco_phone/device_info.h"

#include <gtest/gtest.h>

namespace labctl::cisco_phone {
namespace {

// Shaped like a 7911's DeviceInformationX (element names as the phone's web server uses them;
// the values are made up).
const char* kSample = R"(<?xml version="1.0" encoding="utf-8"?>
<DeviceInformation>
  <MACAddress>000B8201FC42</MACAddress>
  <HostName>SEP000B8201FC42</HostName>
  <phoneDN>1001</phoneDN>
  <appLoadID>SCCP11.8-5-2S</appLoadID>
  <bootLoadID>tnp11.8-5-2TH1-9</bootLoadID>
  <versionID>8.5(2.0)</versionID>
  <serialNumber>FCH1234ABCD</serialNumber>
  <modelNumber>CP-7911G</modelNumber>
</DeviceInformation>
)";

TEST(CiscoPhoneDeviceInfo, ParsesWhatTheProbeNeeds) {
  auto d = parse_device_info(kSample);
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->mac, "000B8201FC42");
  EXPECT_EQ(d->app_load_id, "SCCP11.8-5-2S");
  EXPECT_EQ(d->boot_load_id, "tnp11.8-5-2TH1-9");
  EXPECT_EQ(d->model, "CP-7911G");
  EXPECT_EQ(d->phone_dn, "1001");
  EXPECT_EQ(load_protocol(d->app_load_id), "sccp");
  EXPECT_EQ(load_protocol("SIP11.9-4-2SR1-1S"), "sip");
  EXPECT_EQ(load_protocol("tnp11"), "");
}

TEST(CiscoPhoneDeviceInfo, RefusesWhatIsNotADeviceInformationDocument) {
  EXPECT_FALSE(parse_device_info(""));
  EXPECT_FALSE(parse_device_info("<html><body>login</body></html>"));
  EXPECT_FALSE(parse_device_info("<DeviceInformation><MACAddress>x</MACAddress>"));
  auto no_load =
      parse_device_info("<DeviceInformation><MACAddress>1</MACAddress></DeviceInformation>");
  ASSERT_FALSE(no_load);
  EXPECT_NE(no_load.error().message().find("appLoadID"), std::string::npos);
  EXPECT_FALSE(parse_device_info(std::string(300 * 1024, ' ')));
  // An entity declaration is not expanded into anything the probe would trust.
  auto ent = parse_device_info(
      "<!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
      "<DeviceInformation><appLoadID>&x;</appLoadID></DeviceInformation>");
  if (ent) {
    EXPECT_EQ(ent->app_load_id.find("root:"), std::string::npos);
  }
}

}  // namespace
}  // namespace labctl::cisco_phone
