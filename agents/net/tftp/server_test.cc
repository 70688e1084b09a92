// The server in-process on 127.0.0.1, port 0, against labctl's client and raw UDP sockets.
#include "agents/net/tftp/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "agents/net/tftp/client.h"

namespace labctl::tftp {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using std::chrono::milliseconds;

// Content where every 512-byte block carries its own index, so a block sent in the wrong place
// (a rollover bug) cannot go unnoticed.
std::string pattern(std::size_t n, std::uint32_t seed = 1) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t block = i / 512;
    const std::size_t off = i % 512;
    s[i] = off < 4 ? static_cast<char>((block >> (8 * off)) & 0xff)
                   : static_cast<char>((i * 2654435761u + seed) >> 13);
  }
  return s;
}

void write_file(const fs::path& p, const std::string& content) {
  std::ofstream(p, std::ios::binary) << content;
}

std::vector<std::uint8_t> v(const std::string& s) {
  return {s.begin(), s.end()};
}

// A raw UDP socket on loopback, for packets no well-behaved client would send.
class Udp {
 public:
  explicit Udp(const char* addr = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, addr, &a.sin_addr);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~Udp() { ::close(fd_); }
  void send(std::uint16_t port, const std::vector<std::uint8_t>& bytes) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(
        ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
        static_cast<ssize_t>(bytes.size()));
  }
  void send(std::uint16_t port, const std::string& bytes) { send(port, v(bytes)); }
  struct Got {
    std::vector<std::uint8_t> bytes;
    std::uint16_t port = 0;
    std::uint16_t op() const { return bytes.size() >= 2 ? (bytes[0] << 8 | bytes[1]) : 0; }
    std::uint16_t block() const { return bytes.size() >= 4 ? (bytes[2] << 8 | bytes[3]) : 0; }
    std::size_t payload() const { return bytes.size() >= 4 ? bytes.size() - 4 : 0; }
  };
  std::optional<Got> recv(int timeout_ms = 3000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
    Got g;
    g.bytes.resize(70000);
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t r = ::recvfrom(fd_, g.bytes.data(), g.bytes.size(), 0,
                                 reinterpret_cast<sockaddr*>(&from), &len);
    if (r < 0) return std::nullopt;
    g.bytes.resize(static_cast<std::size_t>(r));
    g.port = ntohs(from.sin_port);
    return g;
  }

 private:
  int fd_ = -1;
};

std::string rrq(const std::string& name, std::vector<std::pair<std::string, std::string>> opts = {},
                const std::string& mode = "octet") {
  std::string p = "\0\1"s + name + '\0' + mode + '\0';
  for (const auto& [k, val] : opts)
    p += k + '\0' + val + '\0';
  return p;
}

std::string wrq(const std::string& name,
                std::vector<std::pair<std::string, std::string>> opts = {}) {
  std::string p = rrq(name, std::move(opts));
  p[1] = 2;
  return p;
}

std::string ack(std::uint16_t block) {
  return "\0\4"s + static_cast<char>(block >> 8) + static_cast<char>(block & 0xff);
}

std::string data(std::uint16_t block, const std::string& payload) {
  return "\0\3"s + static_cast<char>(block >> 8) + static_cast<char>(block & 0xff) + payload;
}

