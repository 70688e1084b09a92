// The check-sync NOTIFY: its bytes, the response parser, and the client transaction against a UDP
// "phone" on 127.0.0.1 run by a thread of the test (answers, strays, silence, drops).
#include "plugins/cisco_phone/sip_notify.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

namespace labctl::cisco_phone {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::int64_t ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<milliseconds>(b - a).count();
}

// ---- build_check_sync -------------------------------------------------------------------------

CheckSync request() {
  CheckSync r;
  r.phone_ip = "10.99.1.10";
  r.phone_port = 5062;
  r.user = "1001";
  r.local_ip = "10.99.0.1";
  r.local_port = 40123;
  r.branch = "z9hG4bKdeadbeef01";
  r.from_tag = "a1b2c3";
  r.call_id = "0123456789ab@10.99.0.1";
  return r;
}

std::vector<std::string> crlf_lines(const std::string& m) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (;;) {
    const auto nl = m.find("\r\n", pos);
    if (nl == std::string::npos) {
      out.push_back(m.substr(pos));
      return out;
    }
    out.push_back(m.substr(pos, nl - pos));
    pos = nl + 2;
  }
}

TEST(BuildCheckSync, RequestLineAndHeaders) {
  const std::string m = build_check_sync(request());
  // Every line ends with CRLF: no bare LF or CR anywhere but in CRLF pairs.
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n') {
      EXPECT_TRUE(i > 0 && m[i - 1] == '\r') << "bare LF at " << i;
    }
    if (m[i] == '\r') {
      EXPECT_TRUE(i + 1 < m.size() && m[i + 1] == '\n') << "bare CR at " << i;
    }
  }
  // The header ends with an empty line, and there is no body.
  ASSERT_GE(m.size(), 4u);
  EXPECT_EQ(m.substr(m.size() - 4), "\r\n\r\n");
  EXPECT_EQ(m.find("\r\n\r\n"), m.size() - 4);

  const auto lines = crlf_lines(m);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[0], "NOTIFY sip:1001@10.99.1.10:5062 SIP/2.0");
  EXPECT_EQ(lines[lines.size() - 2], "");
  EXPECT_EQ(lines.back(), "");
  const std::vector<std::string> want = {
      "Via: SIP/2.0/UDP 10.99.0.1:40123;branch=z9hG4bKdeadbeef01;rport",
      "Max-Forwards: 70",
      "From: <sip:labctl@10.99.0.1>;tag=a1b2c3",
      "To: <sip:1001@10.99.1.10:5062>",
      "Call-ID: 0123456789ab@10.99.0.1",
      "CSeq: 1 NOTIFY",
      "Event: check-sync",
      "Content-Length: 0",
  };
  for (const auto& w : want)
    EXPECT_EQ(std::count(lines.begin(), lines.end(), w), 1) << "missing or repeated: " << w << "\n"
                                                            << m;
  // One header of each name (a phone takes the first Via; two Call-IDs would be a broken message).
  for (const char* name :
       {"Via:", "From:", "To:", "Call-ID:", "CSeq:", "Event:", "Content-Length:"})
    EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                            [&](const std::string& l) { return l.rfind(name, 0) == 0; }),
              1)
        << name;
  // Content-Length is the last header.
  EXPECT_EQ(lines[lines.size() - 3], "Content-Length: 0");
}

TEST(BuildCheckSync, CSeqAndTokensComeFromTheRequest) {
  CheckSync r = request();
  r.cseq = 7;
  r.user = "desk";
  r.phone_port = 5060;
  const std::string m = build_check_sync(r);
  EXPECT_EQ(m.rfind("NOTIFY sip:desk@10.99.1.10:5060 SIP/2.0\r\n", 0), 0u) << m;
  EXPECT_NE(m.find("\r\nCSeq: 7 NOTIFY\r\n"), std::string::npos) << m;
  EXPECT_NE(m.find("\r\nTo: <sip:desk@10.99.1.10:5060>\r\n"), std::string::npos) << m;
}

