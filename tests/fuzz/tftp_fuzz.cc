// libFuzzer target: the TFTP codec (agents/net/tftp/codec.h).
//
// The first byte picks a negotiation policy, the rest is one datagram. Parsing must succeed or
// fail cleanly; a parsed request's negotiation must stay inside the policy's bounds and its OACK
// must parse back; a request that can be built again must parse back to itself; DATA payloads
// are netascii-decoded in two pieces split at a data-chosen point, and every payload must survive
// encode-then-decode. Any broken invariant traps.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "agents/net/tftp/codec.h"

namespace {

using namespace labctl::tftp;

void check_netascii(std::span<const std::uint8_t> payload, std::size_t cut) {
  cut = payload.empty() ? 0 : cut % (payload.size() + 1);
  NetasciiDecoder d;
  std::vector<std::uint8_t> decoded;
  d.feed(payload.subspan(0, cut), decoded);
  d.feed(payload.subspan(cut), decoded);
  d.finish(decoded);
  if (decoded.size() > payload.size()) __builtin_trap();

  std::vector<std::uint8_t> wire;
  NetasciiEncoder().feed(payload, wire);
  if (wire.size() != NetasciiEncoder::encoded_size(payload)) __builtin_trap();
  NetasciiDecoder back;
  std::vector<std::uint8_t> round;
  const std::size_t wcut = wire.empty() ? 0 : cut % (wire.size() + 1);
  back.feed(std::span<const std::uint8_t>(wire).subspan(0, wcut), round);
  back.feed(std::span<const std::uint8_t>(wire).subspan(wcut), round);
  back.finish(round);
  if (round.size() != payload.size() || !std::equal(round.begin(), round.end(), payload.begin()))
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t knob = data[0];
  const std::span<const std::uint8_t> packet(data + 1, size - 1);

  NegotiationPolicy policy;
  policy.max_blksize = static_cast<std::uint16_t>(8 + (knob & 0x0f) * 4096);
  policy.max_windowsize = static_cast<std::uint16_t>(1 + (knob >> 4) * 8);
  policy.path_mtu = (knob & 0x10) ? 1500 : 0;
  policy.ipv6 = (knob & 0x20) != 0;
  policy.max_window_bytes = (knob & 0x40) ? 65536 : 0;
  policy.allow_windowsize = (knob & 0x80) == 0;

  auto parsed = parse(packet, (knob & 1) ? 512 : kMaxBlksize);
  if (!parsed) {
    if (parsed.error().message().empty()) __builtin_trap();
    return 0;
  }
  if (auto* req = std::get_if<Request>(&*parsed)) {
    // Names are bounded by the datagram; empty and over-long ones are the path policy's to refuse
    // (agents/net/tftp/paths.cc, tested in paths_test.cc).
    if (req->filename.size() >= packet.size()) __builtin_trap();
    if (req->options.size() > kMaxOptions) __builtin_trap();
    const std::optional<std::uint64_t> file_size =
        (knob & 2) ? std::optional<std::uint64_t>(size * 1000) : std::nullopt;
    const Negotiated n = negotiate(*req, policy, file_size);
    if (n.blksize < kMinBlksize || n.blksize > kMaxBlksize) __builtin_trap();
    if (n.blksize > policy.max_blksize && n.blksize != kDefaultBlksize) __builtin_trap();
    if (n.windowsize < 1 || n.windowsize > policy.max_windowsize) __builtin_trap();
    if (!policy.allow_windowsize && n.windowsize != 1) __builtin_trap();
    if (n.timeout_s && *n.timeout_s == 0) __builtin_trap();
    if (n.accepted.size() + n.ignored.size() != req->options.size()) __builtin_trap();
    if (!n.accepted.empty()) {
      auto oack = build_oack(n.accepted);
      if (!oack) __builtin_trap();
      auto back = parse(*oack);
      if (!back || std::get<OackPacket>(*back).options != n.accepted) __builtin_trap();
    }
    if (auto again = build_request(*req)) {
      auto back = parse(*again);
      if (!back) __builtin_trap();
      const auto& r2 = std::get<Request>(*back);
      if (r2.filename != req->filename || r2.mode != req->mode || r2.options != req->options)
        __builtin_trap();
    }
  } else if (auto* d = std::get_if<DataPacket>(&*parsed)) {
    if (d->payload.size() > ((knob & 1) ? 512u : kMaxBlksize)) __builtin_trap();
    check_netascii(d->payload, knob);
  } else if (auto* e = std::get_if<ErrorPacket>(&*parsed)) {
    if (e->message.size() > 512) __builtin_trap();
    (void)build_error(e->code, e->message);
  } else if (auto* o = std::get_if<OackPacket>(&*parsed)) {
    if (o->options.empty()) __builtin_trap();
  }
  check_netascii(packet, size);
  return 0;
}
