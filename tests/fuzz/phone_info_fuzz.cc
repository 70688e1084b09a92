// libFuzzer target: what the phone plugin reads from the network and from logs -- the phone's
// DeviceInformationX parser, a SIP response to the check-sync NOTIFY, and (one line at a time) the
// TFTP service's JSON event log as upgrades and doctor read it back. The same bytes go to all
// three. Parsing must succeed or fail cleanly; what parses must satisfy the invariants below, or
// the target traps.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agents/net/tftp/server.h"
#include "plugins/cisco_phone/device_info.h"
#include "plugins/cisco_phone/sip_notify.h"

namespace {

using namespace labctl;

void device_info(std::string_view in) {
  auto r = cisco_phone::parse_device_info(in);
  if (r && r->app_load_id.empty()) __builtin_trap();  // a success always names the load
  if (r) (void)cisco_phone::load_protocol(r->app_load_id);
}

void sip_response(std::string_view in) {
  auto r = cisco_phone::parse_sip_response(in);
  if (!r) return;
  if (in.size() > 65536) __builtin_trap();
  if (r->code < 100 || r->code > 699) __builtin_trap();
  if (r->call_id.empty()) __builtin_trap();
  if (r->cseq_method.empty() || r->branch.empty()) return;  // nothing to write back
  // The fields a transaction matches on, written out again, parse back to themselves.
  const std::string again = "SIP/2.0 " + std::to_string(r->code) + " " + r->reason +
                            "\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=" + r->branch +
                            "\r\nCall-ID: " + r->call_id + "\r\nCSeq: " + std::to_string(r->cseq) +
                            " " + r->cseq_method + "\r\n\r\n";
  auto b = cisco_phone::parse_sip_response(again);
  if (!b) __builtin_trap();
  if (b->code != r->code || b->reason != r->reason || b->branch != r->branch ||
      b->call_id != r->call_id || b->cseq != r->cseq || b->cseq_method != r->cseq_method)
    __builtin_trap();
}

void event_lines(std::string_view in) {
  std::size_t pos = 0;
  for (int lines = 0; pos < in.size() && lines < 64; ++lines) {
    auto nl = in.find('\n', pos);
    if (nl == std::string_view::npos) nl = in.size();
    const std::string_view line = in.substr(pos, nl - pos);
    pos = nl + 1;
    const auto j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded()) continue;
    auto e = tftp::event_from_json(j);
    if (!e) continue;
    // What the service writes, it reads back: the same JSON once more.
    const auto written = tftp::event_to_json(*e);
    auto again = tftp::event_from_json(written);
    if (!again) __builtin_trap();
    // (Before 1970 the writer's seconds round toward zero: not a time a log holds.)
    if (e->time_ms >= 0 && tftp::event_to_json(*again) != written) __builtin_trap();
    (void)tftp::event_to_line(*e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  device_info(in);
  sip_response(in);
  event_lines(in);
  return 0;
}
