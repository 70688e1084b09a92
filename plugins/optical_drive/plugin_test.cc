// The optical-drive plugin's steps, probe and verbs against the emulated drive served on a thread
// (the same server labctl-drive-emulator runs), through the real emulator transport: the plugin
// opens `emulator:SOCKET` exactly as it opens /dev/sg1. Each failure the issue names -- CHECK
// CONDITION, timeout, the drive gone mid-write, a disc in the tray, another device on the path --
// must end in a clear state: the failing step says why, and step_done() calls nothing done that
// the drive does not show.
#include "plugins/optical_drive/plugin.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "plugins/optical_drive/emulator.h"
#include "plugins/optical_drive/emulator_server.h"
#include "plugins/optical_drive/flash.h"
#include "plugins/sim/sim_state.h"

namespace labctl::optical_drive {
namespace {

using nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kProduct = "BD-MLT UJ240AS";

// One emulated drive on a thread; destroying it is pulling the plug.
class Peer {
 public:
  Peer(const fs::path& dir, EmulatorConfig config, const json& saved = {})
      : socket_((dir / "drive.sock").string()),
        state_((dir / "drive.json").string()),
        emu_(std::move(config), saved) {
    auto s = EmulatorServer::listen(socket_);
    EXPECT_TRUE(s.has_value());
    server_ = std::move(*s);
    thread_ = std::thread([this] { vanished_ = server_->run(emu_, state_, stop_); });
  }
  ~Peer() {
    stop_ = true;
    thread_.join();
  }
  json state() const { return *sim::load_state(state_); }
  bool vanished() {
    // run() returns when the drive vanished; give the thread a moment to get there.
    for (int i = 0; i < 100 && !vanished_; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return vanished_;
  }
  const std::string& socket() const { return socket_; }

 private:
  std::string socket_, state_;
  DriveEmulator emu_;
  std::unique_ptr<EmulatorServer> server_;
  std::atomic<bool> stop_{false}, vanished_{false};
  std::thread thread_;
};

class Context : public sdk::DeviceContext {
 public:
  Result<std::string> secret(const sdk::Device&, const std::string&) override {
    return fail(Errc::NotFound, "no secrets here");
  }
  std::filesystem::path plugin_state_dir() const override { return dir / "plugins"; }
  const inventory::Catalog* catalog() const override { return &*cat; }
  void progress(std::uint64_t done, std::uint64_t total, std::string_view) override {
    std::lock_guard lock(mu);
    last_progress = {done, total};
  }
  bool cancelled() const override { return cancel.load(); }
  void log(std::string_view m) override {
    std::lock_guard lock(mu);
    logs.emplace_back(m);
  }
  Result<std::vector<sdk::FirmwareImage>> firmware_images(const inventory::Family&,
                                                          const inventory::Release& r) override {
    auto it = store.find(r.version.text);
    if (it == store.end())
      return fail(Errc::NotFound, "release " + r.version.text + " is not in the store");
    return it->second;
  }
  std::string all_logs() {
    std::string s;
    for (const auto& l : logs)
      s += l + "\n";
    return s;
  }

