// libFuzzer target: arbitrary bytes as a Supermicro BMC firmware image (ATEN, WPCM450).
//
// The parser must never crash, leak or hang, and what it returns must keep the invariants checked
// below: every header it read lies in the input, an image it says is in the file is, "ok" means no
// problem, and a failure always says why. Describing, JSON and the flash check run on every result.
#include <cstddef>
#include <cstdint>
#include <span>

#include <nlohmann/json.hpp>

#include "plugins/supermicro_bmc/aten_image.h"

namespace bmc = labctl::supermicro_bmc;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  const auto kind = bmc::detect_bmc_image(bytes);
  auto r = bmc::parse_aten_image(bytes);
  if (!r) {
    if (r.error().message().empty()) __builtin_trap();
    // Only an input detect_bmc_image() does not call an ATEN image may fail to parse.
    if (kind.kind == bmc::BmcImageKind::AtenWpcm450) __builtin_trap();
    return 0;
  }
  if (kind.kind != bmc::BmcImageKind::AtenWpcm450) __builtin_trap();
  const bmc::AtenImage& img = *r;
  if (img.size != size || img.images.size() > bmc::kAtenMaxImages) __builtin_trap();
  for (const auto& h : img.images) {
    if (h.offset % bmc::kAtenHeaderBlock != 0 || h.offset + bmc::kAtenHeaderBlock > size)
      __builtin_trap();
    if (h.in_file && h.file_offset + h.length > size) __builtin_trap();
    if (!h.in_file && h.file_offset + h.length <= size) __builtin_trap();
    if (h.image_checksum_ok && !h.in_file) __builtin_trap();
  }
  if (img.footer.found && img.footer.offset + 8 > size) __builtin_trap();
  if (img.ok() != img.problems.empty()) __builtin_trap();
  // A clean bill of health needs every checksum to match.
  if (img.ok()) {
    if (img.images.empty() || !img.footer.checksum_ok || !img.bootloader.found) __builtin_trap();
    for (const auto& h : img.images)
      if (!h.image_checksum_ok || !h.header_checksum_ok) __builtin_trap();
  }
  (void)bmc::describe(img);
  (void)bmc::to_json(img).dump();
  (void)bmc::check_image_for(img, "X8SIL-F", img.footer.version());
  return 0;
}
