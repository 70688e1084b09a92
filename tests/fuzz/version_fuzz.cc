// libFuzzer target: firmware version parsing and ordering.
//
// The first byte picks the scheme, the rest is split at the first NUL into two version texts. Each
// text must parse or fail cleanly; when both parse, compare() must be antisymmetric and agree with
// itself (reflexive), otherwise the process traps.
#include <compare>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "inventory/version.h"

namespace {

using labctl::inventory::VersionScheme;

constexpr VersionScheme kSchemes[] = {VersionScheme::CiscoLoad, VersionScheme::MajorMinor,
                                      VersionScheme::Dotted, VersionScheme::Esxi};

std::strong_ordering reversed(std::strong_ordering o) {
  if (o < 0) return std::strong_ordering::greater;
  if (o > 0) return std::strong_ordering::less;
  return std::strong_ordering::equal;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const VersionScheme scheme = kSchemes[data[0] % std::size(kSchemes)];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string_view text_a = rest, text_b;
  if (auto nul = rest.find('\0'); nul != std::string_view::npos) {
    text_a = rest.substr(0, nul);
    text_b = rest.substr(nul + 1);
  }

  auto a = labctl::inventory::parse_version(scheme, text_a);
  auto b = labctl::inventory::parse_version(scheme, text_b);
  if (a) {
    (void)a->display();
    if (compare(*a, *a) != 0) __builtin_trap();
  }
  if (b) {
    (void)b->display();
    if (compare(*b, *b) != 0) __builtin_trap();
  }
  if (a && b) {
    if (compare(*a, *b) != reversed(compare(*b, *a))) __builtin_trap();
  }
  return 0;
}
