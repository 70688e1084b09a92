#include "plugins/cisco_phone/sip_notify.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/text.h"

namespace labctl::cisco_phone {

using text::iequals;
using text::join_list;
using text::lower;
using text::split;
using text::trim;

namespace {

std::string random_token(std::size_t bytes) {
  unsigned char buf[16] = {};
  bytes = std::min(bytes, sizeof buf);
  std::size_t got = 0;
  while (got < bytes) {
    const ssize_t n = ::getrandom(buf + got, bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    out += hex[buf[i] >> 4];
    out += hex[buf[i] & 15];
  }
  return out;
}

// The value of a header line "Name: value" when the name matches `full` or `compact`.
bool header_is(std::string_view line, std::string_view full, std::string_view compact,
               std::string_view* value) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view name = trim(line.substr(0, colon));
  if (!iequals(name, full) && (compact.empty() || !iequals(name, compact))) return false;
  *value = trim(line.substr(colon + 1));
  return true;
}

bool parse_int(std::string_view s, int* out) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

struct UniqueSocket {
  int fd = -1;
  ~UniqueSocket() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string build_check_sync(const CheckSync& r) {
  const std::string phone = r.phone_ip + ":" + std::to_string(r.phone_port);
  const std::string local = r.local_ip + ":" + std::to_string(r.local_port);
  std::string m;
  m += "NOTIFY sip:" + r.user + "@" + phone + " SIP/2.0\r\n";
  m += "Via: SIP/2.0/UDP " + local + ";branch=" + r.branch + ";rport\r\n";
  m += "Max-Forwards: 70\r\n";
  m += "From: <sip:labctl@" + r.local_ip + ">;tag=" + r.from_tag + "\r\n";
  m += "To: <sip:" + r.user + "@" + phone + ">\r\n";
  m += "Contact: <sip:labctl@" + local + ">\r\n";
  m += "Call-ID: " + r.call_id + "\r\n";
  m += "CSeq: " + std::to_string(r.cseq) + " NOTIFY\r\n";
  m += "Event: check-sync\r\n";
  m += "User-Agent: labctl\r\n";
  m += "Content-Length: 0\r\n\r\n";
  return m;
}

Result<SipResponse> parse_sip_response(std::string_view data) {
  if (data.size() > 65536) return fail(Errc::InvalidInput, "SIP message over 64 KiB");
  const auto head_end = data.find("\r\n\r\n");
  const std::string_view head = data.substr(0, head_end);
  std::vector<std::string_view> lines;
  for (std::size_t pos = 0; pos <= head.size();) {
    auto nl = head.find("\r\n", pos);
    if (nl == std::string_view::npos) nl = head.size();
    lines.push_back(head.substr(pos, nl - pos));
    pos = nl + 2;
  }
  // The version is case-insensitive (RFC 3261 7.1).
  if (lines.empty() || lines[0].size() < 8 || !iequals(lines[0].substr(0, 8), "SIP/2.0 "))
    return fail(Errc::InvalidInput,
                "not a SIP response (the first line does not start with "
                "'SIP/2.0 ')");
  SipResponse r;
  const std::string_view status = lines[0].substr(8);
  const auto sp = status.find(' ');
  if (!parse_int(status.substr(0, sp), &r.code) || r.code < 100 || r.code > 699)
    return fail(Errc::InvalidInput,
                "bad status code in '" + std::string(lines[0].substr(0, 80)) + "'");
  if (sp != std::string_view::npos) r.reason = std::string(trim(status.substr(sp + 1)));
  bool have_via = false, have_cseq = false;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::string_view v;
    if (!have_via && header_is(lines[i], "Via", "v", &v)) {
      have_via = true;
      // The top Via only (the first header line; a comma list's first value).
      v = v.substr(0, v.find(','));
      for (auto param : split(v, ';')) {
        param = std::string(trim(param));
        if (param.size() > 7 && iequals(std::string_view(param).substr(0, 7), "branch="))
          r.branch = param.substr(7);
      }
    } else if (header_is(lines[i], "Call-ID", "i", &v)) {
      r.call_id = std::string(v);
    } else if (header_is(lines[i], "CSeq", "", &v)) {
      const auto space = v.find(' ');
      if (space == std::string_view::npos || !parse_int(v.substr(0, space), &r.cseq))
        return fail(Errc::InvalidInput, "bad CSeq '" + std::string(v.substr(0, 80)) + "'");
      r.cseq_method = std::string(trim(v.substr(space + 1)));
      have_cseq = true;
    }
  }
  if (!have_via) return fail(Errc::InvalidInput, "response without a Via header");
  if (r.call_id.empty()) return fail(Errc::InvalidInput, "response without a Call-ID header");
  if (!have_cseq) return fail(Errc::InvalidInput, "response without a CSeq header");
  return r;
}

Result<SipResponse> send_check_sync(const std::string& phone_ip, int phone_port,
                                    const std::string& user, std::chrono::milliseconds bound,
                                    const std::function<bool()>& cancelled) {
  using Clock = std::chrono::steady_clock;
  const std::string where = "check-sync to " + phone_ip + ":" + std::to_string(phone_port);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(phone_port));
  if (phone_port < 1 || phone_port > 65535 ||
      ::inet_pton(AF_INET, phone_ip.c_str(), &to.sin_addr) != 1)
    return fail(Errc::InvalidInput, where + ": not an IPv4 address and port");
  UniqueSocket s;
  s.fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s.fd < 0) return fail(Errc::Internal, where + ": socket: " + std::strerror(errno));
  // Connected: the phone's answer is the only datagram accepted, and an ICMP port unreachable
  // comes back as ECONNREFUSED.
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
    return fail(Errc::Unreachable, where + ": " + std::strerror(errno));
  sockaddr_in local{};
  socklen_t len = sizeof local;
  ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&local), &len);
  char local_ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &local.sin_addr, local_ip, sizeof local_ip);

  CheckSync req;
  req.phone_ip = phone_ip;
  req.phone_port = phone_port;
  req.user = user;
  req.local_ip = local_ip;
  req.local_port = ntohs(local.sin_port);
  req.branch = "z9hG4bK" + random_token(8);
  req.from_tag = random_token(6);
  req.call_id = random_token(12) + "@" + req.local_ip;
  const std::string msg = build_check_sync(req);

  const auto end = Clock::now() + bound;
  auto interval = std::chrono::milliseconds(500);  // T1
  auto next_send = Clock::now();
  bool provisional = false;
  for (;;) {
    if (cancelled && cancelled()) return fail(Errc::Cancelled, where + ": cancelled");
    const auto now = Clock::now();
    if (now >= end)
      return fail(Errc::Timeout, where + ": no final answer in " + std::to_string(bound.count()) +
                                     " ms" + (provisional ? " (only a provisional one)" : ""));
    // After a provisional response, retransmissions go on at T2 (RFC 3261 17.1.2.2).
    if (now >= next_send) {
      if (::send(s.fd, msg.data(), msg.size(), 0) < 0 && errno == ECONNREFUSED)
        return fail(Errc::Unreachable, where + ": nothing listens there (ICMP port unreachable)");
      next_send = now + interval;
      interval = std::min(interval * 2, std::chrono::milliseconds(4000));  // T2
    }
    const auto wait = std::min(next_send, end) - Clock::now();
    pollfd p{s.fd, POLLIN, 0};
    const int ms = static_cast<int>(std::clamp<long long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(wait).count(), 0, 100));
    const int rc = ::poll(&p, 1, ms);
    if (rc <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == ECONNREFUSED)
        return fail(Errc::Unreachable, where + ": nothing listens there (ICMP port unreachable)");
      continue;
    }
    auto r = parse_sip_response(std::string_view(buf, static_cast<std::size_t>(n)));
    if (!r || r->branch != req.branch || r->call_id != req.call_id || r->cseq != req.cseq ||
        !iequals(r->cseq_method, "NOTIFY"))
      continue;  // not ours (or not a response): a stray is never mistaken for the answer
    if (r->code < 200) {
      provisional = true;
      interval = std::chrono::milliseconds(4000);
      continue;
    }
    return r;
  }
}

}  // namespace labctl::cisco_phone
