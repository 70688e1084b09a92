#include "plugins/sdk/plugin.h"

#include <thread>

namespace labctl::sdk {

json Observation::to_json() const {
  json f = json::array();
  for (const auto& x : findings)
    f.push_back({{"severity", x.severity}, {"code", x.code}, {"message", x.message}});
  return {{"model", model},   {"serial", serial}, {"version", version}, {"components", components},
          {"health", health}, {"facts", facts},   {"findings", f}};
}

Result<Observation> Observation::from_json(const json& j) {
  try {
    Observation o;
    o.model = j.value("model", "");
    o.serial = j.value("serial", "");
    o.version = j.value("version", "");
    if (j.contains("components"))
      o.components = j.at("components").get<std::map<std::string, std::string>>();
    o.health = j.value("health", json::object());
    o.facts = j.value("facts", json::object());
    for (const auto& f : j.value("findings", json::array()))
      o.findings.push_back(
          {f.value("severity", "warning"), f.value("code", ""), f.value("message", "")});
    return o;
  } catch (const json::exception& e) {
    return fail(Errc::InvalidInput, std::string("observation: ") + e.what());
  }
}

Result<std::vector<FirmwareImage>> DeviceContext::firmware_images(const inventory::Family& family,
                                                                  const inventory::Release&) {
  return fail(Errc::NotSupported, "no firmware store here (family " + family.name + ")");
}

TftpServiceInfo DeviceContext::tftp_service(const Device&) const {
  return {};
}

Result<VerbResult> DeviceContext::run_device_verb(const std::string& device,
                                                  const std::string& verb, const json&) {
  return fail(Errc::NotSupported, "cannot run '" + verb + "' on device '" + device +
                                      "' from here (no inventory in this context)");
}

json Step::to_json() const {
  return {{"key", key},       {"action", action},
          {"title", title},   {"reason", reason},
          {"args", args},     {"weight", weight},
          {"writes", writes}, {"hop", hop},
          {"hops", hops},     {"timeout_ms", timeout.count()}};
}

Result<Step> Step::from_json(const json& j) {
  try {
    Step s;
    s.key = j.at("key").get<std::string>();
    s.action = j.at("action").get<std::string>();
    s.title = j.value("title", s.key);
    s.reason = j.value("reason", "");
    s.args = j.value("args", json::object());
    s.weight = j.value("weight", 1);
    s.writes = j.value("writes", true);
    s.hop = j.value("hop", 0);
    s.hops = j.value("hops", 0);
    s.timeout = std::chrono::milliseconds(j.value("timeout_ms", std::int64_t{0}));
    return s;
  } catch (const json::exception& e) {
    return fail(Errc::InvalidInput, std::string("step: ") + e.what());
  }
}

bool DeviceContext::sleep_for(std::chrono::milliseconds d) {
  auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
    if (cancelled()) return false;
    auto left = end - std::chrono::steady_clock::now();
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
  }
  return !cancelled();
}

Result<std::vector<Step>> Plugin::hop_steps(const Device& device, const HopInfo&) const {
  return fail(Errc::NotSupported, "type '" + device.type + "' does not install firmware");
}

std::vector<Step> Plugin::reconcile_steps(const Device&, const Observation&,
                                          const std::vector<Step>&) const {
  return {};
}

Result<VerbResult> Plugin::run_verb(DeviceContext&, const Device& device, const std::string& verb,
                                    const json&) {
  return fail(Errc::NotSupported, "type '" + device.type + "' has no verb '" + verb + "'");
}

}  // namespace labctl::sdk