  fs::path dir;
  std::optional<inventory::Catalog> cat;
  std::map<std::string, std::vector<sdk::FirmwareImage>> store;
  std::atomic<bool> cancel{false};
  std::mutex mu;
  std::vector<std::string> logs;
  std::pair<std::uint64_t, std::uint64_t> last_progress{0, 0};
};

std::vector<std::uint8_t> pe_with(const std::vector<std::uint8_t>& image, std::size_t at) {
  std::vector<std::uint8_t> b(at + image.size() + 512, 0xCC);
  b[0] = 'M';
  b[1] = 'Z';
  b[0x3C] = 0x80;
  b[0x80] = 'P';
  b[0x81] = 'E';
  b[0x82] = b[0x83] = 0;
  std::copy(image.begin(), image.end(), b.begin() + static_cast<long>(at));
  return b;
}

class DrivePlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_.dir = fs::temp_directory_path() /
               ("labctl-drive-plugin-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(ctx_.dir);
    fs::create_directories(ctx_.dir);
    image104_ = build_test_microcode(kProduct, "1.04", 40'000, 104);
    image112_ = build_test_microcode(kProduct, "1.12", 50'000, 112);
    updater112_ = pe_with(image112_, 8192);
    const std::string catalog = R"(version: 1
families:
  - name: panasonic-uj240as
    models: [UJ240AS]
    scheme: dotted
    quirks: {inquiry-vendor: MATSHITA}
    releases:
      - {version: "1.01", files: []}
      - version: "1.04"
        options: {write-buffer-mode: 5}
        files: [{name: UJ240AS-1.04.bin, sha256: pin}]
      - version: "1.12"
        options:
          write-buffer-mode: 7
          chunk-size: 16384
          image: {offset: 8192, length: 50000, sha256: )" +
                                sha256_hex(image112_) + R"(}
        files: [{name: uj240as_v112.exe, sha256: pin}]
        requires: [{installed: {min: "1.04"}, reason: "the seed's owner could not skip 1.04"}]
      - version: "1.20"
        options: {write-buffer-mode: 5}
        files: [{name: uj240as_v120.exe, sha256: pin}]
      - version: "1.30"
        options: {write-buffer-mode: 14, chunk-size: 8192, activate: false}
        files: [{name: UJ240AS-1.30.bin, sha256: pin}]
)";
    inventory::Diagnostics diags;
    ctx_.cat = inventory::load_catalog_text(catalog, "test-catalog.yaml", diags);
    ASSERT_TRUE(ctx_.cat.has_value());
    ctx_.store["1.04"] = {put("UJ240AS-1.04.bin", image104_)};
    ctx_.store["1.12"] = {put("uj240as_v112.exe", updater112_)};
    ctx_.store["1.30"] = {
        put("UJ240AS-1.30.bin", build_test_microcode(kProduct, "1.30", 20'000, 130))};
    device_.name = "htpc-bd";
    device_.type = "optical-drive";
    device_.model = "UJ240AS";
    device_.params = {{"device", "emulator:" + (ctx_.dir / "drive.sock").string()},
                      {"accept-brick-risk", true},
                      {"command-timeout", 2000},
                      {"write-timeout", 5000},
                      {"reboot-timeout", 3000},
                      {"poll-interval", 20}};
  }
  void TearDown() override {
    peer_.reset();
    fs::remove_all(ctx_.dir);
  }

  sdk::FirmwareImage put(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    const fs::path p = ctx_.dir / name;
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
    return {name, sha256_hex(bytes), bytes.size(), p};
  }

  EmulatorConfig config(const std::string& revision = "1.01") {
    EmulatorConfig c;
    c.revision = revision;
    c.reboot = std::chrono::milliseconds(100);
    return c;
  }
  void start(EmulatorConfig c) { peer_ = std::make_unique<Peer>(ctx_.dir, std::move(c)); }
  // Pulls the plug and plugs it back in: a new emulator with the old one's saved state.
  void power_cycle(EmulatorConfig c) {
    json saved = *sim::load_state(ctx_.dir / "drive.json");
    peer_.reset();
    peer_ = std::make_unique<Peer>(ctx_.dir, std::move(c), saved);
  }

  std::vector<sdk::Step> steps(const std::string& from, const std::string& to) {
    const auto* fam = ctx_.cat->family("panasonic-uj240as");
    sdk::HopInfo hop{
        fam->find(to), *inventory::parse_version(fam->scheme, from), fam->find(to)->version, 1, 1,
        "test"};
    auto s = plugin_.hop_steps(device_, hop);
    EXPECT_TRUE(s.has_value()) << s.error().message();
    return s ? *s : std::vector<sdk::Step>{};
  }
  const sdk::Step& step(const std::vector<sdk::Step>& all, const std::string& action) {
    for (const auto& s : all)
      if (s.action == action) return s;
    throw std::runtime_error("no step " + action);
  }
  // Runs the steps in order; the first failure is returned.
  Status run_all(const std::vector<sdk::Step>& all) {
    for (const auto& s : all)
      if (auto r = plugin_.run_step(ctx_, device_, s); !r)
        return fail(r.error().code(), s.action + ": " + r.error().message());
    return {};
  }
  std::string revision() {
    auto v = plugin_.run_verb(ctx_, device_, "identify", json::object());
    return v ? v->data.value("revision", std::string()) : "error: " + v.error().message();
  }
  std::size_t downloads() {
    std::size_t n = 0;
    const json st = peer_->state();
    for (const auto& w : st["writes"])
      n += w["mode"] != 0x0F;
    return n;
  }

  OpticalDrivePlugin plugin_;
  Context ctx_;
  sdk::Device device_;
  std::unique_ptr<Peer> peer_;
  std::vector<std::uint8_t> image104_, image112_, updater112_;
};

TEST_F(DrivePlugin, HopStepsNeedConsentAndSayEverything) {
  auto all = steps("1.01", "1.04");
  ASSERT_EQ(all.size(), 6u);
  std::vector<std::string> actions;
  for (const auto& s : all)
    actions.push_back(s.action);
  EXPECT_EQ(actions, (std::vector<std::string>{"verify-image", "identify", "check-idle", "write",
                                               "wait-online", "verify"}));
  for (const auto& s : all) {
    EXPECT_EQ(s.writes, s.action == "write") << s.action;
    EXPECT_EQ(s.key, s.action + "@1.04");
    EXPECT_EQ(s.args["from"], "1.01");
    EXPECT_EQ(s.args["mode"], 5);
  }
  EXPECT_THAT(step(all, "write").title, HasSubstr("WRITE BUFFER mode 5"));
  auto hop2 = steps("1.04", "1.12");
  EXPECT_EQ(hop2[3].args["mode"], 7);
  EXPECT_EQ(hop2[3].args["chunk"], 16384);
  EXPECT_THAT(hop2[0].title, HasSubstr("uj240as_v112.exe, extracted"));

  device_.params["accept-brick-risk"] = false;
  const auto* fam = ctx_.cat->family("panasonic-uj240as");
  sdk::HopInfo hop{fam->find("1.04"),
                   *inventory::parse_version(fam->scheme, "1.01"),
                   fam->find("1.04")->version,
                   1,
                   1,
                   ""};
  auto refused = plugin_.hop_steps(device_, hop);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Errc::PreconditionFailed);
  EXPECT_THAT(refused.error().message(), HasSubstr("can brick it"));
  EXPECT_THAT(refused.error().message(), HasSubstr("--accept-brick-risk"));
  // An updater without the image's place in the catalog: blocked, saying what is missing.
  device_.params["accept-brick-risk"] = true;
  sdk::HopInfo exe{fam->find("1.20"),
                   *inventory::parse_version(fam->scheme, "1.12"),
                   fam->find("1.20")->version,
                   1,
                   1,
                   ""};
  auto blocked = plugin_.hop_steps(device_, exe);
  ASSERT_FALSE(blocked.has_value());
  EXPECT_EQ(blocked.error().code(), Errc::NotSupported);
  EXPECT_THAT(blocked.error().message(), HasSubstr("offset, length and sha256"));
}

TEST_F(DrivePlugin, ProbeAndIdentify) {
  EmulatorConfig c = config();
  c.medium = "dvd";
  start(c);
  auto o = plugin_.probe(ctx_, device_);
  ASSERT_TRUE(o.has_value()) << o.error().message();
  EXPECT_EQ(o->version, "1.01");
  EXPECT_EQ(o->model, "UJ240AS");
  EXPECT_EQ(o->serial, "HM12345678");
  EXPECT_EQ(o->facts["vendor"], "MATSHITA");
  EXPECT_EQ(o->facts["profile"]["name"], "DVD-ROM");
  EXPECT_EQ(o->facts["profile"]["class"], "DVD");
  EXPECT_EQ(o->health["readiness"]["state"], "ready");
  EXPECT_THAT(o->health["unit_attentions"].dump(), HasSubstr("POWER ON OCCURRED"));
  EXPECT_TRUE(o->findings.empty());
  auto v = plugin_.run_verb(ctx_, device_, "identify", json::object());
  ASSERT_TRUE(v.has_value());
  EXPECT_THAT(v->text, HasSubstr("MATSHITA BD-MLT UJ240AS 1.01 (serial HM12345678)"));
  EXPECT_THAT(v->text, HasSubstr("DVD-ROM (DVD)"));
}

TEST_F(DrivePlugin, ProbeFlagsAnotherDriveOnThePath) {
  EmulatorConfig c = config();
  c.product = "DVD-RAM UJ8E2";
  start(c);
  auto o = plugin_.probe(ctx_, device_);
  ASSERT_TRUE(o.has_value());
  ASSERT_EQ(o->findings.size(), 1u);
  EXPECT_EQ(o->findings[0].code, "wrong-device");
  EXPECT_THAT(o->findings[0].message, HasSubstr("not a UJ240AS"));
  // And the identify step refuses it.
  auto all = steps("1.01", "1.04");
  auto r = plugin_.run_step(ctx_, device_, step(all, "identify"));
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("refusing to flash it"));
}

TEST_F(DrivePlugin, NotAnOpticalDrive) {
  EmulatorConfig c = config();
  scsi::InquiryData disk;
  disk.device_type = 0;
  disk.vendor = "MATSHITA";
  disk.product = "UJ240AS";
  disk.revision = "1.01";
  c.inquiry = scsi::build_inquiry(disk);
  start(c);
  auto r = plugin_.run_step(ctx_, device_, step(steps("1.01", "1.04"), "identify"));
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("is a disk (peripheral device type 0)"));
}

TEST_F(DrivePlugin, OneHopEndToEnd) {
  start(config());
  auto all = steps("1.01", "1.04");
  for (const auto& s : all) {
    auto done = plugin_.step_done(ctx_, device_, s);
    ASSERT_TRUE(done.has_value());
    EXPECT_FALSE(*done) << s.action;
  }
  ASSERT_TRUE(run_all(all)) << ctx_.all_logs();
  EXPECT_EQ(revision(), "1.04");
  const auto st = peer_->state();
  EXPECT_EQ(st["activations"], 1);
  ASSERT_EQ(st["writes"].size(), 1u);
  EXPECT_EQ(st["writes"][0]["mode"], 5);
  EXPECT_EQ(st["writes"][0]["length"], image104_.size());
  EXPECT_THAT(ctx_.all_logs(), HasSubstr("MICROCODE HAS BEEN CHANGED"));
  EXPECT_THAT(ctx_.all_logs(), HasSubstr("the drive is back after"));
  EXPECT_EQ(ctx_.last_progress.second, 65536u);  // the reboot's progress came last
  for (const auto& s : all)
    EXPECT_TRUE(*plugin_.step_done(ctx_, device_, s)) << s.action;
}

TEST_F(DrivePlugin, TwoHopsTheSecondFromAnUpdater) {
  start(config());
  ASSERT_TRUE(run_all(steps("1.01", "1.04")));
  ASSERT_TRUE(run_all(steps("1.04", "1.12"))) << ctx_.all_logs();
  EXPECT_EQ(revision(), "1.12");
  const auto writes = peer_->state()["writes"];
  ASSERT_EQ(writes.size(), 1u + 4u);  // 50000 bytes in 16384-byte chunks
  EXPECT_EQ(writes[4]["offset"], 3 * 16384);
  EXPECT_EQ(writes[4]["result"], "activated 1.12");
  EXPECT_THAT(ctx_.all_logs(), HasSubstr("extracted from uj240as_v112.exe"));
}

TEST_F(DrivePlugin, DiscInTheTrayStopsBeforeAnyWrite) {
  EmulatorConfig c = config();
  c.medium = "bd";
  start(c);
  auto all = steps("1.01", "1.04");
  ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, "identify")));
  auto idle = plugin_.run_step(ctx_, device_, step(all, "check-idle"));
  ASSERT_FALSE(idle.has_value());
  EXPECT_EQ(idle.error().code(), Errc::PreconditionFailed);
  EXPECT_THAT(idle.error().message(), HasSubstr("a disc is in the drive; eject it"));
  auto write = plugin_.run_step(ctx_, device_, step(all, "write"));
  ASSERT_FALSE(write.has_value());
  EXPECT_THAT(write.error().message(), HasSubstr("a disc is in the drive"));
  EXPECT_EQ(downloads(), 0u);
  EXPECT_FALSE(*plugin_.step_done(ctx_, device_, step(all, "write")));
}

