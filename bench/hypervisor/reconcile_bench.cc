// bench/hypervisor's in-process half: the esxi plugin's probe, plan and steps for one device of
// an inventory, then a second probe and plan on the same connection (libvirt's test driver keeps
// its state per connection, so only in one process can the second pass see a converged host).
// Prints one JSON object: times in ms and the plugin's own libvirt call counts per phase.
//
//   reconcile_bench INVENTORY DEVICE
#include <chrono>
#include <iostream>

#include "inventory/loader.h"
#include "plugins/esxi/plugin.h"
#include "plugins/registry.h"

namespace {

using namespace labctl;
using Clock = std::chrono::steady_clock;

class Context : public sdk::DeviceContext {
 public:
  explicit Context(std::filesystem::path dir) : dir_(std::move(dir)) {}
  Result<std::string> secret(const sdk::Device& d, const std::string& p) override {
    return fail(Errc::NotSupported, d.name + ": no secrets in this benchmark (" + p + ")");
  }
  std::filesystem::path plugin_state_dir() const override { return dir_; }
  const inventory::Catalog* catalog() const override { return nullptr; }
  void progress(std::uint64_t, std::uint64_t, std::string_view) override {}
  bool cancelled() const override { return false; }
  void log(std::string_view) override {}

 private:
  std::filesystem::path dir_;
};

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

nlohmann::json delta(const esxi::CallStats& before, const esxi::CallStats& after) {
  return {{"reads", after.reads - before.reads}, {"writes", after.writes - before.writes}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: reconcile_bench INVENTORY DEVICE\n";
    return 2;
  }
  plugins::Registry registry;
  plugins::register_builtin_plugins(registry);
  auto loaded = inventory::load_inventory(argv[1], registry);
  if (!loaded.inventory) {
    for (const auto& d : loaded.diags.sorted())
      std::cerr << d.format() << "\n";
    return 1;
  }
  const inventory::Device* dev = loaded.inventory->device(argv[2]);
  auto* plugin = dynamic_cast<esxi::EsxiPlugin*>(registry.find("esxi"));
  if (dev == nullptr || plugin == nullptr || dev->type != "esxi") {
    std::cerr << "reconcile_bench: no esxi device '" << argv[2] << "' in " << argv[1] << "\n";
    return 1;
  }
  Context ctx(std::filesystem::temp_directory_path() / "labctl-reconcile-bench");
  nlohmann::json out;
  for (const char* phase : {"reconcile", "converged"}) {
    const auto before = plugin->calls(dev->name);
    const auto t0 = Clock::now();
    auto obs = plugin->probe(ctx, *dev);
    if (!obs) {
      std::cerr << "reconcile_bench: probe: " << obs.error().message() << "\n";
      return 1;
    }
    const double probe_ms = ms_since(t0);
    const auto steps = plugin->reconcile_steps(*dev, *obs, {});
    const auto t1 = Clock::now();
    for (const auto& s : steps)
      if (auto r = plugin->run_step(ctx, *dev, s); !r) {
        std::cerr << "reconcile_bench: " << s.key << ": " << r.error().message() << "\n";
        return 1;
      }
    out[phase] = {{"vms", obs->facts.value("vms", nlohmann::json::object()).size()},
                  {"steps", steps.size()},
                  {"probe_ms", probe_ms},
                  {"steps_ms", ms_since(t1)},
                  {"total_ms", ms_since(t0)},
                  {"calls", delta(before, plugin->calls(dev->name))}};
  }
  std::cout << out.dump() << "\n";
  return 0;
}
