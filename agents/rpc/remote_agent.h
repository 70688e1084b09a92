// The controller's remote driver: the Agent interface over HTTPS with mutual TLS to a
// labctl-agent (libvirt's remote driver in spirit), through libcurl with keep-alive connections.
//
// - Read-only calls (status, probe, step-done) are retried on a lost connection; a call that may
//   change a device (a step, a verb) is retried only when it never reached the agent.
// - A step's progress streams back as it happens. A connection lost during a step is reported as
//   Unreachable: the engine then asks the device through step-done whether the step took effect
//   before running it again, so an agent restart mid-run redoes nothing that was done.
// - An agent that does not hold the controller's configuration (a restart, another controller)
//   is sent it again; an agent missing firmware files gets them from the controller's store, and
//   re-hashes them itself.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agents/agent.h"
#include "agents/rpc/protocol.h"

namespace labctl::agents::rpc {

struct RemoteAgentOptions {
  std::string name;
  std::string url;  // https://HOST[:PORT]
  std::filesystem::path ca, cert, key;
  ConfigPush config;
  const inventory::Catalog* catalog = nullptr;
  // The controller's firmware store (verified files of a release); unset: agents get no firmware.
  std::function<Result<std::vector<sdk::FirmwareImage>>(const inventory::Family&,
                                                        const inventory::Release&)>
      firmware;
  const std::atomic<bool>* cancel = nullptr;
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds call_timeout{120'000};  // one non-streaming call
  std::chrono::milliseconds stall_timeout{15'000};  // a step stream silent this long is dead
  int retries = 3;                                  // for calls that may be repeated
};

class RemoteAgent : public Agent {
 public:
  explicit RemoteAgent(RemoteAgentOptions options);
  ~RemoteAgent() override;

  std::string name() const override { return opt_.name; }
  Result<sdk::Observation> probe(const sdk::Device& device) override;
  Result<bool> step_done(const sdk::Device& device, const sdk::Step& step) override;
  Status run_step(const sdk::Device& device, const sdk::Step& step,
                  const StepControl& control) override;
  Result<sdk::VerbResult> run_verb(const sdk::Device& device, const std::string& verb,
                                   const sdk::json& args) override;

  Result<AgentStatus> status();
  // Pushes the configuration now (also done on demand by every call).
  Result<ConfigAck> push_config();
  // Events after `after`, waiting up to `wait_s` seconds for one.
  Result<json> events(std::uint64_t after, int wait_s);

  struct Counters {
    std::uint64_t calls = 0, retries = 0, config_pushes = 0, blobs_uploaded = 0;
  };
  Counters counters() const;

  struct Http {
    long status = 0;
    std::string body;
  };
  using LineFn = std::function<void(std::string_view line)>;

 private:
  struct Pool;
  // One HTTP exchange, retried on transport failure when `repeatable` (or when the connection
  // was never made). With `on_line`, the body is handed over line by line as it arrives.
  Result<Http> exchange(const std::string& method, const std::string& path, const std::string& body,
                        bool repeatable, const LineFn& on_line = {},
                        const std::atomic<bool>* cancel = nullptr,
                        std::chrono::steady_clock::time_point deadline = {});
  // A JSON call with the configuration and firmware handshakes done as needed.
  Result<json> call(const std::string& path, const json& body, bool repeatable);
  Status ensure_config();
  Status upload_firmware(const NeedFirmware& need);
  Error agent_error(const Http& h, std::optional<NeedFirmware>* need) const;
  std::string where() const;

  RemoteAgentOptions opt_;
  std::string config_id_;
  std::unique_ptr<Pool> pool_;
  std::mutex config_mu_;
  bool pushed_ = false;
  mutable std::mutex counters_mu_;
  Counters counters_;
};

}  // namespace labctl::agents::rpc