TEST_F(DrivePlugin, NeverWritesToADifferentDevice) {
  start(config());
  auto all = steps("1.01", "1.04");
  ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, "identify")));
  // Another drive answers on the same path now (re-enumerated, swapped).
  EmulatorConfig other = config();
  other.serial = "ZZ99";
  peer_.reset();
  start(other);
  auto write = plugin_.run_step(ctx_, device_, step(all, "write"));
  ASSERT_FALSE(write.has_value());
  EXPECT_EQ(write.error().code(), Errc::PreconditionFailed);
  EXPECT_THAT(write.error().message(), HasSubstr("refusing to write to a different device"));
  EXPECT_THAT(write.error().message(), HasSubstr("serial ZZ99"));
  EXPECT_EQ(downloads(), 0u);
  // Without an identify first, no write either.
  fs::remove_all(ctx_.dir / "plugins");
  auto blind = plugin_.run_step(ctx_, device_, step(all, "write"));
  ASSERT_FALSE(blind.has_value());
  EXPECT_THAT(blind.error().message(), HasSubstr("the identify step has to run first"));
}

TEST_F(DrivePlugin, WriteNeedsConsentEvenFromAJournal) {
  start(config());
  auto all = steps("1.01", "1.04");
  ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, "identify")));
  sdk::Step w = step(all, "write");
  w.args.erase(kConsentArg);
  device_.params["accept-brick-risk"] = false;
  auto r = plugin_.run_step(ctx_, device_, w);
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("can brick it"));
  EXPECT_EQ(downloads(), 0u);
}