class TftpServer : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/labctl-tftp-server-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ / "root";
    fs::create_directories(root_ / "upload");
    fs::create_directories(base_ / "outside");
    write_file(base_ / "outside" / "secret", "SECRET");
    fs::create_symlink("../outside/secret", root_ / "link_out");
    for (std::size_t n : {0, 511, 512, 513, 2000, 6154})
      write_file(root_ / ("f" + std::to_string(n)), pattern(n, static_cast<std::uint32_t>(n)));
    big_ = pattern(3 * 1024 * 1024 + 777, 7);
    write_file(root_ / "big.bin", big_);
    write_file(root_ / "jar11sip.9-4-2ES9.sbn", "jar");
    write_file(root_ / "text.txt", "line one\nline two\r\nbare\rcr\n");
    write_file(root_ / "throw.txt", "static");
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  ServerConfig config() {
    ServerConfig c;
    c.root = root_;
    c.bind_address = "127.0.0.1";
    c.port = 0;
    c.threads = 2;
    c.log_path = base_ / "events.jsonl";
    c.progress_bytes = 1 << 20;
    c.on_event = [this](const Event& e) {
      std::lock_guard lock(mu_);
      events_.push_back(e);
    };
    return c;
  }

  void start(ServerConfig c) {
    auto s = Server::start(std::move(c));
    ASSERT_TRUE(s) << s.error().message();
    server_ = std::move(*s);
  }
  void start() { start(config()); }
  // The adaptive retransmission timeout held at 1 s, so that packets a test sees within a few
  // hundred milliseconds can only be answers to what the test sent.
  ServerConfig slow_timer_config() {
    ServerConfig c = config();
    c.min_retransmit_timeout = std::chrono::milliseconds(1000);
    return c;
  }

  ClientOptions client(const std::string& name) {
    ClientOptions o;
    o.host = "127.0.0.1";
    o.port = server_->port();
    o.name = name;
    o.timeout = milliseconds(500);
    return o;
  }

  std::string get(const std::string& name, ClientResult* r = nullptr) {
    auto s = get_string(client(name), r);
    EXPECT_TRUE(s) << name << ": " << s.error().message();
    return s ? *s : "";
  }

  std::string file(const std::string& name) {
    std::ifstream in(root_ / name, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  std::vector<Event> events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::vector<Event> events_of(EventKind k) {
    std::vector<Event> out;
    for (auto& e : events())
      if (e.kind == k) out.push_back(e);
    return out;
  }
  // Waits (bounded) until the observer saw `n` events of kind `k`.
  bool wait_events(EventKind k, std::size_t n, int timeout_ms = 5000) {
    for (int waited = 0; waited < timeout_ms; waited += 10) {
      if (events_of(k).size() >= n) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }

  fs::path base_, root_;
  std::string big_;
  std::unique_ptr<Server> server_;
  std::mutex mu_;
  std::vector<Event> events_;
};

TEST_F(TftpServer, SmallFilesByteIdenticalWithAndWithoutOptions) {
  start();
  for (int n : {0, 511, 512, 513}) {
    const std::string name = "f" + std::to_string(n);
    ClientResult r;
    EXPECT_EQ(get(name, &r), file(name)) << name;
    if (n == 0) {
      // tsize 0 is never offered (curl refuses it); with no other option there is no OACK.
      EXPECT_FALSE(r.oack);
      EXPECT_FALSE(r.tsize.has_value());
    } else {
      EXPECT_TRUE(r.oack);
      EXPECT_EQ(r.tsize, static_cast<std::uint64_t>(n));
    }
    ClientOptions plain = client(name);
    plain.tsize = false;  // no options at all: no OACK, RFC 1350 lock-step
    ClientResult pr;
    auto s = get_string(plain, &pr);
    ASSERT_TRUE(s) << s.error().message();
    EXPECT_EQ(*s, file(name));
    EXPECT_FALSE(pr.oack);
    EXPECT_EQ(pr.bytes, static_cast<std::uint64_t>(n));
  }
}

TEST_F(TftpServer, MultiMiBWithBlksizeAndWindowsize) {
  start();
  struct Case {
    std::uint16_t blksize, window;
  };
  for (auto c :
       {Case{512, 1}, Case{1468, 1}, Case{512, 16}, Case{1468, 16}, Case{65464, 4}, Case{8, 64}}) {
    ClientOptions o = client("big.bin");
    o.blksize = c.blksize;
    o.windowsize = c.window;
    if (c.blksize == 8) o.name = "f6154";  // tiny blocks: a small file keeps it quick
    ClientResult r;
    auto s = get_string(o, &r);
    ASSERT_TRUE(s) << s.error().message();
    EXPECT_TRUE(*s == file(o.name)) << "blksize " << c.blksize << " window " << c.window;
    EXPECT_EQ(r.blksize, c.blksize);
    EXPECT_EQ(r.windowsize, c.window);
  }
}

TEST_F(TftpServer, NetasciiRoundTrip) {
  start();
  ClientOptions o = client("text.txt");
  o.mode = Mode::Netascii;
  auto s = get_string(o);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(*s, file("text.txt"));
  // On the wire: LF -> CR LF, CR -> CR NUL.
  Udp u;
  u.send(server_->port(), rrq("text.txt", {}, "netascii"));
  auto d = u.recv();
  ASSERT_TRUE(d);
  EXPECT_EQ(std::string(d->bytes.begin() + 4, d->bytes.end()),
            "line one\r\nline two\r\0\r\nbare\r\0cr\r\n"s);
  u.send(d->port, ack(1));
}

TEST_F(TftpServer, BlockNumbersRollOverPast65535) {
  start();
  // 65536 full blocks and a short one at blksize 512: block numbers go 65535 -> 0 -> 1.
  const std::string content = pattern(65536ull * 512 + 1000, 3);
  write_file(root_ / "huge.bin", content);
  ClientOptions o = client("huge.bin");
  o.windowsize = 64;
  ClientResult r;
  auto s = get_string(o, &r);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(r.blksize, 512);
  EXPECT_EQ(s->size(), content.size());
  EXPECT_TRUE(*s == content);
  ASSERT_TRUE(wait_events(EventKind::Complete, 1));
  EXPECT_EQ(events_of(EventKind::Complete)[0].bytes, content.size());
  fs::remove(root_ / "huge.bin");
}

TEST_F(TftpServer, DuplicateAckNeverCausesDuplicateData) {
  start(slow_timer_config());
  Udp c;
  c.send(server_->port(), rrq("f2000"));  // 4 blocks: 512, 512, 512, 464
  auto d1 = c.recv();
  ASSERT_TRUE(d1);
  ASSERT_EQ(d1->op(), 3);
  ASSERT_EQ(d1->block(), 1);
  const std::uint16_t tid = d1->port;
  c.send(tid, ack(1));
  auto d2 = c.recv();
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->block(), 2);
  // Sorcerer's Apprentice: a late duplicate ACK 1 must not make the server send block 2 again.
  c.send(tid, ack(1));
  c.send(tid, ack(1));
  EXPECT_FALSE(c.recv(400)) << "duplicate ACK answered with DATA";
  c.send(tid, ack(2));
  auto d3 = c.recv();
  ASSERT_TRUE(d3);
  EXPECT_EQ(d3->block(), 3);
  c.send(tid, ack(3));
  auto d4 = c.recv();
  ASSERT_TRUE(d4);
  EXPECT_EQ(d4->block(), 4);
  EXPECT_EQ(d4->payload(), 464u);
  c.send(tid, ack(4));
  EXPECT_FALSE(c.recv(300));
  ASSERT_TRUE(wait_events(EventKind::Complete, 1));
  EXPECT_EQ(events_of(EventKind::Complete)[0].retransmits, 0u);
}

// Once the OACK's round trip has been measured, a lost block is sent again after a few round
// trips, not after the configured 1 s (nor the client's "timeout"): on a lossy link that is the
// difference between seconds and minutes.
TEST_F(TftpServer, RetransmissionTimeoutAdaptsToTheRoundTrip) {
  start();  // retransmit_timeout 1 s, adaptive floor 20 ms
  Udp c;
  c.send(server_->port(), rrq("f2000", {{"blksize", "512"}, {"timeout", "5"}}));
  auto o = c.recv();
  ASSERT_TRUE(o);
  ASSERT_EQ(o->op(), 6);
  const std::uint16_t tid = o->port;
  c.send(tid, ack(0));
  auto d1 = c.recv();
  ASSERT_TRUE(d1);
  ASSERT_EQ(d1->block(), 1);
  const auto sent = std::chrono::steady_clock::now();
  auto again = c.recv(3000);  // block 1 not acknowledged: it comes again
  ASSERT_TRUE(again);
  EXPECT_EQ(again->block(), 1);
  const auto waited = std::chrono::steady_clock::now() - sent;
  EXPECT_LT(waited, std::chrono::milliseconds(500)) << "the timeout did not adapt";
  c.send(tid, ack(1));
  auto d2 = c.recv();
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->block(), 2);
}

