// libFuzzer target: everything the agent API decodes from the other side -- the agent reading a
// controller's calls (config push, device, step and verb calls, firmware manifests) and the
// controller reading an agent's answers (status, config answer, step-stream lines, errors). The
// same bytes go to every decoder. A decoder succeeds or fails with a message; what it accepts
// must survive an encode/decode round trip unchanged, or the target traps.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agents/rpc/protocol.h"

namespace {

using namespace labctl::agents::rpc;

template <typename R>
void must_explain(const R& r) {
  if (!r && r.error().message().empty()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  auto step = decode_step_call(in);
  must_explain(step);
  if (step) {
    auto again = decode_step_call(encode(*step).dump());
    if (!again || again->step.to_json() != step->step.to_json() || again->device != step->device ||
        again->timeout_ms != step->timeout_ms)
      __builtin_trap();
  }
  auto dev = decode_device_call(in);
  must_explain(dev);
  if (dev) {
    auto again = decode_device_call(encode(*dev).dump());
    if (!again || again->device != dev->device || again->config != dev->config) __builtin_trap();
  }
  auto verb = decode_verb_call(in);
  must_explain(verb);
  if (verb) {
    auto again = decode_verb_call(encode(*verb).dump());
    if (!again || again->args != verb->args || again->verb != verb->verb) __builtin_trap();
  }
  auto manifest = decode_firmware_manifest(in);
  must_explain(manifest);
  if (manifest)
    for (const auto& f : manifest->files)
      if (!is_sha256_hex(f.sha256) || f.name.empty() || f.name.find('/') != std::string::npos)
        __builtin_trap();
  auto push = decode_config_push(in);
  must_explain(push);
  if (push && (push->inventory_name.empty() || push->inventory_name.find('/') != std::string::npos))
    __builtin_trap();
  must_explain(decode_config_ack(in));
  auto status = decode_status(in);
  must_explain(status);
  if (status) {
    auto again = decode_status(encode(*status).dump());
    if (!again || again->agent != status->agent || again->events != status->events)
      __builtin_trap();
  }
  auto line = decode_line(in);
  must_explain(line);
  if (line) {
    auto again = decode_line(encode_line(*line));
    if (!again || again->kind != line->kind) __builtin_trap();
  }
  std::optional<NeedFirmware> need;
  (void)decode_error(in, 500, &need);
  (void)path_version(in);
  return 0;
}
