// labctl-agent: runs the Agent interface over HTTPS with mutual TLS, and the network services of
// the segments the controller's inventory assigns to it, until SIGTERM or SIGINT.
#include <signal.h>

#include <iostream>
#include <mutex>

#include <CLI/CLI.hpp>

#include "agents/rpc/server.h"
#include "plugins/registry.h"

int main(int argc, char** argv) {
  CLI::App app{"labctl-agent — runs labctl's device plugins and network services near the devices"};
  app.set_version_flag("--version", std::string("labctl-agent ") + LABCTL_VERSION);
  std::string config, listen, state_dir;
  int dhcp_port = -1, tftp_port = -1;
  app.add_option("--config", config, "the agent's configuration (made by `labctl agent init`)")
      ->required();
  app.add_option("--listen", listen, "HOST:PORT to listen on, instead of the configuration's");
  app.add_option("--state-dir", state_dir, "instead of the configuration's state-dir");
  app.add_option("--dhcp-port", dhcp_port, "DHCP server port (default 67)")
      ->check(CLI::Range(1, 65535));
  app.add_option("--tftp-port", tftp_port, "TFTP port for every segment (default: the segment's)")
      ->check(CLI::Range(1, 65535));
  CLI11_PARSE(app, argc, argv);

  auto cfg = labctl::agents::rpc::load_agent_config(config, listen);
  if (!cfg) {
    std::cerr << "labctl-agent: " << cfg.error().message() << "\n";
    return 1;
  }
  if (!state_dir.empty()) cfg->state_dir = state_dir;
  if (dhcp_port > 0) cfg->dhcp_port = dhcp_port;
  if (tftp_port > 0) cfg->tftp_port = tftp_port;

  // Blocked before any thread starts (threads inherit the mask), then taken with sigwait below,
  // so the server stops outside any signal handler. A write to a closed connection is an error
  // return, not a SIGPIPE.
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  labctl::plugins::Registry registry;
  labctl::plugins::register_builtin_plugins(registry);
  std::mutex log_mu;
  auto log = [&log_mu](const std::string& line) {
    std::lock_guard lock(log_mu);
    std::cerr << line << "\n" << std::flush;
  };
  auto server = labctl::agents::rpc::AgentServer::start(*cfg, registry, log);
  if (!server) {
    std::cerr << "labctl-agent: " << server.error().message() << "\n";
    return 1;
  }
  // The port on stdout, for whoever started the agent with port 0.
  std::cout << "labctl-agent " << cfg->name << " listening on " << cfg->listen_host << ":"
            << (*server)->port() << std::endl;
  int sig = 0;
  sigwait(&stop_set, &sig);
  (*server)->stop();
  return 0;
}