// ---- parse_sip_response -----------------------------------------------------------------------

const std::string kOk =
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 10.99.0.1:40123;branch=z9hG4bKdeadbeef01;rport=40123;received=10.99.0.1\r\n"
    "From: <sip:labctl@10.99.0.1>;tag=a1b2c3\r\n"
    "To: <sip:1001@10.99.1.10:5062>;tag=phone77\r\n"
    "Call-ID: 0123456789ab@10.99.0.1\r\n"
    "CSeq: 1 NOTIFY\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) s.replace(pos, from.size(), to);
  return s;
}

TEST(ParseSipResponse, AFinalResponse) {
  auto r = parse_sip_response(kOk);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->code, 200);
  EXPECT_EQ(r->reason, "OK");
  EXPECT_EQ(r->branch, "z9hG4bKdeadbeef01");
  EXPECT_EQ(r->call_id, "0123456789ab@10.99.0.1");
  EXPECT_EQ(r->cseq, 1);
  EXPECT_EQ(r->cseq_method, "NOTIFY");
}

TEST(ParseSipResponse, ReasonWithSpacesAndNoReason) {
  auto r = parse_sip_response(replace(kOk, "200 OK", "489 Bad Event"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->code, 489);
  EXPECT_EQ(r->reason, "Bad Event");
  r = parse_sip_response(replace(kOk, "200 OK", "100"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->code, 100);
  EXPECT_EQ(r->reason, "");
}

TEST(ParseSipResponse, CompactAndCaseInsensitiveHeaders) {
  std::string m = replace(kOk, "Via:", "v:");
  m = replace(m, "Call-ID:", "i:");
  auto r = parse_sip_response(m);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->branch, "z9hG4bKdeadbeef01");
  EXPECT_EQ(r->call_id, "0123456789ab@10.99.0.1");
  m = replace(kOk, "Via:", "VIA :");
  m = replace(m, "Call-ID:", "call-id:");
  m = replace(m, "CSeq:", "cseq:");
  r = parse_sip_response(m);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->branch, "z9hG4bKdeadbeef01");
  EXPECT_EQ(r->call_id, "0123456789ab@10.99.0.1");
  EXPECT_EQ(r->cseq, 1);
}

TEST(ParseSipResponse, TheTopViaDecides) {
  // Two Via lines: the first. A comma list: its first value.
  std::string m = replace(kOk, "Via: ", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKtop\r\nVia: ");
  auto r = parse_sip_response(m);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->branch, "z9hG4bKtop");
  m = replace(kOk, "Via: ", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfirst, ");
  r = parse_sip_response(m);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->branch, "z9hG4bKfirst");
  // A top Via without a branch does not borrow the next one's.
  m = replace(kOk, "Via: ", "Via: SIP/2.0/UDP 192.0.2.1;rport\r\nVia: ");
  r = parse_sip_response(m);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->branch, "");
}

TEST(ParseSipResponse, TheBodyIsNotHeaders) {
  std::string m = replace(kOk, "Content-Length: 0", "Content-Length: 40");
  m += "Call-ID: evil\r\nVia: SIP/2.0/UDP x;branch=zz\r\n";
  auto r = parse_sip_response(m);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->call_id, "0123456789ab@10.99.0.1");
  EXPECT_EQ(r->branch, "z9hG4bKdeadbeef01");
}