TEST_F(DrivePlugin, DriveGoneMidWriteThenResumed) {
  EmulatorConfig c = config();
  c.faults.push_back(*Fault::from_json({{"on", "write-buffer"}, {"nth", 2}, {"action", "vanish"}}));
  start(config());
  ASSERT_TRUE(run_all(steps("1.01", "1.04")));
  power_cycle(c);
  auto all = steps("1.04", "1.12");
  ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, "identify")));
  ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, "check-idle")));
  auto w = plugin_.run_step(ctx_, device_, step(all, "write"));
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), Errc::Unreachable);
  EXPECT_THAT(w.error().message(), HasSubstr("the drive is gone"));
  EXPECT_THAT(w.error().message(), HasSubstr("the drive keeps 1.04 unless"));
  EXPECT_TRUE(peer_->vanished());
  // While it is gone nothing can be called done.
  EXPECT_FALSE(plugin_.step_done(ctx_, device_, step(all, "write")).has_value());
  // Power back on: the partial image is gone, the drive runs 1.04, the write is not done.
  power_cycle(config());
  EXPECT_EQ(revision(), "1.04");
  EXPECT_FALSE(*plugin_.step_done(ctx_, device_, step(all, "write")));
  for (const char* a : {"write", "wait-online", "verify"})
    ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, a))) << a << "\n" << ctx_.all_logs();
  EXPECT_EQ(revision(), "1.12");
}

