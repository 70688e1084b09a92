// libFuzzer target: what the Supermicro web flasher parses -- flasher profiles (YAML, from an
// operator's file) and the BMC's web answers (login page, CSRF page, lock, version check,
// progress). The first byte picks: 'P' the rest is a profile; anything else, the rest is an
// answer given to every answer parser of both built-in profiles. Parsing must succeed or fail
// cleanly, and what it returns must keep the invariants below, or the target traps.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "plugins/supermicro_bmc/web_profile.h"

namespace bmc = labctl::supermicro_bmc;

namespace {

bool plain_version(const std::string& v) {
  // "M.mm": a major of 1..127 and exactly two minor digits.
  auto dot = v.find('.');
  if (dot == std::string::npos || dot == 0 || dot > 3 || v.size() != dot + 3) return false;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (i != dot && (v[i] < '0' || v[i] > '9')) return false;
  const int major = std::stoi(v.substr(0, dot));
  return major >= 1 && major <= 127;
}

void profile(const std::string& text) {
  labctl::inventory::Diagnostics diags;
  auto p = bmc::parse_flash_profile(text, "fuzz.yaml", diags);
  if (p.has_value() == diags.has_errors()) __builtin_trap();  // a result, or a reason
  if (!p) return;
  // What a profile sends is well-formed, whatever it says.
  for (const auto* path :
       {&p->login.path, &p->upload.path, &p->version_check.path, &p->start.path, &p->progress.path})
    if (path->empty() || (*path)[0] != '/') __builtin_trap();
  if (p->sources.empty() || p->login.success.empty() || p->login.session_cookie.empty())
    __builtin_trap();
  const std::string body = bmc::encode_form(p->start.form, {{"preserve", "1"}});
  if (body.find_first_of(" \r\n\"{}") != std::string::npos) __builtin_trap();
  (void)bmc::encode_form(p->login.form, {{"user", "u s"}, {"password", "p&w"}});
  (void)bmc::describe(*p);
}

void answers(std::string_view body, const bmc::FlashProfile& p) {
  (void)bmc::login_succeeded(p, body);
  const std::string token = bmc::find_csrf_token(p, body);
  if (token.find_first_of("\r\n\" ") != std::string::npos || token.size() > 256) __builtin_trap();
  auto l = bmc::parse_lock_answer(p, body);
  if (l.state != bmc::LockState::Unknown && l.kind != bmc::AnswerKind::Xml) __builtin_trap();
  auto v = bmc::parse_version_answer(p, body);
  if (!v.version.empty() && !plain_version(v.version)) __builtin_trap();
  if (!v.version.empty() && bmc::version_from(p.version_check.format, v.raw) != v.version)
    __builtin_trap();
  auto g = bmc::parse_progress_answer(p, body);
  if (g.percent && (*g.percent < 0 || *g.percent > 100)) __builtin_trap();
  if (g.percent && g.kind != bmc::AnswerKind::Xml) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 'P') {
    profile(rest);
    return 0;
  }
  static const auto x11 = bmc::builtin_profile("x10-x11");
  static const auto x8 = bmc::builtin_profile("x8-aten-web");
  if (!x11 || !x8) __builtin_trap();
  answers(rest, *x11);
  answers(rest, *x8);
  return 0;
}