// The Sorcerer's Apprentice with a window: a copy of an ACK restarts the window once, the client
// answers both copies of the window, and the second of those ACKs must not restart the next window
// (or every window would go out twice from then on).
TEST_F(TftpServer, RepeatedAckRestartsAWindowOnceAndNeverCascades) {
  start(slow_timer_config());
  Udp c;
  c.send(server_->port(), rrq("f6154", {{"windowsize", "2"}}));  // 13 blocks
  auto o = c.recv();
  ASSERT_TRUE(o);
  ASSERT_EQ(o->op(), 6);
  const std::uint16_t tid = o->port;
  c.send(tid, ack(0));
  auto expect_blocks = [&](std::vector<std::uint16_t> want) {
    for (auto b : want) {
      auto d = c.recv();
      ASSERT_TRUE(d) << "block " << b;
      EXPECT_EQ(d->block(), b);
    }
  };
  expect_blocks({1, 2});
  c.send(tid, ack(2));
  expect_blocks({3, 4});
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  c.send(tid, ack(2));  // a copy, late enough to look like a restart request: window again
  expect_blocks({3, 4});
  c.send(tid, ack(4));  // the client's ACK of the first copy of the window
  expect_blocks({5, 6});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  c.send(tid, ack(4));  // its ACK of the second copy: expected, ignored
  EXPECT_FALSE(c.recv(400)) << "an echo of a resent window restarted the next one";
  c.send(tid, ack(6));
  expect_blocks({7, 8});
}

TEST_F(TftpServer, WindowRestartsAfterTheAcknowledgedBlock) {
  start(slow_timer_config());
  Udp c;
  c.send(server_->port(), rrq("f6154", {{"windowsize", "4"}}));  // 13 blocks
  auto o = c.recv();
  ASSERT_TRUE(o);
  ASSERT_EQ(o->op(), 6);
  const std::uint16_t tid = o->port;
  c.send(tid, ack(0));
  auto expect_blocks = [&](std::vector<std::uint16_t> want) {
    for (auto b : want) {
      auto d = c.recv();
      ASSERT_TRUE(d) << "block " << b;
      EXPECT_EQ(d->block(), b);
    }
  };
  expect_blocks({1, 2, 3, 4});
  c.send(tid, ack(4));
  expect_blocks({5, 6, 7, 8});
  // Block 5 "lost": the client acknowledges 4 again, and the window starts over at 5 (RFC 7440
  // section 4) -- once: a second copy of that ACK is ignored. The repeat comes well after the
  // window left: one sooner than half a round trip is taken for a network copy of the first ACK,
  // and a loaded machine (CI, sanitizers) can measure round trips of tens of milliseconds.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  c.send(tid, ack(4));
  expect_blocks({5, 6, 7, 8});
  c.send(tid, ack(4));
  EXPECT_FALSE(c.recv(400)) << "a second repeated ACK restarted the window again";
  c.send(tid, ack(6));  // 7 and 8 "lost": the next window starts at 7 (RFC 7440)
  expect_blocks({7, 8, 9, 10});
  c.send(tid, ack(10));
  expect_blocks({11, 12, 13});
  c.send(tid, ack(13));
  EXPECT_FALSE(c.recv(300));
  ASSERT_TRUE(wait_events(EventKind::Complete, 1));
}

TEST_F(TftpServer, UnknownTidGetsError5AndTransferCompletes) {
  start();
  Udp a, stranger;
  a.send(server_->port(), rrq("f513"));
  auto d1 = a.recv();
  ASSERT_TRUE(d1);
  const std::uint16_t tid = d1->port;
  stranger.send(tid, ack(1));
  auto err = stranger.recv();
  ASSERT_TRUE(err);
  EXPECT_EQ(err->op(), 5);
  EXPECT_EQ(err->block(), 5);  // the error code sits where a block number would
  std::string got(d1->bytes.begin() + 4, d1->bytes.end());
  a.send(tid, ack(1));
  auto d2 = a.recv();
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->block(), 2);
  got.append(d2->bytes.begin() + 4, d2->bytes.end());
  a.send(tid, ack(2));
  EXPECT_EQ(got, file("f513"));
  ASSERT_TRUE(wait_events(EventKind::Complete, 1));
  EXPECT_GE(server_->stats().bad_packets, 1u);
  bool saw = false;
  for (const auto& e : events_of(EventKind::BadPacket))
    saw = saw || e.reason.find("unknown TID") != std::string::npos;
  EXPECT_TRUE(saw);
}

