#include "common/error.h"

#include <array>

namespace labctl {
namespace {
constexpr std::array<std::pair<Errc, std::string_view>, 10> kNames{{
    {Errc::NotSupported, "not-supported"},
    {Errc::Unreachable, "unreachable"},
    {Errc::Timeout, "timeout"},
    {Errc::AuthFailed, "auth-failed"},
    {Errc::PreconditionFailed, "precondition-failed"},
    {Errc::VerifyMismatch, "verify-mismatch"},
    {Errc::InvalidInput, "invalid-input"},
    {Errc::NotFound, "not-found"},
    {Errc::Cancelled, "cancelled"},
    {Errc::Internal, "internal"},
}};
}  // namespace

std::string_view errc_name(Errc c) {
  for (const auto& [code, name] : kNames)
    if (code == c) return name;
  return "internal";
}

Errc errc_from_name(std::string_view name) {
  for (const auto& [code, n] : kNames)
    if (n == name) return code;
  return Errc::Internal;
}

bool errc_retryable(Errc c) {
  return c == Errc::Unreachable || c == Errc::Timeout;
}

}  // namespace labctl
