// The agent API in one process: a real AgentServer (TLS on a loopback port) and the controller's
// RemoteAgent, with certificates from init_pki. Simulated devices, and a test plugin that asks for
// firmware, so the upload handshake runs end to end.
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "agents/rpc/pki.h"
#include "agents/rpc/remote_agent.h"
#include "agents/rpc/server.h"
#include "common/digest.h"
#include "inventory/catalog.h"
#include "inventory/loader.h"
#include "plugins/registry.h"

namespace labctl::agents::rpc {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A plugin whose only step needs the files of catalog release `args.release` of the device's
// family, and checks their bytes: what a firmware step on an agent does.
class FirmwarePlugin : public sdk::Plugin {
 public:
  FirmwarePlugin() {
    schema_.type = "test-fw";
    schema_.summary = "asks for firmware";
    schema_.model_required = true;
  }
  const inventory::DeviceSchema& schema() const override { return schema_; }
  std::string_view cli_noun() const override { return "drive"; }
  Result<sdk::Observation> probe(sdk::DeviceContext&, const sdk::Device& d) override {
    sdk::Observation o;
    o.model = d.model;
    o.version = "1.01";
    return o;
  }
  Result<bool> step_done(sdk::DeviceContext&, const sdk::Device&, const sdk::Step&) override {
    return false;
  }
  Status run_step(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& s) override {
    const auto* fam = ctx.catalog()->family_for_model(d.model);
    const auto* rel = fam->find(s.args.value("release", ""));
    if (rel == nullptr) return fail(Errc::NotFound, "no release");
    auto images = ctx.firmware_images(*fam, *rel);
    if (!images) return fail(std::move(images.error()));
    for (const auto& i : *images)
      if (read(i.path) != s.args.value("expect", "")) return fail(Errc::VerifyMismatch, "bytes");
    ++runs;
    return {};
  }
  int runs = 0;

 private:
  inventory::DeviceSchema schema_;
};

class Rpc : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/labctl-rpc-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    PkiOptions o;
    o.dir = dir_ / "pki";
    o.agents = {"a1"};
    auto r = init_pki(o);
    ASSERT_TRUE(r) << r.error().message();
    plugins::register_builtin_plugins(registry_);
    auto fw = std::make_unique<FirmwarePlugin>();
    fw_ = fw.get();
    registry_.add(std::move(fw));
    ::setenv("LABCTL_RPC_TEST_PW", "s3cret-value", 1);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  void start_server(const fs::path& state, int port = 0) {
    auto cfg = load_agent_config(dir_ / "pki" / "a1.yaml", "127.0.0.1:" + std::to_string(port));
    ASSERT_TRUE(cfg) << cfg.error().message();
    cfg->state_dir = state;
    auto s = AgentServer::start(*cfg, registry_, [this](const std::string& l) {
      std::lock_guard lock(log_mu_);
      log_ += l + "\n";
    });
    ASSERT_TRUE(s) << s.error().message();
    server_ = std::move(*s);
    port_ = server_->port();
  }

  // An inventory with a simulated drive and a test-fw device on agent a1, loaded as the
  // controller loads it.
  void load_lab() {
    inv_path_ = dir_ / "lab.yaml";
    std::ofstream(inv_path_) << "version: 1\nsite: rpc\nagents:\n  - {name: a1, url: \"https://"
                                "127.0.0.1:"
                             << port_ << "\"}\ndevices:\n"
                             << "  - {name: drive1, type: sim-drive, model: UJ240AS, agent: a1, "
                                "firmware: \"1.04\", accept-brick-risk: true, sim: {firmware: "
                                "\"1.01\", flash-delay: 200ms}}\n"
                             << "  - {name: fw1, type: test-fw, model: UJ240AS, agent: a1}\n";
    auto r = inventory::load_inventory(inv_path_, registry_);
    ASSERT_TRUE(r.inventory) << r.diags.sorted().front().format();
    inv_ = std::move(*r.inventory);
  }

