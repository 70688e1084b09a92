// The DHCP server in-process on loopback, without root: requests arrive as if from a relay at
// 127.0.0.2 (giaddr), so replies come back to a socket the test binds there. Real clients in
// network namespaces are in tests/dhcp/.
#include "agents/net/dhcp/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

namespace labctl::dhcp {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::uint32_t ip(int a, int b, int c, int d) {
  return static_cast<std::uint32_t>(a) << 24 | static_cast<std::uint32_t>(b) << 16 |
         static_cast<std::uint32_t>(c) << 8 | static_cast<std::uint32_t>(d);
}

std::uint16_t free_port() {
  // Two consecutive free ports (server port and port + 1), found by binding.
  for (int attempt = 0; attempt < 50; ++attempt) {
    int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    const std::uint16_t p = ntohs(a.sin_port);
    if (p < 65000 && p > 1024) return p;
  }
  return 40067;
}

class Relay {
 public:
  Relay(std::uint32_t addr, std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(addr);
    a.sin_port = htons(port);
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Relay() { ::close(fd_); }
  bool bound() const { return bound_; }
  void send(std::uint16_t port, std::span<const std::uint8_t> bytes) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  std::optional<Message> recv(int timeout_ms = 2000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
    std::vector<std::uint8_t> buf(2048);
    const ssize_t r = ::recv(fd_, buf.data(), buf.size(), 0);
    if (r <= 0) return std::nullopt;
    buf.resize(static_cast<std::size_t>(r));
    auto m = parse(buf);
    if (!m) return std::nullopt;
    return *m;
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
};

Message request(MessageType t, std::uint8_t mac_last, std::uint32_t giaddr) {
  Message m;
  m.op = kBootRequest;
  m.xid = 0x1000u + mac_last;
  m.giaddr = giaddr;
  m.hops = 1;
  const std::array<std::uint8_t, 6> mac{0x00, 0x0b, 0x82, 0x01, 0x02, mac_last};
  std::copy(mac.begin(), mac.end(), m.chaddr.begin());
  m.options.set(opt::kMessageType, {static_cast<std::uint8_t>(t)});
  m.options.set(opt::kParameterRequestList, {1, 3, 6, 66, 150});
  return m;
}

std::vector<std::uint8_t> bytes_of(const Message& m) {
  auto b = dhcp::build(m);
  EXPECT_TRUE(b) << (b ? "" : b.error().message());
  return b ? *b : std::vector<std::uint8_t>{};
}

class DhcpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("labctl-dhcp-server-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    port_ = free_port();
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  SegmentConfig segment() {
    SegmentConfig s;
    s.alloc.segment = "lab";
    s.alloc.network = ip(127, 0, 0, 0);
    s.alloc.prefix = 8;
    s.alloc.pool_first = ip(127, 1, 0, 10);
    s.alloc.pool_last = ip(127, 1, 0, 19);
    s.alloc.server_address = ip(127, 0, 0, 1);
    s.alloc.lease_time_ms = 3'600'000;
    s.alloc.reservations.push_back(
        {"00:0b:82:01:02:99", ip(127, 1, 0, 99), "phone1", "cisco-phone"});
    s.options.set(opt::kRouter, encode_ipv4_list(std::array{ip(127, 0, 0, 1)}));
    ClientClass phones;
    phones.name = "phones";
    phones.types = {"cisco-phone"};
    phones.options.set(opt::kCiscoTftpServers,
                       encode_ipv4_list(std::array{ip(10, 99, 0, 1), ip(10, 99, 0, 2)}));
    phones.options.set(opt::kTftpServerName, encode_text("10.99.0.1"));
    s.classes.push_back(phones);
    return s;
  }

  void start(ServerConfig c) {
    c.port = port_;
    c.lease_db = dir_ / "state.db";
    c.log_path = dir_ / "events.jsonl";
    c.arp_unicast = false;
    c.on_event = [this](const Event& e) {
      std::lock_guard lock(mu_);
      events_.push_back(e);
    };
    auto s = Server::start(std::move(c));
    ASSERT_TRUE(s) << s.error().message();
    server_ = std::move(*s);
  }
  void start() {
    ServerConfig c;
    c.segments.push_back(segment());
    start(std::move(c));
  }

  // DISCOVER, OFFER, REQUEST, ACK through the relay; the ACK.
  std::optional<Message> dora(Relay& r, std::uint8_t mac_last) {
    r.send(port_, bytes_of(request(MessageType::Discover, mac_last, ip(127, 0, 0, 2))));
    auto offer = r.recv();
    if (!offer || message_type(*offer) != MessageType::Offer) return std::nullopt;
    Message req = request(MessageType::Request, mac_last, ip(127, 0, 0, 2));
    req.options.set(opt::kRequestedIp, encode_u32(offer->yiaddr));
    req.options.set(opt::kServerId, encode_u32(ip(127, 0, 0, 1)));
    r.send(port_, bytes_of(req));
    return r.recv();
  }

  std::vector<Event> events(EventKind k) {
    std::lock_guard lock(mu_);
    std::vector<Event> out;
    for (const auto& e : events_)
      if (e.kind == k) out.push_back(e);
    return out;
  }

  fs::path dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<Server> server_;
  std::mutex mu_;
  std::vector<Event> events_;
};

TEST_F(DhcpServerTest, RelayedExchangeGetsAPoolAddressAndTheLeaseIsDurableBeforeTheAck) {
  start();
  Relay r(ip(127, 0, 0, 2), port_);
  ASSERT_TRUE(r.bound());
  auto ack = dora(r, 1);
  ASSERT_TRUE(ack);
  ASSERT_EQ(message_type(*ack), MessageType::Ack);
  EXPECT_GE(ack->yiaddr, ip(127, 1, 0, 10));
  EXPECT_LE(ack->yiaddr, ip(127, 1, 0, 19));
  EXPECT_EQ(server_id(*ack), ip(127, 0, 0, 1));
  EXPECT_EQ(lease_time(*ack), 3600u);
  // The ACK is out: the row must already be in the file, seen from another connection.
  auto db = LeaseDb::open(dir_ / "state.db");
  ASSERT_TRUE(db);
  auto rows = (*db)->load("lab");
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].ip, ack->yiaddr);
  EXPECT_EQ((*rows)[0].mac, "00:0b:82:01:02:01");
  EXPECT_EQ((*rows)[0].state, LeaseState::Bound);
  // Not a phone: no option 150 even though it asked.
  EXPECT_FALSE(ack->options.has(opt::kCiscoTftpServers));
  EXPECT_EQ(ipv4_list_option(*ack, opt::kRouter), std::vector<std::uint32_t>{ip(127, 0, 0, 1)});
}

TEST_F(DhcpServerTest, ReservedPhoneGetsItsAddressAndOption150AsBinaryAddresses) {
  start();
  Relay r(ip(127, 0, 0, 2), port_);
  auto ack = dora(r, 0x99);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->yiaddr, ip(127, 1, 0, 99));
  const auto* o150 = ack->options.find(opt::kCiscoTftpServers);
  ASSERT_NE(o150, nullptr);
  EXPECT_EQ(*o150, (std::vector<std::uint8_t>{10, 99, 0, 1, 10, 99, 0, 2}));
  EXPECT_EQ(text_option(*ack, opt::kTftpServerName), "10.99.0.1");
  // The ACK leaves before its event is emitted: wait for the event.
  std::vector<Event> acks;
  for (int i = 0; i < 200 && acks.empty(); ++i) {
    acks = events(EventKind::Ack);
    if (acks.empty()) std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].device, "phone1");
  EXPECT_EQ(acks[0].classes, std::vector<std::string>{"phones"});
  EXPECT_EQ(server_->mac_for_ip(ip(127, 1, 0, 99)), "00:0b:82:01:02:99");
}