TEST_F(TftpServer, VirtualFilesPerClientAddress) {
  ServerConfig c = config();
  c.virtual_files.push_back([](const sdk::TftpRequestInfo& r) -> std::optional<std::string> {
    if (r.name == "throw.txt") throw std::runtime_error("provider bug");
    if (r.name != "SEP001122334455.cnf.xml") return std::nullopt;
    return "<device ip=\"" + std::to_string(r.client_ip >> 24) + "." +
           std::to_string((r.client_ip >> 16) & 255) + "." +
           std::to_string((r.client_ip >> 8) & 255) + "." + std::to_string(r.client_ip & 255) +
           "\"/>";
  });
  start(std::move(c));
  auto one = get("SEP001122334455.cnf.xml");
  ClientOptions o2 = client("/SEP001122334455.cnf.xml");
  o2.local_address = "127.0.0.2";
  auto two = get_string(o2);
  ASSERT_TRUE(two) << two.error().message();
  EXPECT_EQ(one, "<device ip=\"127.0.0.1\"/>");
  EXPECT_EQ(*two, "<device ip=\"127.0.0.2\"/>");
  EXPECT_EQ(get("throw.txt"), "static");  // a throwing provider falls back to the tree
  EXPECT_EQ(get("f513"), file("f513"));
  ASSERT_TRUE(wait_events(EventKind::Complete, 4));
  int virtual_count = 0;
  for (const auto& e : events_of(EventKind::Complete))
    virtual_count += e.virtual_file;
  EXPECT_EQ(virtual_count, 2);
}

TEST_F(TftpServer, WriteRequestsRefusedByDefault) {
  start();
  Udp c;
  c.send(server_->port(), wrq("new.bin"));
  auto e = c.recv();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->op(), 5);
  EXPECT_EQ(e->block(), 2);
  ASSERT_TRUE(wait_events(EventKind::Refused, 1));
  EXPECT_NE(events_of(EventKind::Refused)[0].reason.find("no write area"), std::string::npos);
  EXPECT_FALSE(fs::exists(root_ / "new.bin"));
}

TEST_F(TftpServer, WriteAreaWithLimitAndNoOverwrite) {
  ServerConfig c = config();
  c.write_area = WriteArea{"upload", 3000, false};
  start(std::move(c));
  auto put = [&](const std::string& name, const std::string& content,
                 std::vector<std::pair<std::string, std::string>> opts = {}) -> int {
    Udp u;
    u.send(server_->port(), wrq(name, opts));
    auto first = u.recv();
    if (!first) return -1;
    if (first->op() == 5) return 100 + first->block();
    const std::uint16_t tid = first->port;
    for (std::size_t b = 0;; ++b) {
      const std::string chunk = content.substr(std::min(content.size(), b * 512), 512);
      u.send(tid, data(static_cast<std::uint16_t>(b + 1), chunk));
      auto r = u.recv();
      if (!r) return -2;
      if (r->op() == 5) return 100 + r->block();
      if (r->op() != 4 || r->block() != b + 1) return -3;
      if (chunk.size() < 512) return 0;
    }
  };
  const std::string content = pattern(1500, 9);
  EXPECT_EQ(put("up.bin", content), 0);
  std::ifstream in(root_ / "upload" / "up.bin", std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), content);
  EXPECT_EQ(put("up.bin", "again"), 106);                          // exists
  EXPECT_EQ(put("toobig.bin", pattern(4000, 1)), 103);             // cut off at the limit
  EXPECT_EQ(put("announced.bin", "x", {{"tsize", "5000"}}), 103);  // refused up front
  EXPECT_EQ(put("../escape.bin", "x"), 102);
  EXPECT_FALSE(fs::exists(root_ / "upload" / "toobig.bin"));
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(root_ / "upload")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);  // no temporary left behind
}

