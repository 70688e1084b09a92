// labctl-drive-emulator: one emulated optical drive (emulator.h) behind a Unix socket, for the
// plugin's end-to-end tests and benchmarks. labctl reaches it as `emulator:SOCKET`.
//
//   labctl-drive-emulator --socket PATH [--state FILE] [--config FILE] [--revision 1.01]
//       [--product "BD-MLT UJ240AS"] [--medium none|cd|dvd|bd] [--reboot-ms N]
//       [--fault JSON]... [--inquiry-hex FILE] [--serial S] [--descriptor-sense]
//
// The state file holds what survives a power cycle (installed and deferred microcode, counters);
// starting the emulator again with it is a power cycle. It is rewritten (atomically) after every
// command that changed it, so a test reads it at any time; a "vanish" fault ends the process at
// once, the way a drive drops off the bus. The process serves one connection at a time and runs
// until SIGTERM or SIGINT.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "plugins/optical_drive/emulator.h"
#include "plugins/optical_drive/emulator_server.h"
#include "plugins/sim/sim_state.h"

namespace {

using labctl::optical_drive::DriveEmulator;
using labctl::optical_drive::EmulatorConfig;
using labctl::optical_drive::Fault;
using nlohmann::json;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "00 00 06 ..." (sg_inq --inhex's format: hex pairs, white space, '#' comments).
std::optional<std::vector<std::uint8_t>> parse_hex(const std::string& text) {
  std::vector<std::uint8_t> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string w;
    while (words >> w) {
      if (w.size() != 2 || !std::isxdigit(static_cast<unsigned char>(w[0])) ||
          !std::isxdigit(static_cast<unsigned char>(w[1])))
        return std::nullopt;
      out.push_back(static_cast<std::uint8_t>(std::stoi(w, nullptr, 16)));
    }
  }
  return out;
}

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop.store(true);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"labctl-drive-emulator: an emulated optical drive behind a Unix socket"};
  std::string socket_path, state_file, config_file, inquiry_hex;
  std::optional<std::string> revision, product, vendor, serial, medium;
  std::optional<int> reboot_ms;
  std::vector<std::string> faults;
  bool descriptor = false;
  app.add_option("--socket", socket_path, "where to listen (labctl: emulator:PATH)")->required();
  app.add_option("--state", state_file,
                 "what survives a power cycle (JSON, rewritten as it "
                 "changes)");
  app.add_option("--config", config_file, "a JSON config (keys of EmulatorConfig::from_json)");
  app.add_option("--revision", revision, "firmware revision when the state file has none");
  app.add_option("--product", product, "INQUIRY product");
  app.add_option("--vendor", vendor, "INQUIRY vendor");
  app.add_option("--serial", serial, "unit serial number (empty: no page 0x80)");
  app.add_option("--medium", medium, "none, cd, dvd or bd");
  app.add_option("--reboot-ms", reboot_ms, "how long an activation takes");
  app.add_option("--fault", faults, "a fault as JSON (repeatable)");
  app.add_option("--inquiry-hex", inquiry_hex, "answer standard INQUIRY with these bytes (hex)");
  app.add_flag("--descriptor-sense", descriptor, "descriptor-format sense data");
  CLI11_PARSE(app, argc, argv);

  json config = json::object();
  if (!config_file.empty()) {
    config = json::parse(read_text(config_file), nullptr, false);
    if (config.is_discarded()) {
      std::cerr << "labctl-drive-emulator: " << config_file << ": not JSON\n";
      return 2;
    }
  }
  auto cfg = EmulatorConfig::from_json(config);
  if (!cfg) {
    std::cerr << "labctl-drive-emulator: " << cfg.error().message() << "\n";
    return 2;
  }
  if (revision) cfg->revision = *revision;
  if (product) cfg->product = *product;
  if (vendor) cfg->vendor = *vendor;
  if (serial) cfg->serial = *serial;
  if (medium) cfg->medium = *medium;
  if (reboot_ms) cfg->reboot = std::chrono::milliseconds(*reboot_ms);
  if (descriptor) cfg->descriptor_sense = true;
  for (const auto& f : faults) {
    auto fault = Fault::from_json(json::parse(f, nullptr, false));
    if (!fault) {
      std::cerr << "labctl-drive-emulator: --fault " << f << ": " << fault.error().message()
                << "\n";
      return 2;
    }
    cfg->faults.push_back(*fault);
  }
  if (!inquiry_hex.empty()) {
    auto bytes = parse_hex(read_text(inquiry_hex));
    if (!bytes || bytes->empty()) {
      std::cerr << "labctl-drive-emulator: " << inquiry_hex << ": not hex bytes\n";
      return 2;
    }
    cfg->inquiry = *bytes;
  }
  json saved = json::object();
  if (!state_file.empty()) {
    auto s = labctl::sim::load_state(state_file);
    if (!s) {
      std::cerr << "labctl-drive-emulator: " << s.error().message() << "\n";
      return 2;
    }
    saved = *s;
  }
  DriveEmulator drive(*cfg, saved);
  if (!drive.load_error().empty()) {
    std::cerr << "labctl-drive-emulator: " << state_file << ": " << drive.load_error() << "\n";
    return 2;
  }
  auto server = labctl::optical_drive::EmulatorServer::listen(socket_path);
  if (!server) {
    std::cerr << "labctl-drive-emulator: " << server.error().message() << "\n";
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGTERM, on_signal);
  ::signal(SIGINT, on_signal);
  std::cout << "labctl-drive-emulator: listening on " << socket_path << " (pid " << ::getpid()
            << ")" << std::endl;
  // A vanished drive ends the process at once, the way a drive drops off the bus.
  if ((*server)->run(drive, state_file, g_stop)) std::_Exit(70);
  return 0;
}