TEST(ParseSipResponse, RejectsWhatIsNotAResponseItCanMatch) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "not a SIP response"},
      {build_check_sync(request()), "not a SIP response"},
      {replace(kOk, "SIP/2.0 200 OK", "SIP/1.0 200 OK"), "not a SIP response"},
      {replace(kOk, "SIP/2.0 200 OK", "HTTP/1.1 200 OK"), "not a SIP response"},
      {replace(kOk, "200 OK", "99 Low"), "bad status code"},
      {replace(kOk, "200 OK", "700 High"), "bad status code"},
      {replace(kOk, "200 OK", "2x0 OK"), "bad status code"},
      {replace(kOk, "200 OK", " 200 OK"), "bad status code"},
      {replace(kOk, "200 OK", "-200 OK"), "bad status code"},
      {replace(kOk, "200 OK", "+200 OK"), "bad status code"},
      {replace(kOk, "200 OK", "20000000000000000000 OK"), "bad status code"},
      {replace(kOk, "200 OK", ""), "bad status code"},
      {replace(kOk, "CSeq: 1 NOTIFY", "CSeq: one NOTIFY"), "bad CSeq"},
      {replace(kOk, "CSeq: 1 NOTIFY", "CSeq: 1"), "bad CSeq"},
      {replace(kOk, "CSeq: 1 NOTIFY\r\n", ""), "without a CSeq"},
      {replace(kOk, "Call-ID: 0123456789ab@10.99.0.1\r\n", ""), "without a Call-ID"},
      {replace(kOk, "Call-ID: 0123456789ab@10.99.0.1", "Call-ID:"), "without a Call-ID"},
      {replace(kOk,
               "Via: SIP/2.0/UDP 10.99.0.1:40123;branch=z9hG4bKdeadbeef01;rport=40123;"
               "received=10.99.0.1\r\n",
               ""),
       "without a Via"},
  };
  for (const auto& [m, why] : bad) {
    auto r = parse_sip_response(m);
    ASSERT_FALSE(r) << "accepted:\n" << m;
    EXPECT_EQ(r.error().code(), Errc::InvalidInput);
    EXPECT_NE(r.error().message().find(why), std::string::npos)
        << r.error().message() << " (want '" << why << "')";
  }
}

TEST(ParseSipResponse, SizeLimitIs64KiB) {
  std::string big = replace(kOk, "Content-Length: 0", "Content-Length: 65000");
  big += std::string(65536 - big.size(), 'x');
  ASSERT_EQ(big.size(), 65536u);
  EXPECT_TRUE(parse_sip_response(big));
  big += 'x';
  auto r = parse_sip_response(big);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::InvalidInput);
  EXPECT_NE(r.error().message().find("64 KiB"), std::string::npos) << r.error().message();
  // Header lines by the thousand (a flood of Vias) stay a normal parse.
  std::string many = "SIP/2.0 200 OK\r\n";
  while (many.size() < 60000)
    many += "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n";
  many += "Call-ID: c\r\nCSeq: 1 NOTIFY\r\n\r\n";
  auto m = parse_sip_response(many);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->branch, "z9hG4bKx");
}

// ---- send_check_sync against a UDP peer on loopback -------------------------------------------

class UdpPeer {
 public:
  struct Datagram {
    std::string data;
    sockaddr_in from{};
    Clock::time_point at;
  };

  UdpPeer() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
  }
  ~UdpPeer() { close(); }
  UdpPeer(const UdpPeer&) = delete;
  UdpPeer& operator=(const UdpPeer&) = delete;

  int port() const { return port_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::optional<Datagram> receive(milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    Datagram d;
    char buf[65536];
    socklen_t len = sizeof d.from;
    const ssize_t n =
        ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&d.from), &len);
    if (n < 0) return std::nullopt;
    d.at = Clock::now();
    d.data.assign(buf, static_cast<std::size_t>(n));
    return d;
  }

  void send_to(const sockaddr_in& to, const std::string& data) {
    EXPECT_EQ(::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                       sizeof to),
              static_cast<ssize_t>(data.size()));
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// The first header line named `name` ("Via"), whole; "" when none.
std::string header_line(const std::string& msg, const std::string& name) {
  for (const auto& l : crlf_lines(msg))
    if (l.rfind(name + ":", 0) == 0) return l;
  return "";
}

