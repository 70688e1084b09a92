// What the esxi plugin's tests share: a DeviceContext that records what the plugin asks of it,
// a loopback port where nothing listens, and the seed's test-driver host.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "plugins/sdk/plugin.h"

namespace labctl::esxi::testing {

inline std::filesystem::path source(const std::string& rel) {
  return std::filesystem::path(LABCTL_SOURCE_DIR) / rel;
}

// test:///ABS/tests/data/esxi/seed-node.xml: the seed's host, every VM shut off.
inline std::string seed_uri() {
  return "test://" + source("tests/data/esxi/seed-node.xml").string();
}

// A TCP port on 127.0.0.1 that is bound but not listening while the object lives: connecting to
// it is refused at once, and no other process can take it meanwhile.
class ClosedPort {
 public:
  ClosedPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ && ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port_ = ntohs(a.sin_port);
  }
  int port() const { return port_; }

 private:
  UniqueFd fd_;
  int port_ = 0;
};

class Context : public sdk::DeviceContext {
 public:
  explicit Context(std::filesystem::path state) : state_(std::move(state)) {}

  std::map<std::string, std::string> secrets;  // JSON pointer -> value
  std::vector<std::string> logs;
  std::atomic<bool> cancel{false};
  // Another device's verb: what the hypervisor asked of its BMC.
  struct VerbCall {
    std::string device, verb;
    sdk::json args;
  };
  std::vector<VerbCall> verb_calls;
  std::function<Result<sdk::VerbResult>(const VerbCall&)> on_device_verb;

  Result<std::string> secret(const sdk::Device& device, const std::string& pointer) override {
    auto it = secrets.find(pointer);
    if (it == secrets.end())
      return fail(Errc::PreconditionFailed, device.name + ": no secret at " + pointer);
    return it->second;
  }
  std::filesystem::path plugin_state_dir() const override { return state_; }
  const inventory::Catalog* catalog() const override { return nullptr; }
  void progress(std::uint64_t, std::uint64_t, std::string_view) override {}
  bool cancelled() const override { return cancel.load(); }
  void log(std::string_view m) override { logs.emplace_back(m); }
  Result<sdk::VerbResult> run_device_verb(const std::string& device, const std::string& verb,
                                          const sdk::json& args) override {
    verb_calls.push_back({device, verb, args});
    if (!on_device_verb) return sdk::DeviceContext::run_device_verb(device, verb, args);
    return on_device_verb(verb_calls.back());
  }

 private:
  std::filesystem::path state_;
};

}  // namespace labctl::esxi::testing
