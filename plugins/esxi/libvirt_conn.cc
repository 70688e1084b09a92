#include "plugins/esxi/libvirt_conn.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <pugixml.hpp>
#include <sstream>

namespace labctl::esxi {

namespace {

void silent(void*, virErrorPtr) {}

void init_libvirt() {
  static std::once_flag once;
  std::call_once(once, [] {
    prepare_libvirt_environment();
    virInitialize();
    // Errors are read with virGetLastError and reported by labctl; libvirt's default handler
    // would print each one to stderr as well.
    virSetErrorFunc(nullptr, silent);
  });
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// What the credentials callback answers, and what it could not.
struct AuthData {
  const ConnectOptions* options = nullptr;
  std::string missing;
};

int answer(virConnectCredentialPtr cred, const std::string& value) {
  cred->result = static_cast<char*>(std::malloc(value.size() + 1));  // libvirt frees it
  if (cred->result == nullptr) return -1;
  std::memcpy(cred->result, value.c_str(), value.size() + 1);
  cred->resultlen = static_cast<unsigned int>(value.size());
  return 0;
}

int auth_callback(virConnectCredentialPtr cred, unsigned int ncred, void* cbdata) {
  auto* a = static_cast<AuthData*>(cbdata);
  for (unsigned int i = 0; i < ncred; ++i) {
    switch (cred[i].type) {
      case VIR_CRED_AUTHNAME:
      case VIR_CRED_USERNAME:
        if (!a->options->user.empty()) {
          if (answer(&cred[i], a->options->user) != 0) return -1;
        } else if (cred[i].defresult != nullptr) {
          if (answer(&cred[i], cred[i].defresult) != 0) return -1;
        } else {
          a->missing = "user";
          return -1;
        }
        break;
      case VIR_CRED_PASSPHRASE:
      case VIR_CRED_NOECHOPROMPT:
        if (!a->options->password) {
          a->missing = "password";
          return -1;
        }
        if (answer(&cred[i], *a->options->password) != 0) return -1;
        break;
      default:
        a->missing = "credential of type " + std::to_string(cred[i].type);
        return -1;
    }
  }
  return 0;
}

std::string version_text(unsigned long v) {
  return std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." +
         std::to_string(v % 1000);
}

// Operator hints for the errors whose cause is the setup, not the host's mood.
std::string hint(Errc code, std::string_view message) {
  if (code == Errc::AuthFailed)
    return " (the host refused the user or password: check credentials in the inventory, or "
           "--user / --password-env)";
  if (code == Errc::PreconditionFailed && contains(message, "certificate"))
    return " (the host's TLS certificate is not trusted: install its CA, or set no-verify: "
           "true, which is a finding)";
  return "";
}

Errc errc_of_last_error(std::string& message) {
  const virErrorPtr e = virGetLastError();
  if (e == nullptr) {
    message = "failed (libvirt gave no reason)";
    return Errc::Internal;
  }
  // The ESX driver passes the host's fault strings through: text from the network.
  message = e->message != nullptr ? valid_utf8(e->message) : "failed (libvirt gave no message)";
  const Errc code = classify_libvirt_error(e->code, message);
  virResetLastError();
  return code;
}

}  // namespace

void prepare_libvirt_environment() {
  if (std::getenv("LIBVIRT_LOG_OUTPUTS") == nullptr && std::getenv("LIBVIRT_DEBUG") == nullptr)
    ::setenv("LIBVIRT_LOG_OUTPUTS", "4:file:/dev/null", 0);
}

std::string_view power_state_name(PowerState s) {
  switch (s) {
    case PowerState::Running:
      return "running";
    case PowerState::Paused:
      return "paused";
    case PowerState::Stopped:
      return "stopped";
    case PowerState::Unknown:
      return "unknown";
  }
  return "unknown";
}

PowerState power_state_of(int s) {
  switch (s) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:
    case VIR_DOMAIN_SHUTDOWN:  // shutting down: still running
      return PowerState::Running;
    case VIR_DOMAIN_PAUSED:
    case VIR_DOMAIN_PMSUSPENDED:
      return PowerState::Paused;
    case VIR_DOMAIN_SHUTOFF:
    case VIR_DOMAIN_CRASHED:  // inactive: starting it is what brings it back
      return PowerState::Stopped;
    default:
      return PowerState::Unknown;
  }
}

std::string_view libvirt_state_name(int s) {
  switch (s) {
    case VIR_DOMAIN_RUNNING:
      return "running";
    case VIR_DOMAIN_BLOCKED:
      return "blocked";
    case VIR_DOMAIN_PAUSED:
      return "paused";
    case VIR_DOMAIN_SHUTDOWN:
      return "shutdown";
    case VIR_DOMAIN_SHUTOFF:
      return "shutoff";
    case VIR_DOMAIN_CRASHED:
      return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
      return "pmsuspended";
    default:
      return "nostate";
  }
}

void CallStats::count(std::string_view call, bool write, std::string_view vm) {
  (write ? writes : reads) += 1;
  by_call[std::string(call)] += 1;
  if (write && write_log.size() < kMaxWriteLog)
    write_log.push_back({std::string(call), std::string(vm)});
}

void CallStats::merge(const CallStats& o) {
  reads += o.reads;
  writes += o.writes;
  for (const auto& [k, v] : o.by_call)
    by_call[k] += v;
  for (const auto& w : o.write_log)
    if (write_log.size() < kMaxWriteLog) write_log.push_back(w);
}

nlohmann::json CallStats::to_json() const {
  nlohmann::json log = nlohmann::json::array();
  for (const auto& w : write_log)
    log.push_back({{"call", w.call}, {"vm", w.vm}});
  return {{"reads", reads}, {"writes", writes}, {"by_call", by_call}, {"write_log", log}};
}

Errc classify_libvirt_error(int code, std::string_view message) {
  switch (code) {
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_AUTH_CANCELLED:
    case VIR_ERR_AUTH_UNAVAILABLE:
      return Errc::AuthFailed;
    case VIR_ERR_NO_DOMAIN:
    case VIR_ERR_NO_DOMAIN_SNAPSHOT:
      return Errc::NotFound;
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_OPERATION_UNSUPPORTED:
      return Errc::NotSupported;
    case VIR_ERR_OPERATION_TIMEOUT:
      return Errc::Timeout;
    case VIR_ERR_OPERATION_INVALID:
      return Errc::PreconditionFailed;
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_XML_DETAIL:
    case VIR_ERR_INVALID_ARG:
    case VIR_ERR_CONFIG_UNSUPPORTED:
      return Errc::InvalidInput;
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_RPC:
    case VIR_ERR_INVALID_CONN:
      return Errc::Unreachable;
    default:
      break;
  }
  if (contains(message, "Login failure") || contains(message, "InvalidLogin") ||
      contains(message, "incorrect user name or password"))
    return Errc::AuthFailed;
  if (contains(message, "certificate") || contains(message, "SSL peer") ||
      contains(message, "already running") || contains(message, "not running"))
    return Errc::PreconditionFailed;
  if (contains(message, "Timeout was reached") || contains(message, "timed out"))
    return Errc::Timeout;
  if (contains(message, "Couldn't connect") || contains(message, "Could not resolve") ||
      contains(message, "Connection refused") || contains(message, "No route to host") ||
      contains(message, "Failure when receiving data") || contains(message, "Empty reply"))
    return Errc::Unreachable;
  return Errc::Internal;
}

// Domain -----------------------------------------------------------------------------------------

void Domain::Free::operator()(_virDomain* d) const {
  virDomainFree(d);
}

Domain::Domain(Connection* conn, _virDomain* dom, std::string name)
    : conn_(conn), dom_(dom), name_(std::move(name)) {}
Domain::Domain(Domain&&) noexcept = default;
Domain& Domain::operator=(Domain&&) noexcept = default;
Domain::~Domain() = default;

Status Domain::write(const char* call, const std::function<int(_virDomain*)>& fn) {
  conn_->count(call, true, name_);
  if (fn(dom_.get()) < 0) return fail(conn_->error(call, name_));
  return {};
}
Result<PowerState> Domain::state() {
  int st = 0, reason = 0;
  conn_->count("virDomainGetState", false, name_);
  if (virDomainGetState(dom_.get(), &st, &reason, 0) < 0)
    return fail(conn_->error("virDomainGetState", name_));
  return power_state_of(st);
}

Result<bool> Domain::autostart() {
  int on = 0;
  conn_->count("virDomainGetAutostart", false, name_);
  if (virDomainGetAutostart(dom_.get(), &on) < 0)
    return fail(conn_->error("virDomainGetAutostart", name_));
  return on != 0;
}

Result<VmInfo> Domain::info() {
  virDomainInfo di{};
  conn_->count("virDomainGetInfo", false, name_);
  if (virDomainGetInfo(dom_.get(), &di) < 0) return fail(conn_->error("virDomainGetInfo", name_));
  auto on = autostart();
  if (!on) return fail(on.error());
  VmInfo v;
  v.name = name_;
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(dom_.get(), uuid) == 0) v.uuid = uuid;
  v.state = power_state_of(di.state);
  v.libvirt_state = libvirt_state_name(di.state);
  v.autostart = *on;
  v.vcpus = di.nrVirtCpu;
  v.memory_kib = di.memory;
  v.max_memory_kib = di.maxMem;
  return v;
}