TEST_F(DhcpServerTest, LeasesSurviveARestart) {
  std::uint32_t first = 0;
  {
    start();
    Relay r(ip(127, 0, 0, 2), port_);
    auto ack = dora(r, 7);
    ASSERT_TRUE(ack);
    first = ack->yiaddr;
    server_.reset();
  }
  start();
  Relay r(ip(127, 0, 0, 2), port_);
  // INIT-REBOOT: the client asks for its address again; a new server instance knows it.
  Message req = request(MessageType::Request, 7, ip(127, 0, 0, 2));
  req.options.set(opt::kRequestedIp, encode_u32(first));
  r.send(port_, bytes_of(req));
  auto ack = r.recv();
  ASSERT_TRUE(ack);
  EXPECT_EQ(message_type(*ack), MessageType::Ack);
  EXPECT_EQ(ack->yiaddr, first);
  // Someone else asking for it is refused.
  Message other = request(MessageType::Request, 8, ip(127, 0, 0, 2));
  other.options.set(opt::kRequestedIp, encode_u32(first));
  r.send(port_, bytes_of(other));
  auto nak = r.recv();
  ASSERT_TRUE(nak);
  EXPECT_EQ(message_type(*nak), MessageType::Nak);
  EXPECT_TRUE(nak->broadcast()) << "a relayed NAK asks the relay to broadcast";
}

