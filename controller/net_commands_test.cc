// The inventory's DHCP configuration as the server gets it: reservations, options, classes.
#include "controller/net_commands.h"

#include <gtest/gtest.h>

#include "plugins/registry.h"

namespace labctl::controller {
namespace {

const std::string kCatalog = std::string(LABCTL_SOURCE_DIR) + "/catalog/catalog.yaml";

const char* kLab = R"(version: 1
site: t
segments:
  - name: lab
    interface: eth1
    subnet: 192.168.0.0/24
    dhcp:
      mode: serve
      range: 192.168.0.200-192.168.0.250
      router: 192.168.0.1
      dns: [192.168.0.10, 192.168.0.11]
      ntp: [192.168.0.12]
      domain: lab.example
      unknown-clients: deny
      classes:
        - name: bmcs
          oui: ["00:25:90"]
          ntp: [192.168.0.13]
          always-send: [42]
    tftp:
      root: /srv/tftp
      servers: [192.168.0.5, 192.168.0.6]
devices:
  - name: phone1
    type: sim-phone
    model: CP-7911G
    mac: 00:0B:82:01:FC:42
    ip: 192.168.0.31
    segment: lab
    extension: "1001"
  - name: bmc1
    type: sim-bmc
    model: X8SIL-F
    mac: 00:25:90:0a:00:01
    ip: 192.168.0.21
    segment: lab
  - name: roaming
    type: sim-drive
    model: UJ240AS
    mac: 00:25:90:0a:00:09
    segment: lab
)";

TEST(DhcpSegmentConfig, InventoryBecomesReservationsOptionsAndClasses) {
  plugins::Registry registry;
  plugins::register_builtin_plugins(registry);
  inventory::LoadOptions lo;
  lo.catalog = kCatalog;
  auto r = inventory::load_inventory_text(kLab, "t.yaml", "/tmp", registry, lo);
  std::string diags;
  for (const auto& d : r.diags.items())
    diags += d.format() + "\n";
  ASSERT_TRUE(r.inventory) << diags;
  const auto& seg = r.inventory->segments.at(0);
  auto c = dhcp_segment_config(*r.inventory, seg, registry, 0xc0a80005);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->alloc.segment, "lab");
  EXPECT_EQ(c->alloc.network, 0xc0a80000u);
  EXPECT_EQ(c->alloc.prefix, 24);
  EXPECT_EQ(c->alloc.pool_first, 0xc0a800c8u);
  EXPECT_EQ(c->alloc.pool_last, 0xc0a800fau);
  EXPECT_TRUE(c->alloc.deny_unknown);
  EXPECT_EQ(c->alloc.server_address, 0xc0a80005u);
  // Devices with a MAC and an address are reserved; one without an address is not.
  ASSERT_EQ(c->alloc.reservations.size(), 2u);
  EXPECT_EQ(c->alloc.reservations[0].mac, "00:0b:82:01:fc:42");
  EXPECT_EQ(c->alloc.reservations[0].ip, 0xc0a8001fu);
  EXPECT_EQ(c->alloc.reservations[0].name, "phone1");
  EXPECT_EQ(c->alloc.reservations[0].type, "sim-phone");
  // Segment options, binary where the RFC says so.
  EXPECT_EQ(*c->options.find(dhcp::opt::kRouter), (std::vector<std::uint8_t>{192, 168, 0, 1}));
  EXPECT_EQ(*c->options.find(dhcp::opt::kDnsServers),
            (std::vector<std::uint8_t>{192, 168, 0, 10, 192, 168, 0, 11}));
  EXPECT_EQ(*c->options.find(42), (std::vector<std::uint8_t>{192, 168, 0, 12}));
  EXPECT_EQ(*c->options.find(dhcp::opt::kDomainName),
            (std::vector<std::uint8_t>{'l', 'a', 'b', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e'}));
  EXPECT_FALSE(c->options.has(dhcp::opt::kCiscoTftpServers)) << "150 is for the phone class";
  // tftp-boot (phones by plugin capability and vendor class) first, then the inventory's.
  ASSERT_EQ(c->classes.size(), 2u);
  const auto& phones = c->classes[0];
  EXPECT_EQ(phones.name, "tftp-boot");
  EXPECT_EQ(phones.types, std::vector<std::string>{"sim-phone"});
  EXPECT_EQ(phones.vendor_class_prefixes, std::vector<std::string>{"Cisco Systems, Inc. IP Phone"});
  EXPECT_EQ(*phones.options.find(dhcp::opt::kCiscoTftpServers),
            (std::vector<std::uint8_t>{192, 168, 0, 5, 192, 168, 0, 6}));
  EXPECT_EQ(*phones.options.find(dhcp::opt::kTftpServerName),
            (std::vector<std::uint8_t>{'1', '9', '2', '.', '1', '6', '8', '.', '0', '.', '5'}));
  const auto& bmcs = c->classes[1];
  EXPECT_EQ(bmcs.name, "bmcs");
  EXPECT_EQ(bmcs.ouis, std::vector<std::string>{"00:25:90"});
  EXPECT_EQ(*bmcs.options.find(42), (std::vector<std::uint8_t>{192, 168, 0, 13}));
  EXPECT_EQ(bmcs.always_send, std::vector<std::uint8_t>{42});
}

}  // namespace
}  // namespace labctl::controller