TEST_F(TftpServer, MalformedPacketsNeverCrashOrStall) {
  start();
  Udp m;
  const std::uint16_t port = server_->port();
  struct Probe {
    std::string bytes;
    int reply_code;  // -1: no reply expected
  };
  const std::vector<Probe> probes = {
      {"", -1},
      {"\0"s, -1},
      {"\0\1"s, 4},                        // RRQ, no filename
      {"\0\1abc"s, 4},                     // filename not terminated
      {"\0\1f\0"s, 4},                     // no mode
      {"\0\1f\0bogus\0"s, 4},              // bad mode
      {"\0\x09whatever"s, 4},              // bad opcode
      {"\xff\xff"s, 4},                    // bad opcode
      {"\0\1f513\0octet\0blksize\0"s, 4},  // option without value
      {"\0\4\0\1"s, 5},                    // ACK for an unknown transfer
      {"\0\3\0\1hello"s, 5},               // DATA for an unknown transfer
      {"\0\6blksize\0"
       "512\0"s,
       5},                      // OACK to a server
      {"\0\5\0\0oops\0"s, -1},  // ERROR: never answered
      {std::string(65000, '\xab'), 4},
  };
  for (const auto& p : probes) {
    m.send(port, p.bytes);
    if (p.reply_code >= 0) {
      auto r = m.recv();
      ASSERT_TRUE(r) << "no reply to probe of " << p.bytes.size() << " bytes";
      EXPECT_EQ(r->op(), 5);
      EXPECT_EQ(r->block(), p.reply_code);
    }
  }
  // A huge blksize is lowered, not refused.
  m.send(port, rrq("f513", {{"blksize", "99999999"}}));
  auto oack = m.recv();
  ASSERT_TRUE(oack);
  ASSERT_EQ(oack->op(), 6);
  const std::string body(oack->bytes.begin() + 2, oack->bytes.end());
  EXPECT_EQ(body,
            "blksize\0"
            "65464\0"s);
  m.send(oack->port, "\0\5\0\0bye\0"s);  // end it politely
  EXPECT_FALSE(m.recv(200));
  // The server still serves.
  EXPECT_EQ(get("big.bin"), big_);
  EXPECT_GE(server_->stats().bad_packets, 10u);
}

TEST_F(TftpServer, HostileNamesRefusedOverTheWire) {
  start();
  for (const std::string name : {"../outside/secret", "link_out", "..\\..\\etc\\passwd",
                                 "%2e%2e/outside/secret", "/etc/passwd", "sub/../../x"}) {
    auto r = get_string(client(name));
    ASSERT_FALSE(r) << name;
    EXPECT_TRUE(r.error().code() == Errc::NotFound || r.error().code() == Errc::PreconditionFailed)
        << r.error().message();
    EXPECT_EQ(r.error().message().find("SECRET"), std::string::npos);
  }
  EXPECT_EQ(get("f512"), file("f512"));
  ASSERT_TRUE(wait_events(EventKind::Refused, 6));
  for (const auto& e : events_of(EventKind::Refused)) {
    EXPECT_FALSE(e.reason.empty());
    ASSERT_TRUE(e.error_code);
  }
}

TEST_F(TftpServer, CaseFallbackReported) {
  start();
  EXPECT_EQ(get("Jar11sip.9-4-2ES9.sbn"), "jar");
  ASSERT_TRUE(wait_events(EventKind::Complete, 1));
  const auto e = events_of(EventKind::Complete)[0];
  EXPECT_TRUE(e.case_fallback);
  EXPECT_EQ(e.file, "jar11sip.9-4-2ES9.sbn");
  EXPECT_EQ(e.name, "Jar11sip.9-4-2ES9.sbn");
}

TEST_F(TftpServer, EventsAndJsonLog) {
  start();
  ClientOptions o = client("big.bin");
  o.blksize = 1468;
  o.windowsize = 8;
  ASSERT_TRUE(get_string(o));
  (void)get_string(client("missing.bin"));
  ASSERT_TRUE(wait_events(EventKind::Refused, 1));
  ASSERT_TRUE(wait_events(EventKind::Complete, 1));
  server_->stop();  // flushes and closes the log

  const auto reqs = events_of(EventKind::Request);
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].client, "127.0.0.1");
  EXPECT_EQ(reqs[0].name, "big.bin");
  EXPECT_EQ(reqs[0].op, "RRQ");
  const auto oacks = events_of(EventKind::Oack);
  ASSERT_EQ(oacks.size(), 1u);
  EXPECT_EQ(oacks[0].blksize, 1468);
  EXPECT_EQ(oacks[0].windowsize, 8);
  EXPECT_GE(events_of(EventKind::Progress).size(), 2u);  // 3 MiB, one per MiB acknowledged
  const auto done = events_of(EventKind::Complete)[0];
  EXPECT_EQ(done.bytes, big_.size());
  EXPECT_EQ(done.size, big_.size());
  EXPECT_EQ(done.blksize, 1468);
  EXPECT_EQ(done.windowsize, 8);
  EXPECT_GE(done.duration_ms, 0);
  EXPECT_EQ(done.transfer, oacks[0].transfer);
  const auto refused = events_of(EventKind::Refused)[0];
  EXPECT_EQ(refused.error_code, 1);
  EXPECT_NE(refused.reason.find("no such file"), std::string::npos);

  std::ifstream log(base_ / "events.jsonl");
  std::string line;
  std::size_t lines = 0;
  std::set<std::string> kinds;
  while (std::getline(log, line)) {
    ++lines;
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    ASSERT_TRUE(j.is_object());
    ASSERT_TRUE(j.contains("event") && j.contains("time") && j.contains("source")) << line;
    kinds.insert(j["event"].get<std::string>());
    if (j["event"] == "complete") {
      EXPECT_EQ(j["bytes"].get<std::uint64_t>(), big_.size());
      EXPECT_EQ(j["blksize"], 1468);
      EXPECT_EQ(j["windowsize"], 8);
      EXPECT_EQ(j["client"], "127.0.0.1");
      EXPECT_EQ(j["name"], "big.bin");
      EXPECT_TRUE(j.contains("duration_ms"));
    }
  }
  EXPECT_EQ(lines, events().size());
  EXPECT_EQ(kinds, (std::set<std::string>{"request", "oack", "progress", "complete", "refused"}));
}