// The response a phone sends: Via, From, Call-ID, CSeq copied, a To tag added.
std::string answer(const std::string& req, int code, const std::string& reason) {
  std::string r = "SIP/2.0 " + std::to_string(code) + " " + reason + "\r\n";
  r += header_line(req, "Via") + "\r\n";
  r += header_line(req, "From") + "\r\n";
  r += header_line(req, "To") + ";tag=phone77\r\n";
  r += header_line(req, "Call-ID") + "\r\n";
  r += header_line(req, "CSeq") + "\r\n";
  r += "Content-Length: 0\r\n\r\n";
  return r;
}

// Runs `phone` on a thread for the duration of the scope (it must end by itself: every receive
// has a timeout).
class PhoneThread {
 public:
  explicit PhoneThread(std::function<void(UdpPeer&)> phone)
      : thread_([this, phone = std::move(phone)] { phone(peer_); }) {}
  ~PhoneThread() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return peer_.port(); }

 private:
  UdpPeer peer_;
  std::thread thread_;
};

Result<SipResponse> check_sync(int port, milliseconds bound = milliseconds(5000),
                               const std::function<bool()>& cancelled = {}) {
  return send_check_sync("127.0.0.1", port, "1001", bound, cancelled);
}

TEST(SendCheckSync, TheAnswerIsReturned) {
  std::vector<UdpPeer::Datagram> got;
  PhoneThread phone([&](UdpPeer& p) {
    auto d = p.receive(milliseconds(3000));
    if (!d) return;
    got.push_back(*d);
    p.send_to(d->from, answer(d->data, 200, "OK"));
    // Anything more is a retransmission we did not need.
    while (auto more = p.receive(milliseconds(700)))
      got.push_back(*more);
  });
  const auto start = Clock::now();
  auto r = check_sync(phone.port());
  const auto took = ms_between(start, Clock::now());
  phone.join();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->code, 200);
  EXPECT_EQ(r->reason, "OK");
  EXPECT_EQ(r->cseq, 1);
  EXPECT_EQ(r->cseq_method, "NOTIFY");
  EXPECT_EQ(r->branch.rfind("z9hG4bK", 0), 0u) << r->branch;
  EXPECT_GT(r->branch.size(), 7u + 8u);  // the magic cookie and a random part
  EXPECT_LT(took, 450) << "waited for a retransmission";
  ASSERT_EQ(got.size(), 1u);

  // What the phone saw: a check-sync addressed to it, from where its answer goes.
  const std::string& req = got[0].data;
  const auto lines = crlf_lines(req);
  EXPECT_EQ(lines[0], "NOTIFY sip:1001@127.0.0.1:" + std::to_string(phone.port()) + " SIP/2.0");
  const int from_port = ntohs(got[0].from.sin_port);
  EXPECT_EQ(header_line(req, "Via"), "Via: SIP/2.0/UDP 127.0.0.1:" + std::to_string(from_port) +
                                         ";branch=" + r->branch + ";rport");
  EXPECT_EQ(header_line(req, "Call-ID"), "Call-ID: " + r->call_id);
  EXPECT_EQ(header_line(req, "Event"), "Event: check-sync");
  EXPECT_EQ(header_line(req, "CSeq"), "CSeq: 1 NOTIFY");
  EXPECT_EQ(header_line(req, "To"),
            "To: <sip:1001@127.0.0.1:" + std::to_string(phone.port()) + ">");
  EXPECT_NE(header_line(req, "From").find(";tag="), std::string::npos);
  EXPECT_EQ(req.substr(req.size() - 4), "\r\n\r\n");
}

TEST(SendCheckSync, EachRequestHasItsOwnTokens) {
  std::vector<std::string> reqs;
  PhoneThread phone([&](UdpPeer& p) {
    for (int i = 0; i < 2; ++i) {
      auto d = p.receive(milliseconds(3000));
      if (!d) return;
      reqs.push_back(d->data);
      p.send_to(d->from, answer(d->data, 200, "OK"));
    }
  });
  auto a = check_sync(phone.port());
  auto b = check_sync(phone.port());
  phone.join();
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->branch, b->branch);
  EXPECT_NE(a->call_id, b->call_id);
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_NE(header_line(reqs[0], "From"), header_line(reqs[1], "From"));
}

