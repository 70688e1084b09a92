// libFuzzer target: the DHCPv4 codec (agents/net/dhcp/codec.h).
//
// The input is one UDP payload. Parsing must succeed or fail cleanly with a message. A parsed
// message must build again (unless it only fitted thanks to overload or a missing end option, and
// the plain form would exceed 65535 bytes) and parse back to itself: same fixed fields, same
// options with the same contents. It is then answered like a server would: the message as the
// reply skeleton, its options as the options to send, its option 55 as the request list, every
// third code as always-send, its option 57 as the size limit. The reply must stay within that
// limit, parse back, carry every sent option unchanged and account for every candidate option as
// sent or dropped. Any broken invariant traps.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "agents/net/dhcp/codec.h"

namespace {

using namespace labctl::dhcp;

bool same_fixed_fields(const Message& a, const Message& b) {
  return a.op == b.op && a.htype == b.htype && a.hlen == b.hlen && a.hops == b.hops &&
         a.xid == b.xid && a.secs == b.secs && a.flags == b.flags && a.ciaddr == b.ciaddr &&
         a.yiaddr == b.yiaddr && a.siaddr == b.siaddr && a.giaddr == b.giaddr &&
         a.chaddr == b.chaddr && a.sname == b.sname && a.file == b.file;
}

bool contains(const std::string& s, const char* what) {
  return s.find(what) != std::string::npos;
}

void check_reply(const Message& m) {
  ReplyPlan plan;
  plan.skeleton = m;
  plan.options = m.options;
  if (auto prl = parameter_request_list(m)) plan.parameter_request_list = *prl;
  for (std::size_t i = 0; i < m.options.size(); i += 3)
    plan.always_send.push_back(m.options.items()[i].code);
  plan.max_message_size = max_message_size(m).value_or(kMinMaxMessageSize);
  const std::size_t limit =
      std::max<std::size_t>(plan.max_message_size, kMinMaxMessageSize) - kIpUdpHeaders;

  auto reply = build_reply(plan);
  if (!reply) {
    // Only the protocol options (never dropped) can make a reply impossible.
    if (!contains(reply.error().message(), "do not fit")) __builtin_trap();
    return;
  }
  if (reply->bytes.size() > limit || reply->bytes.size() < kMinReplySize) __builtin_trap();
  auto back = parse(reply->bytes);
  if (!back) __builtin_trap();
  if (back->overload != reply->overload) __builtin_trap();
  if (!same_fixed_fields(*back, m)) __builtin_trap();
  if (back->options.size() != reply->sent.size()) __builtin_trap();
  for (std::uint8_t code : reply->sent) {
    const auto* got = back->options.find(code);
    const auto* want = m.options.find(code);
    if (got == nullptr || want == nullptr || *got != *want) __builtin_trap();
  }
  for (std::uint8_t code : reply->dropped) {
    if (back->options.has(code)) __builtin_trap();
    if (std::find(reply->sent.begin(), reply->sent.end(), code) != reply->sent.end())
      __builtin_trap();
  }
  // Protocol options are never dropped.
  for (std::uint8_t code : {opt::kMessageType, opt::kServerId, opt::kRelayAgentInfo})
    if (std::find(reply->dropped.begin(), reply->dropped.end(), code) != reply->dropped.end())
      __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> packet(data, size);
  auto parsed = parse(packet);
  if (!parsed) {
    if (parsed.error().message().empty()) __builtin_trap();
    return 0;
  }
  const Message& m = *parsed;
  if (m.sname.size() > kSnameSize || m.file.size() > kFileSize) __builtin_trap();
  for (const auto& o : m.options.items())
    if (o.code == opt::kPad || o.code == opt::kEnd || o.code == opt::kOverload) __builtin_trap();
  if (m.overload > 3) __builtin_trap();
  (void)describe(m);
  (void)check_known_options(m);
  (void)mac_string(m);
  (void)ipv4_list_option(m, opt::kCiscoTftpServers);
  (void)text_option(m, opt::kTftpServerName);

  auto again = build(m);
  if (!again) {
    if (!contains(again.error().message(), "larger than 65535")) __builtin_trap();
  } else {
    if (again->size() > kMaxPacket) __builtin_trap();
    auto back = parse(*again);
    if (!back) __builtin_trap();
    if (back->overload != 0) __builtin_trap();
    if (!same_fixed_fields(*back, m) || back->options != m.options) __builtin_trap();
  }
  check_reply(m);
  return 0;
}