TEST_F(DhcpServerTest, PoolExhaustionIsAnEventNotACrash) {
  start();
  Relay r(ip(127, 0, 0, 2), port_);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(dora(r, static_cast<std::uint8_t>(i + 1))) << i;
  r.send(port_, bytes_of(request(MessageType::Discover, 50, ip(127, 0, 0, 2))));
  EXPECT_FALSE(r.recv(300));
  bool seen = false;
  for (int i = 0; i < 50 && !seen; ++i) {
    for (const auto& e : events(EventKind::Ignored))
      seen |= e.reason == "exhausted";
    if (!seen) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(seen);
  EXPECT_TRUE(dora(r, 3)) << "a known client is still served";
}

TEST_F(DhcpServerTest, MalformedDatagramsAreCountedAndTheServerGoesOn) {
  start();
  Relay r(ip(127, 0, 0, 2), port_);
  std::vector<std::vector<std::uint8_t>> junk = {
      {}, {1}, std::vector<std::uint8_t>(239, 0), std::vector<std::uint8_t>(1500, 0xff)};
  auto bad_cookie = bytes_of(request(MessageType::Discover, 1, ip(127, 0, 0, 2)));
  bad_cookie[236] ^= 0xff;
  junk.push_back(bad_cookie);
  auto past_end = bytes_of(request(MessageType::Discover, 1, ip(127, 0, 0, 2)));
  past_end.resize(243);  // option 53's length byte promises more
  junk.push_back(past_end);
  for (const auto& j : junk)
    r.send(port_, j);
  ASSERT_TRUE(dora(r, 4));
  EXPECT_GE(server_->stats().bad_packets, 4u);
}

TEST_F(DhcpServerTest, RelayLoopsAreDropped) {
  start();
  Relay r(ip(127, 0, 0, 2), port_);
  // Our own address as the relay: answering would send the OFFER to ourselves.
  r.send(port_, bytes_of(request(MessageType::Discover, 9, ip(127, 0, 0, 1))));
  Message far = request(MessageType::Discover, 9, ip(127, 0, 0, 2));
  far.hops = 17;  // RFC 1542: at most 16
  r.send(port_, bytes_of(far));
  EXPECT_FALSE(r.recv(300));
  EXPECT_EQ(server_->stats().bad_packets, 2u);
  EXPECT_EQ(server_->stats().offers, 0u);
  ASSERT_TRUE(dora(r, 9)) << "the same client through a proper relay is served";
}

TEST_F(DhcpServerTest, ObserveModeAnswersNothingAndMapsAddresses) {
  ServerConfig c;
  SegmentConfig s = segment();
  s.mode = SegmentConfig::Mode::Observe;
  c.segments.push_back(s);
  start(std::move(c));
  Relay r(ip(127, 0, 0, 2), port_);
  Message req = request(MessageType::Request, 0x42, ip(127, 0, 0, 2));
  req.options.set(opt::kRequestedIp, encode_u32(ip(127, 5, 0, 9)));
  r.send(port_, bytes_of(req));
  EXPECT_FALSE(r.recv(300)) << "observe mode answered";
  for (int i = 0; i < 100 && !server_->mac_for_ip(ip(127, 5, 0, 9)); ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server_->mac_for_ip(ip(127, 5, 0, 9)), "00:0b:82:01:02:42");
}

TEST_F(DhcpServerTest, PluginHooksAddOptions) {
  struct Hooks : sdk::NetHooks {
    std::vector<sdk::DhcpOption> dhcp_options(const std::string& mac) override {
      if (mac != "00:0b:82:01:02:05") return {};
      return {{66, {'t', 'f', 't', 'p'}}};
    }
  } hooks;
  ServerConfig c;
  c.segments.push_back(segment());
  c.hooks.push_back(&hooks);
  start(std::move(c));
  Relay r(ip(127, 0, 0, 2), port_);
  auto ack = dora(r, 5);
  ASSERT_TRUE(ack);
  EXPECT_EQ(text_option(*ack, opt::kTftpServerName), "tftp");
}

}  // namespace
}  // namespace labctl::dhcp
