// The drive emulator's semantics, through the plugin's own Drive class (so both sides of the CDB
// boundary are exercised): identification, readiness, profiles, WRITE BUFFER modes 5, 7, 0x0E and
// 0x0F with buffer offsets, activation as a reboot (NOT READY, then UNIT ATTENTION, then the new
// revision), power cycles, refused images, injected faults; and the wire format.
#include "plugins/optical_drive/emulator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "plugins/optical_drive/drive.h"
#include "plugins/optical_drive/emulator_wire.h"

namespace labctl::optical_drive {
namespace {

using std::chrono::milliseconds;
using ::testing::Contains;
using ::testing::HasSubstr;
namespace s = scsi;

const std::string kProduct = "BD-MLT UJ240AS";

// A drive on an in-process transport with a clock the test moves.
struct Bench {
  // `settle`: take the power-on unit attention first, as the plugin's probe does.
  explicit Bench(EmulatorConfig c = {}, nlohmann::json saved = {}, bool settle = true)
      : emu(std::move(c), saved, t0), transport(emu), drive(transport, milliseconds(1000)) {
    transport.clock = [this] { return now; };
    if (settle) (void)drive.test_unit_ready();
  }
  void advance(milliseconds d) { now += d; }
  Clock::time_point t0 = Clock::now();
  Clock::time_point now = t0;
  DriveEmulator emu;
  InProcessTransport transport;
  Drive drive;
};

std::string revision(Drive& d) {
  auto q = d.inquiry();
  return q ? q->revision : "error: " + q.error().message();
}

TEST(Emulator, FactoryNewDrive) {
  Bench b({}, {}, false);
  auto id = b.drive.identify();
  ASSERT_TRUE(id.has_value()) << id.error().message();
  EXPECT_EQ(id->vendor, "MATSHITA");
  EXPECT_EQ(id->product, kProduct);
  EXPECT_EQ(id->revision, "1.01");
  EXPECT_EQ(id->serial, "HM12345678");
  EXPECT_EQ(id->device_type, s::kTypeOptical);
  // Power-on's unit attention comes with the first command that is not INQUIRY.
  auto ready = b.drive.test_unit_ready();
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->state, Readiness::State::NoMedium);
  EXPECT_FALSE(ready->tray_open);
  EXPECT_EQ(ready->text, "no disc (tray closed)");
  EXPECT_THAT(b.drive.notes(), Contains(HasSubstr("POWER ON OCCURRED (29/01)")));
  auto config = b.drive.configuration();
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->current_profile, 0);
  EXPECT_THAT(config->profiles(), Contains(0x0043));
  EXPECT_EQ(b.emu.state()["counts"]["inquiry"], 2);  // standard data and the serial page
}

TEST(Emulator, DiscInTheTray) {
  EmulatorConfig c;
  c.medium = "bd";
  Bench b(c);
  auto ready = b.drive.test_unit_ready();
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->state, Readiness::State::Ready);
  EXPECT_EQ(b.drive.configuration()->current_profile, 0x0040);
  // Ejecting queues NOT READY TO READY CHANGE and the tray state shows.
  b.emu.control({{"op", "medium"}, {"medium", "none"}, {"tray-open", true}});
  auto after = b.drive.test_unit_ready();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->state, Readiness::State::NoMedium);
  EXPECT_TRUE(after->tray_open);
  EXPECT_THAT(b.drive.notes(), Contains(HasSubstr("MEDIUM MAY HAVE CHANGED (28/00)")));
}

TEST(Emulator, NoSerialPage) {
  EmulatorConfig c;
  c.serial = "";
  Bench b(c);
  auto serial = b.drive.serial();
  ASSERT_TRUE(serial.has_value());
  EXPECT_EQ(*serial, "");
}

