// libFuzzer target: what the esxi plugin reads from outside -- a vSphere RetrieveServiceContent
// answer (parse_about), a domain XML template (inspect_domain_xml), a libvirt URI from the
// inventory or the command line (vsphere_endpoint, uri_scheme), and libvirt's error texts
// (classify_libvirt_error). The same bytes go to all of them. Nothing may crash, leak or hang,
// and what parses must keep the invariants below.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "inventory/version.h"
#include "plugins/esxi/domain_xml.h"
#include "plugins/esxi/libvirt_conn.h"
#include "plugins/esxi/vsphere.h"

namespace esxi = labctl::esxi;

namespace {

void about(std::string_view in) {
  auto a = esxi::parse_about(in);
  if (!a) {
    if (a.error().message().empty()) __builtin_trap();
    return;
  }
  // What the probe reports as the host's version is what the catalog's esxi scheme reads.
  if (a->version.empty()) __builtin_trap();
  auto v =
      labctl::inventory::parse_version(labctl::inventory::VersionScheme::Esxi, a->version_text());
  if (!v) __builtin_trap();
  if (v->key.size() != 4 || (a->build.empty() && v->key[3] != 0)) __builtin_trap();
  (void)a->to_json().dump();
}

void domain(std::string_view in) {
  auto f = esxi::inspect_domain_xml(in);
  if (f && (f->name.empty() || f->type.empty())) __builtin_trap();
  if (!f && f.error().message().empty()) __builtin_trap();
}

void uri(std::string_view in) {
  // One line, as an inventory value or a --uri argument would be.
  const std::string line(in.substr(0, std::min<std::size_t>(in.find('\n'), 4096)));
  const std::string scheme = esxi::uri_scheme(line);
  auto e = esxi::vsphere_endpoint(line);
  if (e) {
    if (!esxi::is_vsphere_scheme(scheme)) __builtin_trap();
    if (e->url.rfind("http://", 0) != 0 && e->url.rfind("https://", 0) != 0) __builtin_trap();
    if (e->url.size() < 5 || e->url.substr(e->url.size() - 4) != "/sdk") __builtin_trap();
  }
  (void)esxi::classify_libvirt_error(1, in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  about(in);
  domain(in);
  uri(in);
  return 0;
}