TEST_F(DrivePlugin, DriveGoneAfterTakingTheImage) {
  EmulatorConfig c = config();
  c.faults.push_back(
      *Fault::from_json({{"on", "write-buffer"}, {"action", "vanish"}, {"after", true}}));
  start(c);
  auto all = steps("1.01", "1.04");
  ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, "identify")));
  auto w = plugin_.run_step(ctx_, device_, step(all, "write"));
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), Errc::Unreachable);
  power_cycle(config());
  // The drive took it before it dropped off: the resumed run finds the write done.
  EXPECT_TRUE(*plugin_.step_done(ctx_, device_, step(all, "write")));
  ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, "verify")));
}

TEST_F(DrivePlugin, TimeoutAndCheckConditionLeaveTheOldFirmware) {
  EmulatorConfig c = config();
  c.faults.push_back(
      *Fault::from_json({{"on", "write-buffer"}, {"action", "timeout"}, {"hang-ms", 600}}));
  c.faults.push_back(*Fault::from_json({{"on", "write-buffer"},
                                        {"nth", 2},
                                        {"action", "check-condition"},
                                        {"key", 5},
                                        {"asc", 0x26},
                                        {"ascq", 0}}));
  start(c);
  device_.params["write-timeout"] = 200;
  auto all = steps("1.01", "1.04");
  ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, "identify")));
  const auto t0 = std::chrono::steady_clock::now();
  auto slow = plugin_.run_step(ctx_, device_, step(all, "write"));
  ASSERT_FALSE(slow.has_value());
  EXPECT_EQ(slow.error().code(), Errc::Timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the emulator drops the command
  auto refused = plugin_.run_step(ctx_, device_, step(all, "write"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Errc::PreconditionFailed);
  EXPECT_THAT(refused.error().message(),
              HasSubstr("ILLEGAL REQUEST: INVALID FIELD IN PARAMETER LIST (26/00)"));
  auto verify = plugin_.run_step(ctx_, device_, step(all, "verify"));
  ASSERT_FALSE(verify.has_value());
  EXPECT_EQ(verify.error().code(), Errc::VerifyMismatch);
  EXPECT_THAT(verify.error().message(), HasSubstr("reports revision 1.01 after the flash"));
  EXPECT_FALSE(*plugin_.step_done(ctx_, device_, step(all, "verify")));
  EXPECT_EQ(peer_->state()["activations"], 0);
  // The third attempt goes through.
  ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, "write")));
}

