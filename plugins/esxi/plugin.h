// The `esxi` plugin: VMware ESXi hosts (and vCenter, KVM and libvirt's test driver, which speak
// the same libvirt API) and their VMs, through libvirt (libvirt_conn.h).
//
// Probe: product, version and build (vSphere's About for esx:// and vpx://), node (CPUs, memory),
// every VM with state, autostart, vCPUs and memory; findings for an unverified TLS certificate
// and VMs the inventory does not list. Reconcile (plan.h): VMs defined from templates, removed,
// autostart set, stopped and started in `after:` order, each step idempotent with a read-back.
// Host power goes through the host's BMC (`bmc:`), whatever its type, via
// DeviceContext::run_device_verb. ESXi itself is audited against the catalog, never installed.
//
// One libvirt connection per device is kept for the life of the process, so a probe and the
// steps after it share it (libvirt's test driver keeps its state per connection, and a vSphere
// login is worth keeping). Every call is counted; when the plugin goes away it writes the counts
// of each device to <plugin state dir>/calls/<device>.json.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include "plugins/esxi/libvirt_conn.h"
#include "plugins/sdk/plugin.h"

namespace labctl::esxi {

class EsxiPlugin : public sdk::Plugin {
 public:
  EsxiPlugin();
  ~EsxiPlugin() override;

  const inventory::DeviceSchema& schema() const override { return schema_; }
  std::string_view cli_noun() const override { return "hypervisor"; }
  void check_device(const sdk::Device& device, const sdk::Inventory& inv,
                    inventory::DeviceReport& report) const override;
  Result<std::vector<sdk::Step>> hop_steps(const sdk::Device& device,
                                           const sdk::HopInfo& hop) const override;
  std::vector<sdk::Step> reconcile_steps(
      const sdk::Device& device, const sdk::Observation& obs,
      const std::vector<sdk::Step>& firmware_steps) const override;
  Result<sdk::Observation> probe(sdk::DeviceContext& ctx, const sdk::Device& device) override;
  Result<bool> step_done(sdk::DeviceContext& ctx, const sdk::Device& device,
                         const sdk::Step& step) override;
  Status run_step(sdk::DeviceContext& ctx, const sdk::Device& device,
                  const sdk::Step& step) override;
  std::vector<sdk::VerbSpec> verbs() const override;
  Result<sdk::VerbResult> run_verb(sdk::DeviceContext& ctx, const sdk::Device& device,
                                   const std::string& verb, const sdk::json& args) override;

  // The libvirt calls this process made for `device`, over every connection it had.
  CallStats calls(const std::string& device) const;

 private:
  struct Session {
    std::unique_ptr<Connection> conn;
    std::string uri, user;             // what `conn` was opened with
    CallStats closed;                  // counts of connections already closed
    std::filesystem::path calls_file;  // where the counts go when the plugin is destroyed
  };
  Session& session(const std::string& device);
  // The device's open connection, opened (with its secret) when there is none or the last one
  // broke.
  Result<Connection*> connect(sdk::DeviceContext& ctx, const sdk::Device& device);
  // Closes the device's connection, keeping its counts (the host is going away, or it broke).
  void disconnect(const std::string& device);
  // Runs `f` on the device's connection; a failure that broke the connection closes it, so the
  // next call (the engine's retry) opens a fresh one.
  template <class F>
  auto with_connection(sdk::DeviceContext& ctx, const sdk::Device& device, F&& f)
      -> decltype(f(std::declval<Connection&>()));
  Result<sdk::VerbResult> power_verb(sdk::DeviceContext& ctx, const sdk::Device& device,
                                     const std::string& action);

  inventory::DeviceSchema schema_;
  mutable std::mutex mu_;
  std::map<std::string, Session> sessions_;  // by device name; nodes never move
};

}  // namespace labctl::esxi