TEST_F(TftpServer, RetransmitsWithBackoffThenGivesUp) {
  ServerConfig c = config();
  c.retransmit_timeout = milliseconds(100);
  c.max_retries = 2;
  start(std::move(c));
  Udp u;
  u.send(server_->port(), rrq("f513"));
  const auto t0 = std::chrono::steady_clock::now();
  int copies = 0;
  while (auto d = u.recv(1500)) {
    EXPECT_EQ(d->block(), 1);
    ++copies;
  }
  EXPECT_EQ(copies, 3);  // the first send and two retransmissions, at +100 and +300 ms
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(300));
  ASSERT_TRUE(wait_events(EventKind::Failed, 1));
  const auto f = events_of(EventKind::Failed)[0];
  EXPECT_NE(f.reason.find("timeout"), std::string::npos);
  EXPECT_EQ(f.retransmits, 2u);
}

TEST_F(TftpServer, ClientErrorEndsTransfer) {
  start();
  Udp u;
  u.send(server_->port(), rrq("f2000"));
  auto d = u.recv();
  ASSERT_TRUE(d);
  u.send(d->port, "\0\5\0\0user abort\0"s);
  ASSERT_TRUE(wait_events(EventKind::Failed, 1));
  EXPECT_NE(events_of(EventKind::Failed)[0].reason.find("user abort"), std::string::npos);
  EXPECT_EQ(server_->stats().active, 0u);
}

TEST_F(TftpServer, RepeatedRequestFromSamePortIsOneTransfer) {
  start();
  Udp u;
  u.send(server_->port(), rrq("f513"));
  u.send(server_->port(), rrq("f513"));
  auto d1 = u.recv();
  ASSERT_TRUE(d1);
  EXPECT_FALSE(u.recv(300));  // no second transfer answering from another TID
  u.send(d1->port, ack(1));
  auto d2 = u.recv();
  ASSERT_TRUE(d2);
  u.send(d1->port, ack(2));
  ASSERT_TRUE(wait_events(EventKind::Complete, 1));
}

// A worker's transfers share one socket, the server's TID for all of them; the client's address
// and port tell them apart.
TEST_F(TftpServer, TransfersShareTheWorkersTidAndAreToldApartByTheClient) {
  ServerConfig c = config();
  c.threads = 1;
  start(std::move(c));
  Udp a, b;
  a.send(server_->port(), rrq("f513"));
  b.send(server_->port(), rrq("f2000"));
  auto da = a.recv();
  auto db = b.recv();
  ASSERT_TRUE(da && db);
  EXPECT_EQ(da->port, db->port);
  EXPECT_NE(da->port, server_->port());
  std::string got_a(da->bytes.begin() + 4, da->bytes.end());
  std::string got_b(db->bytes.begin() + 4, db->bytes.end());
  for (std::uint16_t block = 1; block < 4; ++block) {  // f513: 2 blocks; f2000: 4
    if (block < 2) {
      a.send(da->port, ack(block));
      auto d = a.recv();
      ASSERT_TRUE(d);
      EXPECT_EQ(d->block(), block + 1);
      got_a.append(d->bytes.begin() + 4, d->bytes.end());
    } else if (block == 2) {
      a.send(da->port, ack(2));
    }
    b.send(db->port, ack(block));
    auto d = b.recv();
    ASSERT_TRUE(d);
    EXPECT_EQ(d->block(), block + 1);
    got_b.append(d->bytes.begin() + 4, d->bytes.end());
  }
  b.send(db->port, ack(4));
  EXPECT_EQ(got_a, file("f513"));
  EXPECT_EQ(got_b, file("f2000"));
  ASSERT_TRUE(wait_events(EventKind::Complete, 2));
  EXPECT_EQ(server_->stats().failed, 0u);
}

// A client's address and port are its TID: a new request from them, for another file, means the
// client gave the running transfer up (a phone or a PXE ROM that rebooted reuses its port). That
// transfer ends without an ERROR (it would reach the new one) and sends nothing more.
TEST_F(TftpServer, ANewRequestFromTheSamePortSupersedesTheTransfer) {
  ServerConfig c = config();
  c.threads = 1;
  start(std::move(c));
  Udp u;
  u.send(server_->port(), rrq("f2000"));
  auto old = u.recv();
  ASSERT_TRUE(old);
  EXPECT_EQ(std::string(old->bytes.begin() + 4, old->bytes.end()), file("f2000").substr(0, 512));
  u.send(server_->port(), rrq("f513"));
  auto d1 = u.recv();
  ASSERT_TRUE(d1);
  EXPECT_EQ(d1->op(), 3);
  EXPECT_EQ(d1->block(), 1);
  EXPECT_EQ(std::string(d1->bytes.begin() + 4, d1->bytes.end()), file("f513").substr(0, 512));
  ASSERT_TRUE(wait_events(EventKind::Failed, 1));
  const auto f = events_of(EventKind::Failed)[0];
  EXPECT_EQ(f.name, "f2000");
  EXPECT_NE(f.reason.find("superseded"), std::string::npos) << f.reason;
  EXPECT_FALSE(f.error_code);
  u.send(d1->port, ack(1));
  auto d2 = u.recv();
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->block(), 2);
  EXPECT_EQ(d2->payload(), 1u);
  u.send(d1->port, ack(2));
  ASSERT_TRUE(wait_events(EventKind::Complete, 1));
  EXPECT_EQ(events_of(EventKind::Complete)[0].name, "f513");
  EXPECT_FALSE(u.recv(1300));  // no retransmission of the old transfer's block 1 (timeout 1 s)
  EXPECT_EQ(server_->stats().active, 0u);
}

