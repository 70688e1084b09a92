#include "plugins/cisco_phone/doctor.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "agents/net/tftp/syslog.h"
#include "inventory/diagnostics.h"

namespace labctl::cisco_phone {
namespace {

const std::string kSource = LABCTL_SOURCE_DIR;

std::vector<tftp::Event> seed_events() {
  // The field report's in.tftpd lines (tests/data/seed-in.tftpd.log, copied from seed/).
  std::ifstream in(kSource + "/tests/data/seed-in.tftpd.log");
  return tftp::parse_syslog(in, 2024);
}

inventory::Catalog catalog() {
  inventory::Diagnostics d;
  auto c = inventory::load_catalog(kSource + "/catalog/catalog.yaml", d);
  EXPECT_TRUE(c.has_value());
  return c ? std::move(*c) : inventory::Catalog{};
}

const Diagnosis* find(const std::vector<Diagnosis>& ds, const std::string& client,
                      const std::string& code) {
  for (const auto& d : ds)
    if (d.client == client && d.code == code) return &d;
  return nullptr;
}

TEST(CiscoPhoneDoctor, TheSeedsLogExplainsItself) {
  const auto events = seed_events();
  ASSERT_EQ(events.size(), 18u);
  const auto cat = catalog();
  const auto ds = diagnose(events, &cat);
  // 192.168.0.224 looped six times on term06.default.loads without a .sbn: the bootloader hop.
  const auto* loop = find(ds, "192.168.0.224", "term-file-loop");
  ASSERT_NE(loop, nullptr);
  EXPECT_EQ(loop->severity, "critical");
  EXPECT_NE(loop->message.find("6 times"), std::string::npos) << loop->message;
  EXPECT_NE(loop->message.find("SCCP11.8-5-2S"), std::string::npos) << loop->message;
  EXPECT_NE(loop->message.find("cmterm-7911_7906-sccp.8-5-2.cop.sgn"), std::string::npos);
  EXPECT_NE(loop->message.find("moved on"), std::string::npos) << "it did, at 11:01:20";
  EXPECT_EQ(loop->evidence.size(), 6u);
  // .245 fetched all of SCCP 8.5(2); .224 later all of SIP 9.4(2)SR1.
  const auto* sccp = find(ds, "192.168.0.245", "load-fetched");
  ASSERT_NE(sccp, nullptr);
  EXPECT_NE(sccp->message.find("SCCP11.8-5-2S"), std::string::npos) << sccp->message;
  const auto* sip = find(ds, "192.168.0.224", "load-fetched");
  ASSERT_NE(sip, nullptr);
  EXPECT_NE(sip->message.find("SIP11.9-4-2SR1-1S"), std::string::npos) << sip->message;
  EXPECT_EQ(find(ds, "192.168.0.245", "term-file-loop"), nullptr);
  EXPECT_EQ(find(ds, "192.168.0.224", "incomplete-load"), nullptr);
}

TEST(CiscoPhoneDoctor, IncompleteLoadsAndRefusalsAreNamed) {
  std::istringstream log(
      "Dec 30 10:44:41 h in.tftpd[1]: RRQ from 10.0.0.7 filename term11.default.loads\n"
      "Dec 30 10:44:42 h in.tftpd[2]: RRQ from 10.0.0.7 filename jar11sip.9-4-2ES9.sbn\n"
      "Dec 30 10:44:49 h in.tftpd[3]: RRQ from 10.0.0.7 filename cnu11.9-4-2ES9.sbn\n"
      "Dec 30 10:44:50 h in.tftpd[4]: RRQ from 10.0.0.7 filename Apps11.9-4-2ES9.sbn\n"
      "Dec 30 10:44:50 h in.tftpd[4]: sending NAK (1, File not found) to 10.0.0.7\n"
      "Dec 30 10:45:00 h in.tftpd[5]: RRQ from 10.0.0.8 filename SEP000B8201FC42.cnf.xml\n"
      "Dec 30 10:45:00 h in.tftpd[5]: sending NAK (1, File not found) to 10.0.0.8\n"
      "Dec 30 10:45:01 h in.tftpd[6]: RRQ from 10.0.0.8 filename XMLDefault.cnf.xml\n");
  const auto cat = catalog();
  const auto ds = diagnose(tftp::parse_syslog(log, 2024), &cat);
  const auto* missing = find(ds, "10.0.0.7", "missing-file");
  ASSERT_NE(missing, nullptr);
  EXPECT_EQ(missing->severity, "critical");
  EXPECT_NE(missing->message.find("Apps11.9-4-2ES9.sbn"), std::string::npos);
  const auto* partial = find(ds, "10.0.0.7", "incomplete-load");
  ASSERT_NE(partial, nullptr);
  EXPECT_NE(partial->message.find("dsp11.9-4-2ES9.sbn"), std::string::npos) << partial->message;
  EXPECT_NE(partial->message.find("cvm11sip.9-4-2ES9.sbn"), std::string::npos);
  EXPECT_EQ(find(ds, "10.0.0.7", "term-file-loop"), nullptr) << "one term request is no loop";
  EXPECT_NE(find(ds, "10.0.0.8", "no-configuration"), nullptr);
  EXPECT_NE(find(ds, "10.0.0.8", "default-configuration"), nullptr);
}

TEST(CiscoPhoneDoctor, WorksWithoutACatalog) {
  const auto ds = diagnose(seed_events(), nullptr);
  const auto* loop = find(ds, "192.168.0.224", "term-file-loop");
  ASSERT_NE(loop, nullptr);
  EXPECT_NE(loop->message.find("SCCP 8.5(2)"), std::string::npos);
}

}  // namespace
}  // namespace labctl::cisco_phone
