#include "plugins/supermicro_bmc/device_target.h"

namespace labctl::supermicro_bmc {

using sdk::json;

namespace {

int privilege_code(const std::string& p) {
  if (p == "user") return 2;
  if (p == "operator") return 3;
  return 4;
}

}  // namespace

std::string inventory_user(const sdk::Device& d) {
  return d.params.value("credentials", json::object()).value("user", std::string(kFactoryUser));
}

Target base_target(const sdk::Device& d) {
  Target t;
  t.host = d.ip;
  t.port = static_cast<int>(d.params.value("port", std::int64_t{623}));
  t.cipher_suite = static_cast<int>(d.params.value("cipher-suite", std::int64_t{3}));
  t.privilege = privilege_code(d.params.value("privilege", "admin"));
  t.session_timeout =
      std::chrono::milliseconds(d.params.value("session-timeout", std::int64_t{8000}));
  t.retransmission_timeout =
      std::chrono::milliseconds(d.params.value("retransmission-timeout", std::int64_t{250}));
  for (const auto& w : d.params.value("workarounds", json::array()))
    if (w.is_string())
      if (auto f = workaround_flag(w.get<std::string>())) t.workarounds |= *f;
  return t;
}

Result<Target> inventory_target(sdk::DeviceContext& ctx, const sdk::Device& d) {
  if (d.ip.empty())
    return fail(Errc::PreconditionFailed, d.name + ": no ip in the inventory (the BMC's address)");
  Target t = base_target(d);
  t.user = inventory_user(d);
  auto pw = ctx.secret(d, "/credentials/password");
  if (!pw) return fail(std::move(pw.error()).context(d.name + ": credentials.password"));
  t.password = *pw;
  return t;
}

Target factory_target(const sdk::Device& d) {
  Target t = base_target(d);
  t.user = kFactoryUser;
  t.password = kFactoryPassword;
  return t;
}

Result<bool> login_accepted(Target t, std::chrono::milliseconds timeout) {
  t.session_timeout = timeout;
  auto s = Session::open(t);
  if (s) return true;
  if (s.error().code() == Errc::AuthFailed || s.error().code() == Errc::NotSupported) return false;
  return fail(s.error());
}

}  // namespace labctl::supermicro_bmc
