// What libvirt does not tell about a vSphere host: its product, version and build. libvirt's ESX
// driver reduces `about.version` to a number (6.5.0 -> 6005000) and drops the build, which is
// what tells ESXi 6.5.0 GA from 6.5.0 U1. The vSphere API's RetrieveServiceContent (anonymous,
// before any login) carries both, so the plugin asks for it once per connection, over the same
// HTTPS endpoint and with the same certificate policy as libvirt's connection.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace labctl::esxi {

// ServiceContent.about (vim.AboutInfo).
struct About {
  std::string name;          // "VMware ESXi", "VMware vCenter Server"
  std::string full_name;     // "VMware ESXi 6.5.0 build-5969303"
  std::string vendor;        // "VMware, Inc."
  std::string version;       // "6.5.0"
  std::string build;         // "5969303" (digits; may be empty on odd hosts)
  std::string api_type;      // "HostAgent" (ESXi) or "VirtualCenter"
  std::string api_version;   // "6.5"
  std::string product_line;  // "embeddedEsx", "vpx", ...

  // "6.5.0 build 5969303": the form the catalog's esxi scheme parses ("6.5.0" without a build).
  std::string version_text() const;
  nlohmann::json to_json() const;
};

// Parses a RetrieveServiceContent response (a SOAP envelope). A SOAP fault becomes an error with
// its faultstring; anything else that is not an `about` with a dotted numeric version and a
// numeric (or absent) build is InvalidInput. Never throws; bounded by the input's size.
Result<About> parse_about(std::string_view soap_response);

// Text a host sent, as valid UTF-8 (each invalid byte becomes U+FFFD): what labctl prints and
// stores as JSON must be, and a host's strings are not checked by anyone before.
std::string valid_utf8(std::string_view text);

// The scheme of a libvirt URI ("esx" for "esx://host/"), lower-case; "" when there is none.
std::string uri_scheme(std::string_view uri);
// Whether libvirt reaches this scheme through the vSphere API (esx, vpx, gsx).
bool is_vsphere_scheme(std::string_view scheme);

// Where a libvirt esx:// / vpx:// / gsx:// URI's vSphere API is: https://HOST[:PORT]/sdk (http
// with transport=http), and whether the certificate is checked (not with no_verify=1).
struct Endpoint {
  std::string url;
  bool verify = true;
};
Result<Endpoint> vsphere_endpoint(const std::string& libvirt_uri);

// POST RetrieveServiceContent to the endpoint. Unreachable when nothing answers, Timeout when it
// answers too slowly, PreconditionFailed for an untrusted certificate.
Result<About> fetch_about(const Endpoint& endpoint, std::chrono::milliseconds timeout);

}  // namespace labctl::esxi
