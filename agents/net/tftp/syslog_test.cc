// The syslog reader against the field report's own tftpd-hpa log and the other formats it meets.
#include "agents/net/tftp/syslog.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <sstream>

namespace labctl::tftp {
namespace {

// From the field report (seed/): a 7906 looping on term06.default.loads, then the SCCP 8.5(2) hop,
// then the SIP 9.4(2) load.
constexpr const char* kSeedLog =
    "Dec 30 10:15:32 localhost in.tftpd[24929]: RRQ from 192.168.0.224 filename "
    "term06.default.loads\n"
    "Dec 30 10:15:33 localhost in.tftpd[24950]: RRQ from 192.168.0.224 filename "
    "term06.default.loads\n"
    "Dec 30 10:18:00 localhost in.tftpd[25093]: RRQ from 192.168.0.224 filename "
    "term06.default.loads\n"
    "Dec 30 10:18:00 localhost in.tftpd[25094]: RRQ from 192.168.0.224 filename "
    "term06.default.loads\n"
    "Dec 30 10:19:33 localhost in.tftpd[25151]: RRQ from 192.168.0.224 filename "
    "term06.default.loads\n"
    "Dec 30 10:19:34 localhost in.tftpd[25152]: RRQ from 192.168.0.224 filename "
    "term06.default.loads\n"
    "Dec 30 10:44:41 localhost in.tftpd[26016]: RRQ from 192.168.0.245 filename "
    "term06.default.loads\n"
    "Dec 30 10:44:42 localhost in.tftpd[26017]: RRQ from 192.168.0.245 filename "
    "jar11sccp.8-5-2TH1-9.sbn\n"
    "Dec 30 10:44:49 localhost in.tftpd[26018]: RRQ from 192.168.0.245 filename "
    "cnu11.8-5-2TH1-9.sbn\n"
    "Dec 30 10:44:51 localhost in.tftpd[26019]: RRQ from 192.168.0.245 filename "
    "apps11.8-5-2TH1-9.sbn\n"
    "Dec 30 10:45:03 localhost in.tftpd[26024]: RRQ from 192.168.0.245 filename "
    "dsp11.8-5-2TH1-9.sbn\n"
    "Dec 30 10:45:05 localhost in.tftpd[26025]: RRQ from 192.168.0.245 filename "
    "cvm11sccp.8-5-2TH1-9.sbn\n"
    "Dec 30 11:01:20 localhost in.tftpd[26726]: RRQ from 192.168.0.224 filename "
    "term06.default.loads\n"
    "Dec 30 11:01:21 localhost in.tftpd[26727]: RRQ from 192.168.0.224 filename "
    "jar11sip.9-4-2ES9.sbn\n"
    "Dec 30 11:01:28 localhost in.tftpd[26729]: RRQ from 192.168.0.224 filename "
    "cnu11.9-4-2ES9.sbn\n"
    "Dec 30 11:01:31 localhost in.tftpd[26730]: RRQ from 192.168.0.224 filename "
    "apps11.9-4-2ES9.sbn\n"
    "Dec 30 11:01:44 localhost in.tftpd[26736]: RRQ from 192.168.0.224 filename "
    "dsp11.9-4-2ES9.sbn\n"
    "Dec 30 11:01:46 localhost in.tftpd[26737]: RRQ from 192.168.0.224 filename "
    "cvm11sip.9-4-2ES9.sbn\n";

class TftpSyslog : public ::testing::Test {
 protected:
  void SetUp() override {
    // BSD timestamps are local time: pin the zone so the expected instants are exact.
    if (const char* tz = std::getenv("TZ")) saved_tz_ = tz;
    ::setenv("TZ", "UTC", 1);
    ::tzset();
  }
  void TearDown() override {
    if (saved_tz_)
      ::setenv("TZ", saved_tz_->c_str(), 1);
    else
      ::unsetenv("TZ");
    ::tzset();
  }
  std::optional<std::string> saved_tz_;
};

TEST_F(TftpSyslog, ReadsTheSeedLog) {
  std::istringstream in(kSeedLog);
  const auto events = parse_syslog(in, 2015);
  ASSERT_EQ(events.size(), 18u);
  for (const auto& e : events) {
    EXPECT_EQ(e.kind, EventKind::Request);
    EXPECT_EQ(e.op, "RRQ");
    EXPECT_EQ(e.source, "syslog");
    EXPECT_EQ(e.host, "localhost");
    EXPECT_TRUE(e.pid.has_value());
  }
  EXPECT_EQ(events[0].client, "192.168.0.224");
  EXPECT_EQ(events[0].name, "term06.default.loads");
  EXPECT_EQ(events[0].pid, 24929);
  EXPECT_EQ(events[0].time_ms, 1451470532000);  // 2015-12-30T10:15:32Z
  EXPECT_EQ(events[7].client, "192.168.0.245");
  EXPECT_EQ(events[7].name, "jar11sccp.8-5-2TH1-9.sbn");
  EXPECT_EQ(events[17].name, "cvm11sip.9-4-2ES9.sbn");
  EXPECT_EQ(events[17].time_ms - events[12].time_ms, 26000);
  // The same JSON shape as the server's own log.
  const auto j = event_to_json(events[0]);
  EXPECT_EQ(j["event"], "request");
  EXPECT_EQ(j["time"], "2015-12-30T10:15:32.000Z");
  EXPECT_EQ(j["client"], "192.168.0.224");
  EXPECT_EQ(j["name"], "term06.default.loads");
  EXPECT_EQ(j["pid"], 24929);
}

TEST_F(TftpSyslog, IsoTimestampsMappedAddressesWritesAndRemaps) {
  SyslogParser p;
  auto a = p.parse_line(
      "2024-12-30T10:15:32.123456+01:00 tftp-host in.tftpd[7]: RRQ from ::ffff:1.2.3.4 filename "
      "SEP001122334455.cnf.xml");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->client, "1.2.3.4");
  EXPECT_EQ(a->time_ms, 1735550132123);  // 09:15:32.123Z
  EXPECT_EQ(a->host, "tftp-host");
  auto b = p.parse_line("2024-12-30T10:15:32Z h tftpd: WRQ from 10.0.0.9 filename up/x.bin\r\n");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->op, "WRQ");
  EXPECT_EQ(b->name, "up/x.bin");
  EXPECT_FALSE(b->pid);
  auto c = p.parse_line(
      "2024-12-30T10:15:32+0100 h in.tftpd[9]: RRQ from 2001:db8::5 filename "
      "a b.txt remapped to files/a b.txt");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->client, "2001:db8::5");
  EXPECT_EQ(c->name, "a b.txt");
  EXPECT_EQ(c->file, "files/a b.txt");
  EXPECT_EQ(c->time_ms, 1735550132000);
  auto d = p.parse_line("Jan  3 01:02:03 box /usr/sbin/in.tftpd[11]: RRQ from 10.1.1.1 filename f");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->name, "f");
}