Status Domain::create() {
  return write("virDomainCreate", virDomainCreate);
}

Status Domain::resume() {
  return write("virDomainResume", virDomainResume);
}

Status Domain::shutdown() {
  return write("virDomainShutdown", virDomainShutdown);
}

Status Domain::destroy() {
  return write("virDomainDestroy", virDomainDestroy);
}

Status Domain::set_autostart(bool on) {
  return write("virDomainSetAutostart",
               [on](virDomainPtr d) { return virDomainSetAutostart(d, on ? 1 : 0); });
}

Status Domain::undefine() {
  auto driver = conn_->driver();
  if (!driver) return fail(driver.error());
  // ESX takes no flags (it unregisters, and the snapshots stay with the files); the test driver
  // refuses to undefine a domain with snapshots unless told to drop their metadata; QEMU also
  // keeps NVRAM files unless told.
  unsigned int flags = 0;
  if (*driver == "TEST")
    flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
  else if (*driver == "QEMU")
    flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
            VIR_DOMAIN_UNDEFINE_NVRAM;
  return write("virDomainUndefineFlags",
               [flags](virDomainPtr d) { return virDomainUndefineFlags(d, flags); });
}

Status Domain::snapshot(const std::string& name, const std::string& description) {
  pugi::xml_document doc;
  auto root = doc.append_child("domainsnapshot");
  root.append_child("name").text().set(name.c_str());
  root.append_child("description").text().set(description.c_str());
  std::ostringstream xml;
  doc.save(xml, "", pugi::format_raw | pugi::format_no_declaration);
  conn_->count("virDomainSnapshotCreateXML", true, name_);
  virDomainSnapshotPtr s = virDomainSnapshotCreateXML(dom_.get(), xml.str().c_str(), 0);
  if (s == nullptr) return fail(conn_->error("virDomainSnapshotCreateXML", name_));
  virDomainSnapshotFree(s);
  return {};
}