TEST_F(TftpServer, ConcurrentClients) {
  start();
  constexpr int kClients = 16;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      ClientOptions o = client("big.bin");
      o.blksize = i % 2 ? 1468 : 512;
      o.windowsize = i % 3 ? 1 : 8;
      auto s = get_string(o);
      if (s && *s == big_) ++ok;
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok.load(), kClients);
  // A client is done once it has sent its last ACK; the server counts the transfer complete when
  // that ACK arrives, which may be just after the client's thread returns.
  ASSERT_TRUE(wait_events(EventKind::Complete, kClients));
  EXPECT_EQ(server_->stats().completed, static_cast<std::uint64_t>(kClients));
  EXPECT_EQ(server_->stats().failed, 0u);
}

TEST_F(TftpServer, StopEndsTransfersCleanly) {
  start();
  Udp u;
  u.send(server_->port(), rrq("f2000"));
  auto d = u.recv();
  ASSERT_TRUE(d);
  server_->stop();
  auto bye = u.recv();
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->op(), 5);
  ASSERT_EQ(events_of(EventKind::Failed).size(), 1u);
  EXPECT_EQ(events_of(EventKind::Failed)[0].reason, "server stopped");
  server_->stop();  // idempotent
}

TEST_F(TftpServer, Ipv6Loopback) {
  ServerConfig c = config();
  c.bind_address = "::1";
  auto s = Server::start(std::move(c));
  if (!s) GTEST_SKIP() << "no IPv6 loopback: " << s.error().message();
  server_ = std::move(*s);
  ClientOptions o = client("f513");
  o.host = "::1";
  auto r = get_string(o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, file("f513"));
}

TEST_F(TftpServer, BadConfigurationRefused) {
  ServerConfig c = config();
  c.root = base_ / "nope";
  EXPECT_FALSE(Server::start(c));
  c = config();
  c.bind_address = "not-an-address";
  EXPECT_FALSE(Server::start(c));
  c = config();
  c.threads = 0;
  EXPECT_FALSE(Server::start(c));
  c = config();
  c.write_area = WriteArea{"../outside", 10, false};
  EXPECT_FALSE(Server::start(c));
}

TEST(TftpUrl, Parses) {
  auto u = parse_url("tftp://127.0.0.1:16969/dir/file.bin");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 16969);
  EXPECT_EQ(u->name, "dir/file.bin");
  auto d = parse_url("TFTP://host/%2e%2e");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->port, 69);
  EXPECT_EQ(d->name, "%2e%2e");
  auto v6 = parse_url("tftp://[::1]:70/x");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 70);
  for (const char* bad :
       {"http://h/x", "tftp://h", "tftp://h/", "tftp://:69/x", "tftp://h:0/x", "tftp://h:99999/x",
        "tftp://h:x/x", "tftp://::1/x", "tftp://[::1/x", "tftp://u@h/x"})
    EXPECT_FALSE(parse_url(bad)) << bad;
}

// ---- event_from_json ----------------------------------------------------------------------------

// An event with every field set to something other than its default.
Event full_event() {
  Event e;
  e.kind = EventKind::Complete;
  e.time_ms = 1'764'065'732'123;  // 2025-11-25T10:15:32.123Z
  e.transfer = 42;
  e.client = "10.99.1.10";
  e.client_port = 50123;
  e.op = "RRQ";
  e.name = "Jar11SIP.9-4-2ES9.sbn";
  e.file = "jar11sip.9-4-2ES9.sbn";
  e.mode = "octet";
  e.options = {{"blksize", "1468"}, {"tsize", "0"}, {"windowsize", "8"}};
  e.virtual_file = true;
  e.case_fallback = true;
  e.bytes = 2'000'000;
  e.size = 2'000'001;
  e.blksize = 1468;
  e.windowsize = 8;
  e.duration_ms = 812;
  e.retransmits = 3;
  e.error_code = 0;
  e.reason = "because";
  e.source = "syslog";
  e.host = "tftp-host";
  e.pid = 4242;
  return e;
}

void expect_same(const Event& a, const Event& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.time_ms, b.time_ms);
  EXPECT_EQ(a.transfer, b.transfer);
  EXPECT_EQ(a.client, b.client);
  EXPECT_EQ(a.client_port, b.client_port);
  EXPECT_EQ(a.op, b.op);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.file, b.file);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.options, b.options);
  EXPECT_EQ(a.virtual_file, b.virtual_file);
  EXPECT_EQ(a.case_fallback, b.case_fallback);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.blksize, b.blksize);
  EXPECT_EQ(a.windowsize, b.windowsize);
  EXPECT_EQ(a.duration_ms, b.duration_ms);
  EXPECT_EQ(a.retransmits, b.retransmits);
  EXPECT_EQ(a.error_code, b.error_code);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.source, b.source);
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.pid, b.pid);
}

TEST(EventJson, EveryFieldRoundTrips) {
  const Event e = full_event();
  const nlohmann::json j = event_to_json(e);
  EXPECT_EQ(j["time"], "2025-11-25T10:15:32.123Z");
  // Through the text of a log line, as readers see it.
  auto back = event_from_json(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back) << back.error().message();
  expect_same(*back, e);
  EXPECT_EQ(event_to_json(*back), j);
}

