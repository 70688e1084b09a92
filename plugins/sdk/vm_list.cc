#include "plugins/sdk/vm_list.h"

#include <map>
#include <set>
#include <string>

#include "common/text.h"

namespace labctl::sdk {

using nlohmann::json;

std::vector<const json*> vm_start_order(const json& vms, std::vector<const json*>* stuck) {
  std::vector<const json*> out;
  std::set<std::string> placed, names;
  std::vector<const json*> pending;
  for (const auto& v : vms) {
    pending.push_back(&v);
    names.insert(v.value("name", ""));
  }
  while (!pending.empty()) {
    bool progress = false;
    for (auto it = pending.begin(); it != pending.end();) {
      bool ready = true;
      for (const auto& a : (*it)->value("after", json::array()))
        if (a.is_string() && names.count(a.get<std::string>()) &&
            !placed.count(a.get<std::string>()))
          ready = false;
      if (ready) {
        placed.insert((*it)->value("name", ""));
        out.push_back(*it);
        it = pending.erase(it);
        progress = true;
      } else {
        ++it;
      }
    }
    if (!progress) {
      if (stuck) *stuck = pending;
      out.insert(out.end(), pending.begin(), pending.end());
      break;
    }
  }
  return out;
}

void check_vm_list(const json& vms, const std::string& pointer, inventory::DeviceReport& report) {
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < vms.size(); ++i) {
    const std::string name = vms[i].value("name", "");
    if (!index.emplace(name, i).second)
      report.error(pointer + "/" + std::to_string(i) + "/name",
                   "VM '" + name + "' is listed twice");
  }
  for (std::size_t i = 0; i < vms.size(); ++i) {
    const json after = vms[i].value("after", json::array());
    for (std::size_t j = 0; j < after.size(); ++j) {
      const std::string a = after[j].is_string() ? after[j].get<std::string>() : "";
      if (!index.count(a))
        report.error(pointer + "/" + std::to_string(i) + "/after/" + std::to_string(j),
                     "VM '" + vms[i].value("name", "") + "' starts after '" + a +
                         "', which is not a VM of this host");
    }
  }
  // VMs that can never be placed in start order wait for each other (unknown names are
  // reported above and do not hold a VM back).
  std::vector<const json*> stuck;
  vm_start_order(vms, &stuck);
  if (!stuck.empty()) {
    std::vector<std::string> names;
    for (const json* v : stuck)
      names.push_back(v->value("name", ""));
    report.error(pointer + "/" + std::to_string(index[names.front()]) + "/after",
                 "VMs wait for each other in a cycle: " + text::join_list(names, ", "));
  }
}

}  // namespace labctl::sdk