Result<bool> Domain::has_snapshot(const std::string& name) {
  conn_->count("virDomainSnapshotLookupByName", false, name_);
  virDomainSnapshotPtr snap = virDomainSnapshotLookupByName(dom_.get(), name.c_str(), 0);
  if (snap == nullptr) {
    Error e = conn_->error("virDomainSnapshotLookupByName", name_);
    if (e.code() == Errc::NotFound) return false;
    return fail(std::move(e));
  }
  virDomainSnapshotFree(snap);
  return true;
}

// Connection -------------------------------------------------------------------------------------

void Connection::Close::operator()(_virConnect* c) const {
  virConnectClose(c);
}

Connection::Connection(_virConnect* conn, std::string uri, ConnectOptions options)
    : conn_(conn), uri_(std::move(uri)), options_(std::move(options)) {}

Connection::~Connection() = default;

Result<std::unique_ptr<Connection>> Connection::open(const ConnectOptions& options) {
  init_libvirt();
  AuthData data{&options, ""};
  int types[] = {VIR_CRED_AUTHNAME, VIR_CRED_USERNAME, VIR_CRED_PASSPHRASE, VIR_CRED_NOECHOPROMPT};
  virConnectAuth auth{types, sizeof types / sizeof types[0], auth_callback, &data};
  virConnectPtr c = virConnectOpenAuth(options.uri.c_str(), &auth, 0);
  if (c == nullptr) {
    std::string message;
    Errc code = errc_of_last_error(message);
    if (!data.missing.empty())
      return fail(Errc::AuthFailed, options.uri + ": open: the host asks for a " + data.missing +
                                        " and none is configured (credentials in the inventory, "
                                        "or --user / --password-env)");
    return fail(code, options.uri + ": open: " + message + hint(code, message));
  }
  std::unique_ptr<Connection> conn(new Connection(c, options.uri, options));
  conn->count("virConnectOpenAuth", false);
  return conn;
}