TEST_F(TftpSyslog, NakLinesBecomeRefusalsOfTheSameProcessRequest) {
  std::istringstream in(
      "Dec 30 10:15:32 localhost in.tftpd[100]: RRQ from 192.168.0.224 filename SEPAABB.cnf.xml\n"
      "Dec 30 10:15:32 localhost in.tftpd[101]: RRQ from 192.168.0.225 filename other\n"
      "Dec 30 10:15:32 localhost in.tftpd[100]: sending NAK (1, File not found) to "
      "192.168.0.224\n"
      "Dec 30 10:15:33 localhost in.tftpd[102]: sending NAK (2, Permission denied) to "
      "::ffff:10.0.0.1\n");
  const auto events = parse_syslog(in, 2024);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2].kind, EventKind::Refused);
  EXPECT_EQ(events[2].error_code, 1);
  EXPECT_EQ(events[2].reason, "File not found");
  EXPECT_EQ(events[2].name, "SEPAABB.cnf.xml");
  EXPECT_EQ(events[2].client, "192.168.0.224");
  EXPECT_EQ(events[3].kind, EventKind::Refused);
  EXPECT_EQ(events[3].error_code, 2);
  EXPECT_EQ(events[3].client, "10.0.0.1");
  EXPECT_TRUE(events[3].name.empty());  // its request is not in the log
}

TEST_F(TftpSyslog, OtherLinesAreSkipped) {
  SyslogParser p;
  for (const char* line : {
           "",
           "garbage",
           "Dec 30 10:15:32 localhost dhcpd[1]: DHCPACK on 10.0.0.2",
           "Dec 30 10:15:32 localhost in.tftpd[1]: connect from 1.2.3.4",
           "Dec 30 10:15:32 localhost in.tftpd[1]: RRQ from 1.2.3.4",
           "Dec 30 10:15:32 localhost in.tftpd[1]: RRQ from 1.2.3.4 filename ",
           "Dec 30 10:15:32 localhost in.tftpd[x]: RRQ from 1.2.3.4 filename f",
           "Dec 99 10:15:32 localhost in.tftpd[1]: RRQ from 1.2.3.4 filename f",
           "Foo 30 10:15:32 localhost in.tftpd[1]: RRQ from 1.2.3.4 filename f",
           "2024-13-30T10:15:32Z h in.tftpd[1]: RRQ from 1.2.3.4 filename f",
           "Dec 30 10:15:32 localhost in.tftpd[1]: sending NAK (x, y) to 1.2.3.4",
       })
    EXPECT_FALSE(p.parse_line(line)) << line;
}

}  // namespace
}  // namespace labctl::tftp