  std::unique_ptr<RemoteAgent> remote(fs::path cert = {}) {
    RemoteAgentOptions o;
    o.name = "a1";
    o.url = "https://127.0.0.1:" + std::to_string(port_);
    o.ca = dir_ / "pki" / "ca.pem";
    o.cert = cert.empty() ? dir_ / "pki" / "controller.pem" : cert;
    o.key =
        cert.empty() ? dir_ / "pki" / "controller.key" : fs::path(cert).replace_extension(".key");
    o.config = ConfigPush{"lab.yaml", read(inv_path_), read(inv_.catalog->file)};
    o.catalog = inv_.catalog.get();
    o.connect_timeout = std::chrono::milliseconds(1000);
    o.retries = 2;
    o.firmware = [this](const inventory::Family&,
                        const inventory::Release& rel) -> Result<std::vector<sdk::FirmwareImage>> {
      const fs::path p = dir_ / ("image-" + rel.version.text);
      std::ofstream(p) << image_bytes_;
      const std::string sha = sha256_hex(image_bytes_);
      return std::vector<sdk::FirmwareImage>{{"image.bin", sha, image_bytes_.size(), p}};
    };
    return std::make_unique<RemoteAgent>(std::move(o));
  }

  fs::path dir_;
  plugins::Registry registry_;
  FirmwarePlugin* fw_ = nullptr;
  std::unique_ptr<AgentServer> server_;
  int port_ = 0;
  fs::path inv_path_;
  inventory::Inventory inv_;
  std::string image_bytes_ = "firmware image bytes";
  std::mutex log_mu_;
  std::string log_;
};

TEST(Pki, KeysArePrivateAndRotationKeepsTheCa) {
  char tmpl[] = "/tmp/labctl-pki-XXXXXX";
  const fs::path dir = ::mkdtemp(tmpl);
  PkiOptions o;
  o.dir = dir / "pki";
  o.agents = {"a1"};
  auto first = init_pki(o);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_TRUE(first->ca_created);
  for (const char* k : {"ca.key", "controller.key", "a1.key"}) {
    struct stat st {};
    ASSERT_EQ(::stat((o.dir / k).c_str(), &st), 0) << k;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << k;
  }
  const auto ca = certificate_fingerprint(o.dir / "ca.pem");
  const auto ctl = certificate_fingerprint(o.dir / "controller.pem");
  const auto a1 = certificate_fingerprint(o.dir / "a1.pem");
  ASSERT_TRUE(ca && ctl && a1);
  // Again for a1: a new certificate for the agent, the same CA and controller.
  auto second = init_pki(o);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->ca_created);
  EXPECT_FALSE(second->controller_issued);
  EXPECT_EQ(*certificate_fingerprint(o.dir / "ca.pem"), *ca);
  EXPECT_EQ(*certificate_fingerprint(o.dir / "controller.pem"), *ctl);
  EXPECT_NE(*certificate_fingerprint(o.dir / "a1.pem"), *a1);
  // A CA certificate without its key cannot sign: refused, nothing written.
  fs::remove(o.dir / "ca.key");
  auto third = init_pki(o);
  ASSERT_FALSE(third);
  EXPECT_NE(third.error().message().find("without ca.key"), std::string::npos);
  o.agents = {"local"};
  EXPECT_FALSE(init_pki(o));
  fs::remove_all(dir);
}

TEST_F(Rpc, ProbeStepAndVerbThroughTheAgent) {
  start_server(dir_ / "agent-state");
  load_lab();
  auto r = remote();
  auto st = r->status();
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(st->agent, "a1");
  EXPECT_EQ(st->config, "");  // nothing pushed yet

  const auto* drive = inv_.device("drive1");
  auto obs = r->probe(*drive);
  ASSERT_TRUE(obs) << obs.error().message();
  EXPECT_EQ(obs->version, "1.01");
  EXPECT_EQ(r->counters().config_pushes, 1u);

  // A writing step with progress streamed back as it happens.
  sdk::Step step;
  step.key = "flash@1.04";
  step.action = "flash";
  step.args = {{"to", "1.04"}};
  std::vector<std::uint64_t> seen;
  StepControl control;
  control.progress = [&](std::uint64_t done, std::uint64_t, std::string_view) {
    seen.push_back(done);
  };
  auto done_before = r->step_done(*drive, step);
  ASSERT_TRUE(done_before) << done_before.error().message();
  EXPECT_FALSE(*done_before);
  auto run = r->run_step(*drive, step, control);
  ASSERT_TRUE(run) << run.error().message();
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  auto done_after = r->step_done(*drive, step);
  ASSERT_TRUE(done_after);
  EXPECT_TRUE(*done_after);
  // The device state lives with the agent, not the controller.
  EXPECT_TRUE(fs::exists(dir_ / "agent-state" / "plugins" / "sim-drive" / "drive1.json"));

  // A device the agent does not have: a clear NotFound from the agent.
  sdk::Device ghost = *drive;
  ghost.name = "ghost";
  auto g = r->probe(ghost);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code(), Errc::NotFound);
  EXPECT_NE(g.error().message().find("agent 'a1'"), std::string::npos) << g.error().message();

  // The structured log names calls and steps, never a body.
  std::lock_guard lock(log_mu_);
  EXPECT_NE(log_.find("\"event\":\"step-end\""), std::string::npos);
  EXPECT_NE(log_.find("\"client\":\"labctl-controller\""), std::string::npos);
}