Error Connection::error(std::string_view operation, std::string_view vm) {
  std::string message;
  const Errc code = errc_of_last_error(message);
  if (code == Errc::Unreachable || code == Errc::Timeout || code == Errc::AuthFailed)
    broken_ = true;
  std::string where = uri_ + ": " + std::string(operation);
  if (!vm.empty()) where += " " + std::string(vm);
  return Error(code, where + ": " + message + hint(code, message));
}

Result<std::string> Connection::driver() {
  if (!driver_.empty()) return driver_;
  count("virConnectGetType", false);
  const char* t = virConnectGetType(conn_.get());
  if (t == nullptr) return fail(error("virConnectGetType"));
  driver_ = t;
  return driver_;
}

Result<HostInfo> Connection::host() {
  HostInfo h;
  auto driver = this->driver();
  if (!driver) return fail(driver.error());
  h.driver = *driver;
  count("virConnectGetHostname", false);
  char* name = virConnectGetHostname(conn_.get());
  if (name == nullptr) return fail(error("virConnectGetHostname"));
  h.hostname = valid_utf8(name);
  std::free(name);
  unsigned long version = 0;
  count("virConnectGetVersion", false);
  if (virConnectGetVersion(conn_.get(), &version) < 0) return fail(error("virConnectGetVersion"));
  h.hv_version = version_text(version);
  virNodeInfo ni{};
  count("virNodeGetInfo", false);
  if (virNodeGetInfo(conn_.get(), &ni) < 0) return fail(error("virNodeGetInfo"));
  h.node.cpu_model = valid_utf8(std::string_view(ni.model, strnlen(ni.model, sizeof ni.model)));
  h.node.cpus = ni.cpus;
  h.node.mhz = ni.mhz;
  h.node.nodes = ni.nodes;
  h.node.sockets = ni.sockets;
  h.node.cores = ni.cores;
  h.node.threads = ni.threads;
  h.node.memory_kib = ni.memory;
  if (is_vsphere_scheme(uri_scheme(uri_))) {
    if (!about_) {
      auto endpoint = vsphere_endpoint(uri_);
      if (!endpoint) return fail(endpoint.error());
      count("vim.RetrieveServiceContent", false);
      auto about = fetch_about(*endpoint, std::chrono::seconds(15));
      // A host libvirt reached but whose About is odd still has VMs to manage: only the build is
      // lost then. One that stopped answering is another matter.
      if (!about &&
          (about.error().code() == Errc::Unreachable || about.error().code() == Errc::Timeout)) {
        broken_ = true;
        return fail(std::move(about.error()).context(uri_));
      }
      if (!about) {
        h.about_error = about.error().message();
        return h;
      }
      about_ = std::move(*about);
    }
    h.about = about_;
  }
  return h;
}

Result<std::vector<VmInfo>> Connection::vms() {
  virDomainPtr* list = nullptr;
  count("virConnectListAllDomains", false);
  const int n = virConnectListAllDomains(conn_.get(), &list, 0);
  if (n < 0) return fail(error("virConnectListAllDomains"));
  // Own every domain before anything can fail, so none leaks.
  std::vector<Domain> domains;
  domains.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const char* nm = virDomainGetName(list[i]);
    domains.push_back(Domain(this, list[i], nm != nullptr ? nm : ""));
  }
  std::free(list);
  std::vector<VmInfo> out;
  out.reserve(domains.size());
  for (auto& d : domains) {
    auto info = d.info();
    if (!info) return fail(info.error());
    out.push_back(std::move(*info));
  }
  std::sort(out.begin(), out.end(),
            [](const VmInfo& a, const VmInfo& b) { return a.name < b.name; });
  return out;
}

Result<std::optional<Domain>> Connection::find(const std::string& name) {
  count("virDomainLookupByName", false, name);
  virDomainPtr d = virDomainLookupByName(conn_.get(), name.c_str());
  if (d == nullptr) {
    Error e = error("virDomainLookupByName", name);
    if (e.code() == Errc::NotFound) return std::optional<Domain>();
    return fail(std::move(e));
  }
  return std::optional<Domain>(Domain(this, d, name));
}

Result<Domain> Connection::define(const std::string& name, const std::string& xml) {
  count("virDomainDefineXML", true, name);
  virDomainPtr d = virDomainDefineXML(conn_.get(), xml.c_str());
  if (d == nullptr) return fail(error("virDomainDefineXML", name));
  const char* nm = virDomainGetName(d);
  return Domain(this, d, nm != nullptr ? nm : name);
}

}  // namespace labctl::esxi
