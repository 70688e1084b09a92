// The small certificate authority behind the agents' mutual TLS (`labctl agent init`): one CA,
// one client certificate for the controller (extended key usage clientAuth only) and one server
// certificate per agent (serverAuth only), so an agent's certificate can never pose as the
// controller. EC P-256 keys, written 0600, through OpenSSL.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"

namespace labctl::agents::rpc {

struct PkiOptions {
  std::filesystem::path dir;
  std::vector<std::string> agents;  // names; each gets NAME.pem, NAME.key and NAME.yaml
  // Extra subject alternative names per agent (host names or addresses), besides the agent's
  // name, localhost, 127.0.0.1 and ::1.
  std::map<std::string, std::vector<std::string>> hosts;
  std::string listen = "0.0.0.0:7443";  // written into each agent's configuration
  int days = 825;                       // leaf certificates; the CA gets ten years
  bool renew_controller = false;        // issue controller.pem again although it exists
};

struct PkiReport {
  bool ca_created = false;
  bool controller_issued = false;
  std::vector<std::filesystem::path> written;
};

// Creates DIR (0700) and, when missing, the CA; issues the controller's certificate when missing
// (or asked to renew it) and each named agent's certificate and configuration (again when they
// exist: that is rotation). An existing ca.pem without its ca.key is refused: nothing could be
// signed with it.
Result<PkiReport> init_pki(const PkiOptions& options);

// The SHA-256 fingerprint of the first certificate in a PEM file, as 64 lower-case hex digits.
Result<std::string> certificate_fingerprint(const std::filesystem::path& pem);

}  // namespace labctl::agents::rpc