TEST(Emulator, Mode5NewRevisionOnlyAfterTheReboot) {
  Bench b;
  const auto image = build_test_microcode(kProduct, "1.04", 100'000, 7);
  ASSERT_TRUE(b.drive.write_buffer(5, 0, image, milliseconds(1000)));
  // Rebooting: every command, INQUIRY included, is NOT READY (becoming ready) with progress.
  b.advance(milliseconds(750));
  auto during = b.drive.inquiry();
  ASSERT_FALSE(during.has_value());
  EXPECT_EQ(during.error().code(), Errc::Timeout);
  EXPECT_THAT(during.error().message(),
              HasSubstr("IN PROCESS OF BECOMING READY (04/01), 50% done"));
  auto tur = b.drive.test_unit_ready();
  ASSERT_TRUE(tur.has_value());
  EXPECT_EQ(tur->state, Readiness::State::BecomingReady);
  b.advance(milliseconds(800));
  EXPECT_EQ(revision(b.drive), "1.04");
  ASSERT_TRUE(b.drive.test_unit_ready().has_value());
  EXPECT_THAT(b.drive.notes(), Contains(HasSubstr("MICROCODE HAS BEEN CHANGED (3F/01)")));
  const auto st = b.emu.state();
  EXPECT_EQ(st["revision"], "1.04");
  EXPECT_EQ(st["activations"], 1);
  EXPECT_EQ(st["bytes-received"], 100'000);
}

TEST(Emulator, Mode7ChunksActivateWithTheLastOne) {
  Bench b;
  const auto image = build_test_microcode(kProduct, "1.12", 10'000, 3);
  for (std::size_t off = 0; off < image.size(); off += 4096) {
    const std::size_t n = std::min<std::size_t>(4096, image.size() - off);
    const bool last = off + n == image.size();
    ASSERT_TRUE(b.drive.write_buffer(7, static_cast<std::uint32_t>(off),
                                     std::span(image).subspan(off, n), milliseconds(1000)));
    if (!last) {
      EXPECT_EQ(revision(b.drive), "1.01") << "after the chunk at " << off;
      EXPECT_EQ(b.emu.state()["buffered"], off + n);
    }
  }
  b.advance(milliseconds(2000));
  EXPECT_EQ(revision(b.drive), "1.12");
  const auto writes = b.emu.state()["writes"];
  ASSERT_EQ(writes.size(), 3u);
  EXPECT_EQ(writes[1]["offset"], 4096);
  EXPECT_EQ(writes[2]["result"], "activated 1.12");
}

TEST(Emulator, Mode7OffsetsMustFollowOn) {
  Bench b;
  const auto image = build_test_microcode(kProduct, "1.12", 10'000, 3);
  ASSERT_TRUE(b.drive.write_buffer(7, 0, std::span(image).first(4096), milliseconds(1000)));
  auto gap =
      b.drive.write_buffer(7, 8192, std::span(image).subspan(8192, 1808), milliseconds(1000));
  ASSERT_FALSE(gap.has_value());
  EXPECT_EQ(gap.error().code(), Errc::PreconditionFailed);
  EXPECT_THAT(gap.error().message(), HasSubstr("INVALID FIELD IN CDB (24/00)"));
  EXPECT_EQ(b.emu.state()["buffered"], 0);  // the partial image is gone
  EXPECT_EQ(revision(b.drive), "1.01");
}

TEST(Emulator, Mode0EDefersUntil0FOrPowerOn) {
  Bench b;
  const auto image = build_test_microcode(kProduct, "1.04", 5000, 9);
  // 0x0F with nothing deferred is a sequence error.
  auto early = b.drive.write_buffer(0x0F, 0, {}, milliseconds(1000));
  ASSERT_FALSE(early.has_value());
  EXPECT_THAT(early.error().message(), HasSubstr("COMMAND SEQUENCE ERROR (2C/00)"));
  ASSERT_TRUE(b.drive.write_buffer(0x0E, 0, std::span(image).first(3000), milliseconds(1000)));
  ASSERT_TRUE(b.drive.write_buffer(0x0E, 3000, std::span(image).subspan(3000), milliseconds(1000)));
  EXPECT_EQ(revision(b.drive), "1.01");
  EXPECT_EQ(b.emu.state()["deferred"], "1.04");
  // A power cycle (a new drive from the saved state) activates it.
  Bench cycled(EmulatorConfig{}, b.emu.state());
  EXPECT_EQ(revision(cycled.drive), "1.04");
  EXPECT_EQ(cycled.emu.state()["deferred"], "");
  // Or 0x0F does, through a reboot.
  ASSERT_TRUE(b.drive.write_buffer(0x0F, 0, {}, milliseconds(1000)));
  EXPECT_FALSE(b.drive.inquiry().has_value());
  b.advance(milliseconds(1600));
  EXPECT_EQ(revision(b.drive), "1.04");
}

TEST(Emulator, RefusesImagesForOtherDrivesAndBrokenOnes) {
  Bench b;
  struct Case {
    const char* name;
    scsi::Bytes image;
  };
  auto broken = build_test_microcode(kProduct, "1.04", 4096, 1);
  broken[100] ^= 1;
  auto truncated = build_test_microcode(kProduct, "1.04", 4096, 1);
  truncated.resize(4000);
  const Case cases[] = {
      {"another product", build_test_microcode("BD-MLT UJ260", "1.04", 4096, 1)},
      {"bad CRC", broken},
      {"length field disagrees", truncated},
      {"not microcode", scsi::Bytes(4096, 0x5A)},
  };
  int refused = 0;
  for (const auto& c : cases) {
    auto r = b.drive.write_buffer(5, 0, c.image, milliseconds(1000));
    ASSERT_FALSE(r.has_value()) << c.name;
    EXPECT_EQ(r.error().code(), Errc::PreconditionFailed) << c.name;
    EXPECT_THAT(r.error().message(), HasSubstr("INVALID FIELD IN PARAMETER LIST (26/00)"))
        << c.name;
    ++refused;
  }
  EXPECT_EQ(b.emu.state()["refused"], refused);
  EXPECT_EQ(revision(b.drive), "1.01");
}

TEST(Emulator, ModesCapacityAndOffsetsItDoesNotTake) {
  EmulatorConfig c;
  c.modes = {5};
  c.capacity = 8192;
  Bench b(c);
  const auto image = build_test_microcode(kProduct, "1.04", 4096, 1);
  auto mode7 = b.drive.write_buffer(7, 0, image, milliseconds(1000));
  ASSERT_FALSE(mode7.has_value());
  EXPECT_THAT(mode7.error().message(), HasSubstr("INVALID FIELD IN CDB (24/00)"));
  auto offset = b.drive.write_buffer(5, 16, image, milliseconds(1000));
  ASSERT_FALSE(offset.has_value());
  const auto big = build_test_microcode(kProduct, "1.04", 9000, 1);
  ASSERT_FALSE(b.drive.write_buffer(5, 0, big, milliseconds(1000)).has_value());
  EXPECT_TRUE(b.drive.write_buffer(5, 0, image, milliseconds(1000)).has_value());
}

TEST(Emulator, RequestSenseReportsAndClears) {
  Bench b({}, {}, false);
  auto request_sense = [&](bool desc) {
    const auto cdb = s::request_sense_cdb(252, desc);
    auto r = b.transport.execute({cdb, Direction::In, {}, 252, milliseconds(1000)});
    EXPECT_TRUE(r.has_value());
    EXPECT_EQ(r->status, s::kGood);
    return *s::parse_sense(r->data);
  };
  auto first = request_sense(false);
  EXPECT_EQ(first.key, s::kUnitAttention);
  EXPECT_EQ(first.asc, 0x29);
  auto second = request_sense(true);
  EXPECT_TRUE(second.descriptor_format);
  EXPECT_EQ(second.key, s::kNotReady);
  EXPECT_EQ(second.asc, 0x3A);
}

TEST(Emulator, CommandsItDoesNotKnow) {
  Bench b;
  const scsi::Bytes read12 = {0xA8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
  auto r = b.transport.execute({read12, Direction::In, {}, 2048, milliseconds(1000)});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, s::kCheckCondition);
  EXPECT_EQ(s::parse_sense(r->sense)->asc, 0x20);
  EXPECT_EQ(status_error("READ(12)", *r).code(), Errc::NotSupported);
  // A CDB of the wrong length for its group.
  const scsi::Bytes bad_tur = {0x00, 0, 0, 0};
  auto t = b.transport.execute({bad_tur, Direction::None, {}, 0, milliseconds(1000)});
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->status, s::kCheckCondition);
}

TEST(Emulator, FaultsCheckConditionTimeoutVanish) {
  EmulatorConfig c;
  auto fault = [](nlohmann::json j) { return *Fault::from_json(j); };
  c.faults.push_back(fault({{"on", "write-buffer"},
                            {"nth", 2},
                            {"action", "check-condition"},
                            {"key", 4},
                            {"asc", 0x44},
                            {"ascq", 0}}));
  c.faults.push_back(fault({{"on", "write-buffer"}, {"nth", 3}, {"action", "timeout"}}));
  c.faults.push_back(fault({{"on", "write-buffer"}, {"nth", 4}, {"action", "vanish"}}));
  Bench b(c);
  const auto image = build_test_microcode(kProduct, "1.04", 8192, 1);
  auto chunk = [&](std::uint32_t off) {
    return b.drive.write_buffer(7, off, std::span(image).subspan(off, 2048), milliseconds(500));
  };
  EXPECT_TRUE(chunk(0).has_value());
  auto hw = chunk(2048);
  ASSERT_FALSE(hw.has_value());
  EXPECT_EQ(hw.error().code(), Errc::Internal);
  EXPECT_THAT(hw.error().message(), HasSubstr("HARDWARE ERROR: INTERNAL TARGET FAILURE (44/00)"));
  auto slow = chunk(0);
  ASSERT_FALSE(slow.has_value());
  EXPECT_EQ(slow.error().code(), Errc::Timeout);
  auto gone = chunk(0);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code(), Errc::Unreachable);
  EXPECT_TRUE(b.transport.gone());
  EXPECT_FALSE(b.drive.inquiry().has_value());  // gone for good, until a power cycle
  // The partial image did not survive the power cycle.
  Bench cycled(EmulatorConfig{}, b.emu.state());
  EXPECT_EQ(revision(cycled.drive), "1.01");
  EXPECT_EQ(cycled.emu.state()["buffered"], 0);
}

TEST(Emulator, VanishAfterTheCommandTookEffect) {
  EmulatorConfig c;
  c.faults.push_back(
      *Fault::from_json({{"on", "write-buffer"}, {"action", "vanish"}, {"after", true}}));
  Bench b(c);
  const auto image = build_test_microcode(kProduct, "1.04", 4096, 1);
  auto r = b.drive.write_buffer(5, 0, image, milliseconds(500));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Errc::Unreachable);
  Bench cycled(EmulatorConfig{}, b.emu.state());
  EXPECT_EQ(revision(cycled.drive), "1.04");  // saved before the drive dropped off
}

TEST(Emulator, FaultAndConfigValidation) {
  EXPECT_FALSE(Fault::from_json({{"action", "explode"}}).has_value());
  EXPECT_FALSE(Fault::from_json({{"action", "vanish"}, {"on", "read"}}).has_value());
  EXPECT_FALSE(Fault::from_json({{"action", "vanish"}, {"nth", 0}}).has_value());
  EXPECT_FALSE(Fault::from_json({{"action", "vanish"}, {"colour", 1}}).has_value());
  EXPECT_FALSE(Fault::from_json(nlohmann::json::array()).has_value());
  EXPECT_FALSE(EmulatorConfig::from_json({{"medium", "hd-dvd"}}).has_value());
  EXPECT_FALSE(EmulatorConfig::from_json({{"capacity", 10}}).has_value());
  auto ok = EmulatorConfig::from_json({{"revision", "1.04"}, {"modes", {5, 7}}, {"reboot-ms", 5}});
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->modes.size(), 2u);
  EXPECT_EQ(ok->reboot, milliseconds(5));
  DriveEmulator e(*ok);
  EXPECT_TRUE(e.control({{"op", "bogus"}}).contains("error"));
  EXPECT_TRUE(e.control({{"op", "medium"}, {"medium", "lp"}}).contains("error"));
}

