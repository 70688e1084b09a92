#include <iostream>

#include "agents/agent.h"
#include "common/run_lock.h"
#include "inventory/secrets.h"

namespace labctl::agents {

namespace {

class LocalContext : public sdk::DeviceContext {
 public:
  LocalContext(const LocalAgentOptions& opt, const sdk::Device& device, const std::string& type,
               const StepControl* control)
      : opt_(opt), device_(device), type_(type), control_(control) {}

  Result<std::string> secret(const sdk::Device& device, const std::string& pointer) override {
    nlohmann::json::json_pointer ptr;
    try {
      ptr = nlohmann::json::json_pointer(pointer);
    } catch (const nlohmann::json::exception&) {
      return fail(Errc::Internal, "bad secret pointer '" + pointer + "'");
    }
    if (!device.params.contains(ptr))
      return fail(Errc::PreconditionFailed,
                  "device '" + device.name + "' has no secret at " + pointer);
    auto ref = inventory::SecretRef::from_json(device.params.at(ptr));
    if (!ref)
      return fail(Errc::Internal, "device '" + device.name + "': " + pointer + " is not a secret");
    auto v = inventory::resolve_secret(*ref);
    if (!v) return std::unexpected(std::move(v.error()).context("device '" + device.name + "'"));
    return v;
  }
  std::filesystem::path plugin_state_dir() const override {
    return opt_.state_dir / "plugins" / type_;
  }
  const inventory::Catalog* catalog() const override { return opt_.catalog; }
  void progress(std::uint64_t done, std::uint64_t total, std::string_view note) override {
    if (control_ && control_->progress) control_->progress(done, total, note);
  }
  bool cancelled() const override {
    if (opt_.cancel && opt_.cancel->load()) return true;
    if (!control_) return false;
    if (control_->cancel && control_->cancel->load()) return true;
    return std::chrono::steady_clock::now() >= control_->deadline;
  }
  Result<std::vector<sdk::FirmwareImage>> firmware_images(
      const inventory::Family& family, const inventory::Release& release) override {
    if (!opt_.firmware) return sdk::DeviceContext::firmware_images(family, release);
    return opt_.firmware(family, release);
  }
  sdk::TftpServiceInfo tftp_service(const sdk::Device& device) const override {
    sdk::TftpServiceInfo info;
    if (device.segment.empty()) return info;
    info.event_log = sdk::tftp_event_log_path(opt_.state_dir, device.segment);
    if (auto holder = run_lock_holder(serve_lock_path(opt_.state_dir))) {
      info.holder = *holder;
      auto j = nlohmann::json::parse(*holder, nullptr, false);
      if (j.is_object())
        for (const auto& seg : j.value("tftp", nlohmann::json::array()))
          if (seg.is_string() && seg.get<std::string>() == device.segment) info.running = true;
    }
    return info;
  }
  Result<sdk::VerbResult> run_device_verb(const std::string& device, const std::string& verb,
                                          const sdk::json& args) override {
    if (!opt_.device_verb) return sdk::DeviceContext::run_device_verb(device, verb, args);
    return opt_.device_verb(device, verb, args);
  }
  void log(std::string_view message) override {
    // One write per message, so lines of devices worked on at once never interleave.
    std::string line = "labctl: " + device_.name + ": ";
    line.append(message);
    line += "\n";
    std::clog.write(line.data(), static_cast<std::streamsize>(line.size()));
    std::clog.flush();
  }

 private:
  const LocalAgentOptions& opt_;
  const sdk::Device& device_;
  const std::string& type_;
  const StepControl* control_;
};

}  // namespace

LocalAgent::LocalAgent(const plugins::Registry& registry, LocalAgentOptions options)
    : registry_(registry), options_(std::move(options)) {}

Result<sdk::Plugin*> LocalAgent::plugin_for(const sdk::Device& device) const {
  auto* p = registry_.find(device.type);
  if (!p) return fail(Errc::NotSupported, "no plugin for device type '" + device.type + "'");
  return p;
}

Result<sdk::Observation> LocalAgent::probe(const sdk::Device& device) {
  auto p = plugin_for(device);
  if (!p) return std::unexpected(p.error());
  LocalContext ctx(options_, device, device.type, nullptr);
  return (*p)->probe(ctx, device);
}

Result<bool> LocalAgent::step_done(const sdk::Device& device, const sdk::Step& step) {
  auto p = plugin_for(device);
  if (!p) return std::unexpected(p.error());
  LocalContext ctx(options_, device, device.type, nullptr);
  return (*p)->step_done(ctx, device, step);
}

Status LocalAgent::run_step(const sdk::Device& device, const sdk::Step& step,
                            const StepControl& control) {
  auto p = plugin_for(device);
  if (!p) return std::unexpected(p.error());
  LocalContext ctx(options_, device, device.type, &control);
  return (*p)->run_step(ctx, device, step);
}

Result<sdk::VerbResult> LocalAgent::run_verb(const sdk::Device& device, const std::string& verb,
                                             const sdk::json& args) {
  auto p = plugin_for(device);
  if (!p) return std::unexpected(p.error());
  LocalContext ctx(options_, device, device.type, nullptr);
  return (*p)->run_verb(ctx, device, verb, args);
}

AgentSet::AgentSet(std::unique_ptr<Agent> local) {
  agents_["local"] = std::move(local);
}

void AgentSet::add(std::unique_ptr<Agent> agent) {
  auto n = agent->name();
  agents_[n] = std::move(agent);
}

Result<Agent*> AgentSet::for_device(const sdk::Device& device) {
  auto it = agents_.find(device.agent);
  if (it == agents_.end())
    return fail(Errc::Unreachable, "agent '" + device.agent + "' for device '" + device.name +
                                       "' is not defined in the inventory's agents");
  return it->second.get();
}

Agent* AgentSet::get(const std::string& name) {
  auto it = agents_.find(name);
  return it == agents_.end() ? nullptr : it->second.get();
}

}  // namespace labctl::agents