TEST_F(DrivePlugin, WaitOnlineGivesUpInTime) {
  EmulatorConfig c = config();
  c.reboot = std::chrono::milliseconds(5000);
  start(c);
  device_.params["reboot-timeout"] = 300;
  auto all = steps("1.01", "1.04");
  ASSERT_TRUE(run_all({all[0], all[1], all[2], all[3]}));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = plugin_.run_step(ctx_, device_, step(all, "wait-online"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Errc::Timeout);
  EXPECT_THAT(r.error().message(), HasSubstr("did not come back within 300 ms"));
  EXPECT_THAT(r.error().message(), HasSubstr("BECOMING READY"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  // Cancellation ends the wait too.
  device_.params["reboot-timeout"] = 60'000;
  ctx_.cancel = true;
  auto c2 = plugin_.run_step(ctx_, device_, step(all, "wait-online"));
  ASSERT_FALSE(c2.has_value());
  EXPECT_EQ(c2.error().code(), Errc::Cancelled);
}

TEST_F(DrivePlugin, DeferredActivationWaitsForAPowerCycle) {
  start(config());
  auto all = steps("1.01", "1.30");
  EXPECT_THAT(step(all, "wait-online").title, HasSubstr("wait for a power cycle to activate 1.30"));
  ASSERT_TRUE(run_all({all[0], all[1], all[2], all[3]})) << ctx_.all_logs();
  EXPECT_EQ(peer_->state()["deferred"], "1.30");
  EXPECT_EQ(downloads(), 3u);  // 20000 bytes in 8192-byte chunks, no 0x0F
  // Nobody power-cycles: wait-online says what it waits for, and gives up in time.
  device_.params["reboot-timeout"] = 300;
  auto r = plugin_.run_step(ctx_, device_, step(all, "wait-online"));
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("still runs 1.01, waiting for a power cycle"));
  EXPECT_THAT(ctx_.all_logs(), HasSubstr("power-cycle the drive now"));
  // The operator power-cycles while labctl waits.
  device_.params["reboot-timeout"] = 5000;
  std::thread operator_([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    power_cycle(config());
  });
  auto w = plugin_.run_step(ctx_, device_, step(all, "wait-online"));
  operator_.join();
  ASSERT_TRUE(w.has_value()) << w.error().message();
  ASSERT_TRUE(plugin_.run_step(ctx_, device_, step(all, "verify")));
  EXPECT_EQ(revision(), "1.30");
}

TEST_F(DrivePlugin, IdentifyWantsTheHopsFromVersion) {
  start(config());
  auto r = plugin_.run_step(ctx_, device_, step(steps("1.04", "1.12"), "identify"));
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message(), HasSubstr("the drive runs 1.01, this hop is from 1.04"));
}

TEST_F(DrivePlugin, FlashVerb) {
  start(config());
  auto flash = [&](const std::string& file, bool consent) {
    json args = {{"file", file}};
    if (consent) args[kConsentArg] = true;
    return plugin_.run_verb(ctx_, device_, "flash", args);
  };
  device_.params["accept-brick-risk"] = false;
  auto no = flash((ctx_.dir / "UJ240AS-1.04.bin").string(), false);
  ASSERT_FALSE(no.has_value());
  EXPECT_THAT(no.error().message(), HasSubstr("nothing was sent"));
  // A file the store does not hold.
  const auto stray = put("stray.bin", build_test_microcode(kProduct, "1.04", 4096, 99));
  auto unknown = flash(stray.path.string(), true);
  ASSERT_FALSE(unknown.has_value());
  EXPECT_THAT(unknown.error().message(), HasSubstr("not a verified file of any panasonic-uj240as"));
  // 1.01 -> 1.12 directly: the catalog's rule refuses it, as it refused the seed's owner.
  auto skip = flash((ctx_.dir / "uj240as_v112.exe").string(), true);
  ASSERT_FALSE(skip.has_value());
  EXPECT_THAT(skip.error().message(), HasSubstr("requires installed >= 1.04"));
  EXPECT_THAT(skip.error().message(), HasSubstr("could not skip 1.04"));
  EXPECT_EQ(downloads(), 0u);
  auto ok = flash((ctx_.dir / "UJ240AS-1.04.bin").string(), true);
  ASSERT_TRUE(ok.has_value()) << ok.error().message();
  EXPECT_EQ(ok->data["status"], "done");
  EXPECT_EQ(ok->data["steps"].size(), 6u);
  EXPECT_EQ(revision(), "1.04");
  auto again = flash((ctx_.dir / "UJ240AS-1.04.bin").string(), true);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->data["status"], "up-to-date");
  auto next = flash((ctx_.dir / "uj240as_v112.exe").string(), true);
  ASSERT_TRUE(next.has_value()) << next.error().message();
  EXPECT_EQ(revision(), "1.12");
  EXPECT_EQ(downloads(), 1u + 4u);
}