TEST(SendCheckSync, AnyFinalCodeIsReturned) {
  PhoneThread phone([&](UdpPeer& p) {
    if (auto d = p.receive(milliseconds(3000)))
      p.send_to(d->from, answer(d->data, 489, "Bad Event"));
  });
  auto r = check_sync(phone.port());
  phone.join();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->code, 489);
  EXPECT_EQ(r->reason, "Bad Event");
}

TEST(SendCheckSync, StraysAndProvisionalResponsesAreNotTheAnswer) {
  PhoneThread phone([&](UdpPeer& p) {
    auto d = p.receive(milliseconds(3000));
    if (!d) return;
    const std::string& req = d->data;
    const std::string ok = answer(req, 200, "Stray");
    const std::string branch_line = header_line(req, "Via");
    const std::string branch = branch_line.substr(branch_line.find("branch=") + 7, 7 + 16);
    // Another transaction's answer (wrong branch), then a wrong Call-ID, CSeq number and method.
    p.send_to(d->from, replace(ok, branch, "z9hG4bKsomeoneelse00"));
    p.send_to(d->from, replace(ok, header_line(req, "Call-ID"), "Call-ID: other@192.0.2.1"));
    p.send_to(d->from, replace(ok, "CSeq: 1 NOTIFY", "CSeq: 2 NOTIFY"));
    p.send_to(d->from, replace(ok, "CSeq: 1 NOTIFY", "CSeq: 1 INVITE"));
    // Not responses at all.
    p.send_to(d->from, "\r\n\r\n");
    p.send_to(d->from, req);
    p.send_to(d->from, "SIP/2.0 200 OK\r\n\r\n");
    // Ours, but provisional.
    p.send_to(d->from, answer(req, 100, "Trying"));
    p.send_to(d->from, answer(req, 183, "Session Progress"));
    p.send_to(d->from, answer(req, 200, "Final"));
  });
  auto r = check_sync(phone.port());
  phone.join();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->code, 200);
  EXPECT_EQ(r->reason, "Final");
}

TEST(SendCheckSync, RetransmitsAtT1Doubling) {
  std::vector<UdpPeer::Datagram> got;
  PhoneThread phone([&](UdpPeer& p) {
    // Drops the first two; answers the third.
    for (int i = 0; i < 3; ++i) {
      auto d = p.receive(milliseconds(3000));
      if (!d) return;
      got.push_back(*d);
    }
    p.send_to(got.back().from, answer(got.back().data, 200, "OK"));
  });
  auto r = check_sync(phone.port());
  phone.join();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->code, 200);
  ASSERT_EQ(got.size(), 3u);
  // The same request each time (same branch: one transaction), from the same port.
  EXPECT_EQ(got[1].data, got[0].data);
  EXPECT_EQ(got[2].data, got[0].data);
  EXPECT_EQ(got[1].from.sin_port, got[0].from.sin_port);
  const auto first = ms_between(got[0].at, got[1].at);
  const auto second = ms_between(got[1].at, got[2].at);
  // T1 = 500 ms, then 1 s; generous bounds for a loaded machine.
  EXPECT_GE(first, 400);
  EXPECT_LE(first, 900);
  EXPECT_GE(second, 850);
  EXPECT_LE(second, 1600);
  EXPECT_GT(second, first * 3 / 2) << first << " ms, then " << second << " ms";
}

TEST(SendCheckSync, AProvisionalResponseSlowsRetransmissionsToT2) {
  std::vector<UdpPeer::Datagram> got;
  PhoneThread phone([&](UdpPeer& p) {
    auto d = p.receive(milliseconds(3000));
    if (!d) return;
    got.push_back(*d);
    p.send_to(d->from, answer(d->data, 100, "Trying"));
    // Without the 100, retransmissions would come at 0.5 s and 1.5 s; with it, the one already
    // scheduled at 0.5 s and then none before 4.5 s.
    const auto until = d->at + milliseconds(1800);
    while (Clock::now() < until) {
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now());
      if (auto more = p.receive(std::max(left, milliseconds(1)))) got.push_back(*more);
    }
    p.send_to(d->from, answer(d->data, 200, "OK"));
  });
  auto r = check_sync(phone.port());
  phone.join();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->code, 200);
  EXPECT_EQ(got.size(), 2u);
}

