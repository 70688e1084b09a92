// labctl-agent: the Agent interface served over HTTPS with mutual TLS (cpp-httplib on OpenSSL),
// plus the network services (TFTP, DHCP) of the segments the inventory assigns to this agent.
//
// The controller pushes its inventory and catalog (PUT /v1/config); the agent loads them with the
// same loader and plugins as labctl and runs the embedded LocalAgent on them, so a step behaves
// the same wherever it runs. Secrets are never sent: the devices' secret references (env, file,
// command) are resolved here, on the agent's machine. The agent keeps nothing the controller
// would need: the journal stays with the controller; what the agent writes under its state
// directory (the last configuration, so the services come back after a restart; firmware blobs,
// re-verified on every use; the simulated devices' state) can be deleted at any time.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "common/error.h"
#include "plugins/registry.h"

namespace labctl::agents::rpc {

struct AgentConfig {
  std::filesystem::path file;  // where it was read from
  std::string name;
  std::string listen_host = "0.0.0.0";
  int listen_port = 7443;  // 0: any free port (tests; see AgentServer::port)
  std::filesystem::path cert, key, ca;
  std::filesystem::path controller;  // pinned client certificate; empty: any of the CA's
  std::filesystem::path state_dir;
  std::size_t max_body = 1u << 20;  // JSON calls; firmware blobs have their own limit
  double rate = 2000;               // requests per second per client address (burst: 2x)
  int threads = 64;                 // HTTP worker threads (one per running step, plus calls)
  // Tests move the services off the privileged ports.
  int dhcp_port = 67;
  int tftp_port = 0;
};

// Reads a configuration written by `labctl agent init` (YAML; paths relative to the file).
// `listen` ("HOST:PORT", "[V6]:PORT") overrides the file's when not empty.
Result<AgentConfig> load_agent_config(const std::filesystem::path& path, const std::string& listen);

// One line of the agent's structured log (a JSON object; never a secret, never a request body).
using LogFn = std::function<void(const std::string& json_line)>;

class AgentServer {
 public:
  // Checks the certificates, binds the port, loads the last configuration from the state
  // directory (starting its services), and serves on background threads.
  static Result<std::unique_ptr<AgentServer>> start(AgentConfig config,
                                                    const plugins::Registry& registry, LogFn log);
  ~AgentServer();
  AgentServer(const AgentServer&) = delete;
  AgentServer& operator=(const AgentServer&) = delete;

  int port() const;
  // Stops accepting, cancels running steps, stops the services. Safe to call twice.
  void stop();

  class Impl;

 private:
  explicit AgentServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace labctl::agents::rpc
