// The esxi plugin's transport: one libvirt connection (esx://, vpx://, qemu://, test:///) and the
// few calls the plugin needs, each counted as a read or a write, every libvirt object RAII-owned,
// every libvirt error turned into a labctl::Error that names the URI and the operation.
//
// The counts are what "a converged host gets zero write calls" is measured with: the plugin keeps
// them per device, tests assert them, and the benchmark divides them by the VM count.
//
// A Connection is not thread-safe; the plugin gives each device its own. libvirt itself is
// initialised once per process (its log goes to /dev/null unless LIBVIRT_LOG_OUTPUTS or
// LIBVIRT_DEBUG is set: the ESX driver warns about every SOAP property it does not know, and the
// errors it reports reach the operator through labctl's own messages).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "plugins/esxi/vsphere.h"

struct _virConnect;
struct _virDomain;

namespace labctl::esxi {

// Sets libvirt's logging aside (see above) unless the operator configured it. Call early, from
// one thread: it may set an environment variable.
void prepare_libvirt_environment();

// The power state classes reconciliation works with.
enum class PowerState { Running, Paused, Stopped, Unknown };
std::string_view power_state_name(PowerState s);  // "running", "paused", "stopped", "unknown"
// libvirt's virDomainState as a class, and as libvirt names it ("shutoff", "crashed", ...).
PowerState power_state_of(int libvirt_state);
std::string_view libvirt_state_name(int libvirt_state);

struct NodeInfo {
  std::string cpu_model;
  unsigned cpus = 0, mhz = 0, nodes = 0, sockets = 0, cores = 0, threads = 0;
  std::uint64_t memory_kib = 0;
};

struct HostInfo {
  std::string driver;      // virConnectGetType: "ESX", "VPX", "QEMU", "TEST"
  std::string hostname;    // as the host names itself
  std::string hv_version;  // virConnectGetVersion as major.minor.release ("6.5.0", "0.0.2")
  NodeInfo node;
  std::optional<About> about;  // vSphere hosts (esx://, vpx://): product, version and build
  std::string about_error;     // why a vSphere host's About could not be read ("" = it was)
};

struct VmInfo {
  std::string name, uuid;
  PowerState state = PowerState::Unknown;
  std::string libvirt_state;  // "running", "blocked", "paused", "shutdown", "shutoff", ...
  bool autostart = false;
  unsigned vcpus = 0;
  std::uint64_t memory_kib = 0, max_memory_kib = 0;
};

// Calls made through a connection. Reads ask, writes change the host.
struct CallStats {
  std::uint64_t reads = 0, writes = 0;
  std::map<std::string, std::uint64_t> by_call;  // "virDomainCreate" -> count
  struct Write {
    std::string call, vm;
  };
  std::vector<Write> write_log;  // in order, the first kMaxWriteLog of them
  static constexpr std::size_t kMaxWriteLog = 10000;

  void count(std::string_view call, bool write, std::string_view vm);
  void merge(const CallStats& other);
  nlohmann::json to_json() const;
};

// How libvirt errors become labctl errors; pure, for tests. `code` is virErrorNumber. The ESX
// driver reports the vSphere API's faults and curl's errors as internal errors, so their text
// decides: "Login failure" is an authentication failure, "Couldn't connect" is unreachable, a
// certificate problem a precondition (trust the host's CA, or no-verify).
Errc classify_libvirt_error(int code, std::string_view message);

struct ConnectOptions {
  std::string uri;                      // as libvirt takes it (no_verify=1 included when wanted)
  std::string user;                     // "" = the URI's user, else libvirt's default ("root")
  std::optional<std::string> password;  // asked for by the credentials callback; never logged
};

class Connection;

// One VM on an open connection (a looked-up virDomain). Must not outlive its Connection.
class Domain {
 public:
  Domain(Domain&&) noexcept;
  Domain& operator=(Domain&&) noexcept;
  ~Domain();

  const std::string& name() const { return name_; }
  Result<VmInfo> info();       // state, vCPUs, memory, autostart (two reads)
  Result<PowerState> state();  // one read
  Result<bool> autostart();    // one read
  Status create();             // power on a stopped VM
  Status resume();             // a paused (suspended) one
  Status shutdown();           // ask the guest: ACPI, or VMware Tools on ESXi
  Status destroy();            // hard power-off
  Status set_autostart(bool on);
  // Removes the definition (on ESXi: unregisters the VM; its files stay on the datastore).
  Status undefine();
  Status snapshot(const std::string& name, const std::string& description);
  // Whether the VM has a snapshot of that name (by lookup: ESX lists no snapshots in bulk).
  Result<bool> has_snapshot(const std::string& name);

 private:
  friend class Connection;
  struct Free {
    void operator()(_virDomain* d) const;
  };
  Domain(Connection* conn, _virDomain* dom, std::string name);
  // Counts one write `call` and makes it (libvirt's 0 / -1 convention).
  Status write(const char* call, const std::function<int(_virDomain*)>& fn);
  Connection* conn_;
  std::unique_ptr<_virDomain, Free> dom_;
  std::string name_;
};

class Connection {
 public:
  // virConnectOpenAuth with a callback that answers the user and password from `options`.
  static Result<std::unique_ptr<Connection>> open(const ConnectOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& uri() const { return uri_; }
  // Product, version, node; the vSphere About once per connection (it cannot change while the
  // host is up).
  Result<HostInfo> host();
  // Every VM the host has, by name (one read, then two per VM).
  Result<std::vector<VmInfo>> vms();
  // The VM, or nullopt when the host has none of that name.
  Result<std::optional<Domain>> find(const std::string& name);
  // Defines VM `name` from domain XML (a write); the VM it defined.
  Result<Domain> define(const std::string& name, const std::string& xml);

  const CallStats& stats() const { return stats_; }
  // A call failed in a way that leaves the connection unusable (the host went away, the session
  // was refused): open a new one before the next use.
  bool broken() const { return broken_; }

 private:
  friend class Domain;
  struct Close {
    void operator()(_virConnect* c) const;
  };
  Connection(_virConnect* conn, std::string uri, ConnectOptions options);
  // The labctl error for the libvirt error just raised by `operation` on this thread.
  Error error(std::string_view operation, std::string_view vm = {});
  Result<std::string> driver();
  void count(std::string_view call, bool write, std::string_view vm = {}) {
    stats_.count(call, write, vm);
  }

  std::unique_ptr<_virConnect, Close> conn_;
  std::string uri_;
  ConnectOptions options_;
  std::string driver_;
  std::optional<About> about_;
  CallStats stats_;
  bool broken_ = false;
};

}  // namespace labctl::esxi