TEST(SendCheckSync, AClosedPortIsUnreachable) {
  int port = 0;
  {
    UdpPeer closed;
    port = closed.port();
  }
  const auto start = Clock::now();
  auto r = check_sync(port, milliseconds(5000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Unreachable) << r.error().message();
  EXPECT_NE(r.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.error().message();
  EXPECT_LT(ms_between(start, Clock::now()), 1000);
}

TEST(SendCheckSync, SilenceTimesOutAtTheBound) {
  int received = 0;
  const auto start = Clock::now();
  PhoneThread phone([&](UdpPeer& p) {
    while (Clock::now() < start + milliseconds(1800))
      if (p.receive(milliseconds(100))) ++received;
  });
  auto r = check_sync(phone.port(), milliseconds(1500));
  const auto took = ms_between(start, Clock::now());
  phone.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Timeout) << r.error().message();
  EXPECT_NE(r.error().message().find("no final answer"), std::string::npos) << r.error().message();
  EXPECT_GE(took, 1450);
  EXPECT_LE(took, 2300);
  // At 0, 0.5 s and (maybe, at the bound) 1.5 s.
  EXPECT_GE(received, 2);
  EXPECT_LE(received, 3);
}

TEST(SendCheckSync, OnlyAProvisionalAnswerIsATimeoutThatSaysSo) {
  PhoneThread phone([&](UdpPeer& p) {
    while (auto d = p.receive(milliseconds(900)))
      p.send_to(d->from, answer(d->data, 180, "Ringing"));
  });
  auto r = check_sync(phone.port(), milliseconds(800));
  phone.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Timeout);
  EXPECT_NE(r.error().message().find("provisional"), std::string::npos) << r.error().message();
}

TEST(SendCheckSync, CancelledEndsTheWait) {
  std::atomic<bool> cancel{false};
  int received = 0;
  PhoneThread phone([&](UdpPeer& p) {
    while (p.receive(milliseconds(1000)))
      ++received;
  });
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(300));
    cancel = true;
  });
  const auto start = Clock::now();
  auto r = check_sync(phone.port(), milliseconds(10000), [&] { return cancel.load(); });
  const auto took = ms_between(start, Clock::now());
  canceller.join();
  phone.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Cancelled) << r.error().message();
  EXPECT_GE(took, 250);
  EXPECT_LT(took, 900);
  EXPECT_EQ(received, 1);
}

TEST(SendCheckSync, CancelledBeforehandSendsNothing) {
  int received = 0;
  PhoneThread phone([&](UdpPeer& p) {
    while (p.receive(milliseconds(500)))
      ++received;
  });
  auto r = check_sync(phone.port(), milliseconds(5000), [] { return true; });
  phone.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Cancelled);
  EXPECT_EQ(received, 0);
}

TEST(SendCheckSync, BadAddressesAreInvalidInput) {
  for (const auto& [ip, port] : std::vector<std::pair<std::string, int>>{{"phone.example", 5060},
                                                                         {"10.99.1", 5060},
                                                                         {"::1", 5060},
                                                                         {"", 5060},
                                                                         {"127.0.0.1", 0},
                                                                         {"127.0.0.1", -1},
                                                                         {"127.0.0.1", 65536}}) {
    auto r = send_check_sync(ip, port, "1001", milliseconds(1000), {});
    ASSERT_FALSE(r) << ip << ":" << port;
    EXPECT_EQ(r.error().code(), Errc::InvalidInput) << ip << ":" << port;
  }
}

}  // namespace
}  // namespace labctl::cisco_phone