TEST(Emulator, Microcode) {
  const auto m = build_test_microcode(kProduct, "1.12", 200, 5);
  auto p = parse_test_microcode(m);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->product, kProduct);
  EXPECT_EQ(p->revision, "1.12");
  EXPECT_EQ(p->length, 200u);
  EXPECT_NE(build_test_microcode(kProduct, "1.12", 200, 6), m);
  EXPECT_FALSE(parse_test_microcode(std::span(m).first(63)).has_value());
}

// ---- The wire format ----

TEST(Wire, RoundTrips) {
  wire::Request req;
  req.direction = Direction::Out;
  req.data_in_length = 0;
  req.timeout_ms = 1234;
  req.cdb = {0x3B, 5, 0, 0, 0, 0, 0, 0, 3, 0};
  req.data_out = {1, 2, 3};
  const auto frame = wire::encode(req);
  ASSERT_EQ(frame.size(), 4u + 11 + 10 + 3);
  auto back = wire::decode_request(std::span(frame).subspan(4));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->direction, Direction::Out);
  EXPECT_EQ(back->timeout_ms, 1234u);
  EXPECT_EQ(back->cdb, req.cdb);
  EXPECT_EQ(back->data_out, req.data_out);

  wire::Reply rep;
  rep.status = 2;
  rep.sense = s::build_fixed_sense(2, 0x3A, 1);
  rep.residual = 77;
  rep.data = {9, 8};
  const auto rf = wire::encode(rep);
  auto rb = wire::decode_reply(std::span(rf).subspan(4));
  ASSERT_TRUE(rb.has_value());
  EXPECT_EQ(rb->status, 2);
  EXPECT_EQ(rb->sense, rep.sense);
  EXPECT_EQ(rb->residual, 77u);
  EXPECT_EQ(rb->data, rep.data);

  wire::Request ctl;
  ctl.kind = wire::Kind::Control;
  ctl.control = R"({"op":"state"})";
  const auto cf = wire::encode(ctl);
  EXPECT_EQ(wire::decode_request(std::span(cf).subspan(4))->control, ctl.control);
}

TEST(Wire, BadFrames) {
  struct Case {
    scsi::Bytes body;
    const char* error;
  };
  const Case requests[] = {
      {{}, "empty frame"},
      {{3}, "frame kind 3"},
      {{1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "the header needs 11"},
      {{1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0}, "direction 3"},
      {{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "CDB length 0"},
      {{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17}, "CDB length 17"},
      {{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0}, "runs past the frame"},
      {{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 9}, "data-out bytes on a command without"},
      {{1, 1, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0}, "data-in length"},
  };
  for (const auto& c : requests) {
    auto r = wire::decode_request(c.body);
    ASSERT_FALSE(r.has_value()) << c.error;
    EXPECT_THAT(r.error().message(), HasSubstr(c.error));
  }
  EXPECT_FALSE(wire::decode_reply(scsi::Bytes{1, 0}).has_value());
  auto past = wire::decode_reply(scsi::Bytes{1, 2, 18, 0x70});
  ASSERT_FALSE(past.has_value());
  EXPECT_THAT(past.error().message(), HasSubstr("run past the frame"));
}

}  // namespace
}  // namespace labctl::optical_drive