TEST_F(DrivePlugin, AuditShowsThePath) {
  start(config());
  device_.firmware.target = "1.12";
  auto a = plugin_.run_verb(ctx_, device_, "audit", json::object());
  ASSERT_TRUE(a.has_value()) << a.error().message();
  EXPECT_EQ(a->data["installed"], "1.01");
  EXPECT_EQ(a->data["drift"], true);
  ASSERT_EQ(a->data["hops"].size(), 2u);
  EXPECT_EQ(a->data["hops"][0]["to"], "1.04");
  EXPECT_EQ(a->data["hops"][0]["installable"], true);
  EXPECT_EQ(a->data["hops"][1]["image_sha256"], sha256_hex(image112_));
  EXPECT_THAT(a->data["hops"][0]["reason"].get<std::string>(), HasSubstr("1.04 first"));
  ctx_.store.erase("1.04");
  auto missing = plugin_.run_verb(ctx_, device_, "audit", json::object());
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->data["hops"][0]["installable"], false);
  EXPECT_THAT(missing->data["hops"][0]["status"].get<std::string>(), HasSubstr("not in the store"));
}

TEST_F(DrivePlugin, UnreachableDrive) {
  auto o = plugin_.probe(ctx_, device_);
  ASSERT_FALSE(o.has_value());
  EXPECT_EQ(o.error().code(), Errc::Unreachable);
  EXPECT_THAT(o.error().message(), HasSubstr("no drive answers"));
  sdk::Device bad = device_;
  bad.params["device"] = "/dev/null-drive-labctl-test";
  auto n = plugin_.probe(ctx_, bad);
  ASSERT_FALSE(n.has_value());
  EXPECT_EQ(n.error().code(), Errc::Unreachable);
}

}  // namespace
}  // namespace labctl::optical_drive
