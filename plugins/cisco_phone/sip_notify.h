// SIP NOTIFY with `Event: check-sync`: how a phone on a SIP load is told to read its configuration
// again (and, when its loadInformation names another load, to fetch that load). The same request
// Asterisk's sip_notify.conf sends as "cisco-check-cfg": a request outside any dialog, no body.
//
// One RFC 3261 non-INVITE client transaction over UDP (section 17.1.2): retransmitted at T1
// (500 ms), doubling up to T2 (4 s), until a final response or the time bound (Timer F, 64*T1 =
// 32 s, unless shorter). Provisional responses only stop nothing; a final one ends it.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace labctl::cisco_phone {

struct CheckSync {
  std::string phone_ip;  // IPv4 dotted quad
  int phone_port = 5060;
  std::string user;      // the line's user part (the extension)
  std::string local_ip;  // ours, for Via / From / Contact (the socket's address)
  int local_port = 0;
  // Per request: random tokens (branch with the RFC 3261 magic cookie "z9hG4bK").
  std::string branch, from_tag, call_id;
  int cseq = 1;
};

// The request's bytes (CRLF line ends, Content-Length: 0).
std::string build_check_sync(const CheckSync& r);

struct SipResponse {
  int code = 0;  // 100..699
  std::string reason;
  std::string call_id;
  int cseq = 0;
  std::string cseq_method;
  std::string branch;  // of the top Via
};

// Parses a response's status line and the headers a client transaction matches on (Via's branch,
// Call-ID, CSeq; compact forms v / i too). InvalidInput saying why for anything else (a request,
// a bad status line, missing headers, over 64 KiB).
Result<SipResponse> parse_sip_response(std::string_view data);

// Sends the check-sync and waits for the final response that matches it (branch, Call-ID, CSeq).
// Unreachable when the phone refuses (ICMP port unreachable); Timeout when nothing final came in
// `bound`; Cancelled when `cancelled` turned true. A final response of any code is returned (the
// caller decides what a 4xx means).
Result<SipResponse> send_check_sync(const std::string& phone_ip, int phone_port,
                                    const std::string& user, std::chrono::milliseconds bound,
                                    const std::function<bool()>& cancelled);

}  // namespace labctl::cisco_phone