TEST(EventJson, EveryKindRoundTripsWithDefaultsLeftOut) {
  for (auto kind : {EventKind::Request, EventKind::Refused, EventKind::Oack, EventKind::Progress,
                    EventKind::Complete, EventKind::Failed, EventKind::BadPacket}) {
    Event e;
    e.kind = kind;
    e.time_ms = 1'700'000'000'000;
    e.client = "::1";
    auto back = event_from_json(event_to_json(e));
    ASSERT_TRUE(back) << event_kind_name(kind) << ": " << back.error().message();
    expect_same(*back, e);
    EXPECT_FALSE(back->size);
    EXPECT_FALSE(back->error_code);
    EXPECT_FALSE(back->pid);
    EXPECT_EQ(back->duration_ms, -1);
    EXPECT_EQ(back->source, "labctl");
  }
  // Bytes and retransmits of a progress report (retransmits only when there were some).
  Event p;
  p.kind = EventKind::Progress;
  p.time_ms = 1'700'000'000'001;
  p.bytes = 8u << 20;
  p.retransmits = 2;
  auto back = event_from_json(event_to_json(p));
  ASSERT_TRUE(back);
  expect_same(*back, p);
}

TEST(EventJson, MillisecondsSurviveTheTimeText) {
  for (std::int64_t t : {std::int64_t{0}, std::int64_t{999}, std::int64_t{1'764'065'732'000},
                         std::int64_t{1'764'065'732'001}, std::int64_t{1'764'065'732'999},
                         std::int64_t{4'102'444'799'999}}) {
    Event e;
    e.time_ms = t;
    auto back = event_from_json(event_to_json(e));
    ASSERT_TRUE(back) << t << ": " << back.error().message();
    EXPECT_EQ(back->time_ms, t) << event_to_json(e)["time"];
  }
}

TEST(EventJson, WhatIsNotAnEventIsInvalidInput) {
  const nlohmann::json good = event_to_json(full_event());
  auto with = [&](const char* key, nlohmann::json v) {
    auto j = good;
    j[key] = std::move(v);
    return j;
  };
  auto without = [&](const char* key) {
    auto j = good;
    j.erase(key);
    return j;
  };
  const std::vector<std::pair<nlohmann::json, std::string>> bad = {
      {nlohmann::json::array({good}), "object"},
      {nlohmann::json("request"), "object"},
      {nlohmann::json(), "object"},
      {nlohmann::json(42), "object"},
      {with("event", "teleport"), "unknown kind 'teleport'"},
      {with("event", "Request"), "unknown kind"},
      {with("event", ""), "unknown kind"},
      {with("event", 1), "event"},
      {without("event"), "event"},
      {without("time"), "time"},
      {with("time", 1764065732123), "time"},
      {with("time", "yesterday"), "time"},
      {with("time", ""), "time"},
      {with("time", "2025-11-25T10:15:32Z"), "time"},
      {with("time", "2025-11-25T10:15:32.123"), "time"},
      {with("time", "2025-11-25T10:15:32.123Z "), "time"},
      {with("time", "2025-11-25 10:15:32.123Z"), "time"},
      {with("time", "2025-11-25T10:15:32.123+01:00"), "time"},
      {with("bytes", "many"), "bytes"},
      {with("size", -1), "size"},
      {with("bytes", 1.5), "bytes"},
      {with("port", 70000), "port"},
      {with("blksize", -512), "blksize"},
      {with("options", nlohmann::json{{"blksize", 1468}}), "event"},
      {with("virtual", "yes"), "virtual"},
  };
  for (const auto& [j, why] : bad) {
    auto e = event_from_json(j);
    EXPECT_FALSE(e) << "accepted: " << j.dump();
    if (e) continue;
    EXPECT_EQ(e.error().code(), Errc::InvalidInput) << j.dump();
    EXPECT_NE(e.error().message().find(why), std::string::npos)
        << e.error().message() << " (want '" << why << "')";
  }
}

// A float where an integer goes is converted with a plain cast: undefined behaviour when it does
// not fit (clang's UBSan aborts: tests/fuzz/repro/phone_info-event-number-out-of-range-ub.jsonl;
// GCC's reads garbage). Its own test, so such an abort takes no other test with it.
TEST(EventJson, NumbersThatDoNotFitAreRefusedNotConverted) {
  const nlohmann::json good = event_to_json(full_event());
  for (const char* key : {"blksize", "windowsize", "port", "error_code", "transfer", "bytes",
                          "retransmits", "size", "pid", "duration_ms"}) {
    auto j = good;
    j[key] = 1.46e51;
    auto e = event_from_json(j);
    EXPECT_FALSE(e) << key << " accepted";
  }
}

TEST(EventJson, TimeMustBeTheLogsOwnFormat) {
  // What event_to_json never writes is not read as some other instant.
  const nlohmann::json good = event_to_json(full_event());
  for (const char* t :
       {"2025-11-25T10:15:32.5Z", "2025-11-25T10:15:32.-12Z", " 2025-11-25T10:15:32.123Z",
        "2025-1-25T10:15:32.123Z", "2025-13-25T10:15:32.123Z", "2025-11-25T25:15:32.123Z",
        "+2025-11-25T10:15:32.123Z"}) {
    auto j = good;
    j["time"] = t;
    auto e = event_from_json(j);
    EXPECT_FALSE(e) << t << " read as " << (e ? e->time_ms : 0);
  }
}

}  // namespace
}  // namespace labctl::tftp
