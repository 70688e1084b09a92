// How the plugin reaches one inventory device over IPMI: the session parameters from its keys,
// with the inventory's login or the factory one. Shared by the probe, the reconcile steps and the
// flash steps.
#pragma once

#include <chrono>
#include <string>

#include "plugins/sdk/plugin.h"
#include "plugins/supermicro_bmc/ipmi.h"

namespace labctl::supermicro_bmc {

// The factory login of these boards.
inline constexpr const char* kFactoryUser = "ADMIN";
inline constexpr const char* kFactoryPassword = "ADMIN";

std::string inventory_user(const sdk::Device& d);
// The session parameters for a device, without user and password.
Target base_target(const sdk::Device& d);
// With the inventory's login (the password resolved from its secret).
Result<Target> inventory_target(sdk::DeviceContext& ctx, const sdk::Device& d);
// With ADMIN/ADMIN.
Target factory_target(const sdk::Device& d);
// Whether a session with `t` opens (true), is refused (false), or something else went wrong.
Result<bool> login_accepted(Target t, std::chrono::milliseconds timeout);

}  // namespace labctl::supermicro_bmc