TEST_F(Rpc, AgentRestartedWithoutItsConfigurationIsSentItAgain) {
  start_server(dir_ / "s1");
  load_lab();
  auto r = remote();
  ASSERT_TRUE(r->probe(*inv_.device("drive1")));
  const int port = port_;
  server_->stop();
  server_.reset();
  // Another state directory: the agent comes back knowing nothing.
  start_server(dir_ / "s2", port);
  auto again = r->probe(*inv_.device("drive1"));
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(r->counters().config_pushes, 2u);
}

TEST_F(Rpc, FirmwareIsUploadedOnDemandAndReverifiedOnTheAgent) {
  start_server(dir_ / "agent-state");
  load_lab();
  auto r = remote();
  const auto* dev = inv_.device("fw1");
  sdk::Step step;
  step.key = "write@1.04";
  step.action = "write";
  step.args = {{"release", "1.04"}, {"expect", image_bytes_}};
  auto s = r->run_step(*dev, step, {});
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(fw_->runs, 1);
  EXPECT_EQ(r->counters().blobs_uploaded, 1u);
  // Known now: no upload the second time.
  ASSERT_TRUE(r->run_step(*dev, step, {}));
  EXPECT_EQ(r->counters().blobs_uploaded, 1u);
  // A damaged copy on the agent is found by its re-hash, dropped, and sent again.
  const fs::path blob = dir_ / "agent-state" / "blobs" / sha256_hex(image_bytes_);
  ASSERT_TRUE(fs::exists(blob));
  std::ofstream(blob) << "tampered";
  ASSERT_TRUE(r->run_step(*dev, step, {}));
  EXPECT_EQ(r->counters().blobs_uploaded, 2u);
  EXPECT_EQ(fw_->runs, 3);
  EXPECT_EQ(read(blob), image_bytes_);
}

TEST_F(Rpc, AStoppedAgentIsUnreachableAndAnUnpinnedClientIsRefused) {
  start_server(dir_ / "agent-state");
  load_lab();
  // A second controller certificate from the same CA: valid, but not the pinned one.
  PkiOptions o;
  o.dir = dir_ / "pki";
  o.renew_controller = true;
  ASSERT_TRUE(init_pki(o));
  auto other = remote();
  auto refused = other->status();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Errc::AuthFailed) << refused.error().message();
  // An agent's own certificate (serverAuth only) cannot pose as the controller.
  auto agent_cert = remote(dir_ / "pki" / "a1.pem");
  auto as_agent = agent_cert->status();
  ASSERT_FALSE(as_agent);
  EXPECT_EQ(as_agent.error().code(), Errc::AuthFailed) << as_agent.error().message();

  server_->stop();
  server_.reset();
  const auto t0 = std::chrono::steady_clock::now();
  auto down = other->probe(*inv_.device("drive1"));
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code(), Errc::Unreachable) << down.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST_F(Rpc, AStepIsCancelledWhenTheControllerGoesAway) {
  start_server(dir_ / "agent-state");
  load_lab();
  auto r = remote();
  const auto* drive = inv_.device("drive1");
  sdk::Step step;
  step.key = "flash@1.04";
  step.action = "flash";
  step.args = {{"to", "1.04"}};
  std::atomic<bool> cancel{false};
  StepControl control;
  control.cancel = &cancel;
  control.progress = [&](std::uint64_t done, std::uint64_t, std::string_view) {
    if (done == 1) cancel = true;  // the operator interrupts after the first quarter
  };
  auto s = r->run_step(*drive, step, control);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::Cancelled);
  // The agent noticed and abandoned the step: the device was not written.
  for (int i = 0; i < 100; ++i) {
    std::lock_guard lock(log_mu_);
    if (log_.find("\"client-gone\":true") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto done = r->step_done(*drive, step);
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_FALSE(*done);
  std::lock_guard lock(log_mu_);
  EXPECT_NE(log_.find("\"client-gone\":true"), std::string::npos) << log_;
}

}  // namespace
}  // namespace labctl::agents::rpc
