// The DHCP server: one UDP socket per segment (bound to its interface), one event-loop thread, and
// one commit thread that makes leases durable before their ACKs leave.
//
// The loop reads datagrams in batches (recvmmsg), parses them (codec.h), asks the segment's
// Allocator what to do (allocator.h) and lays out the reply (build_reply). OFFERs and NAKs leave at
// once. An ACK (and a RELEASE or DECLINE, which get no answer) carries a lease row: it is queued to
// the commit thread, which writes every row that arrived while its previous fsync was running in
// one transaction (LeaseDb::commit) and only then sends the ACKs of that batch. So an ACK a client
// has seen is always on disk, and one fsync serves many clients.
//
// Observe-only segments answer nothing: the server listens to the requests (and to replies of
// the segment's real server that are broadcast) and keeps the MAC <-> address map.
//
// Every exchange is an Event, delivered to an observer and written as a JSON line to a log file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/net/dhcp/allocator.h"
#include "agents/net/dhcp/codec.h"
#include "agents/net/dhcp/lease_db.h"
#include "common/error.h"
#include "plugins/sdk/net_hooks.h"

namespace labctl::dhcp {

// Options for one kind of client. A client belongs to every class that matches it; a class's
// options override the segment's (later classes override earlier ones).
struct ClientClass {
  std::string name;
  // Matches when any of these holds (an empty list matches nothing of that kind).
  std::vector<std::string> vendor_class_prefixes;  // option 60 starts with one of these
  std::vector<std::string> ouis;                   // "00:0b:82": the MAC's first three bytes
  std::vector<std::string> types;                  // the reservation's inventory type
  Options options;                                 // code -> encoded data
  std::vector<std::uint8_t> always_send;           // sent even when not requested
};

struct SegmentConfig {
  enum class Mode { Serve, Observe };
  Mode mode = Mode::Serve;
  std::string interface;  // SO_BINDTODEVICE; empty: any (tests on loopback)
  AllocatorConfig alloc;  // name (alloc.segment), subnet, pool, lease time, reservations, address
  // Segment-wide options (1 subnet mask, 3 router, 6 DNS, 15 domain, 42 NTP, 66/150 TFTP ...),
  // encoded. 51/54/58/59 are the server's own and need not be given.
  Options options;
  std::vector<std::uint8_t> always_send;
  std::vector<ClientClass> classes;
};

enum class EventKind {
  Offer,      // DHCPOFFER sent
  Ack,        // DHCPACK sent (lease durable before)
  Nak,        // DHCPNAK sent
  Release,    // a client released its address
  Decline,    // a client declined an address (quarantined)
  Inform,     // DHCPINFORM answered
  Ignored,    // a request not answered (unknown client denied, pool exhausted, other server ...)
  Observed,   // observe mode: a MAC <-> address pair seen
  BadPacket,  // a datagram that is not a valid DHCP request
  Error,      // the server's own trouble (lease database write failed, send failed)
};
std::string_view event_kind_name(EventKind k);  // "offer", "ack", ... "bad_packet", "error"

struct Event {
  EventKind kind = EventKind::Ignored;
  std::int64_t time_ms = 0;
  std::string segment;
  std::string message_type;  // of the request: "DHCPDISCOVER", ...
  std::uint32_t xid = 0;
  std::string mac;
  std::string client_key;
  std::string hostname;
  std::string vendor_class;
  std::uint32_t ip = 0;      // the address offered, acked, released, declined or observed
  std::uint32_t giaddr = 0;  // relay, 0 when none
  std::string device;        // the reservation's inventory device, if any
  std::vector<std::string> classes;
  std::string source;         // the sender, "10.99.0.2:67"
  std::int64_t lease_ms = 0;  // Ack/Offer
  std::string reason;         // allocator reason, or why a packet was bad
  std::string message;        // for people
  std::vector<std::uint8_t> options_sent;
};
nlohmann::json event_to_json(const Event& e);
std::string event_to_line(const Event& e);
using EventObserver = std::function<void(const Event&)>;

struct ServerConfig {
  std::vector<SegmentConfig> segments;
  std::filesystem::path lease_db;     // SQLite file (the state store's state.db by default)
  std::uint16_t port = 67;            // server port; replies go to port + 1 (68), relays to port
  std::filesystem::path log_path;     // JSON-lines event log, appended; empty: none
  EventObserver on_event;             // called serially from the server's threads
  std::vector<sdk::NetHooks*> hooks;  // plugins' options per client (dhcp_options(mac)); not owned
  std::int64_t expiry_sweep_ms = 60'000;
  // Unit tests without root: do not add ARP entries for unicast replies (broadcast instead).
  bool arp_unicast = true;
};

class Server {
 public:
  struct Stats {
    std::uint64_t received = 0, bad_packets = 0, offers = 0, acks = 0, naks = 0, ignored = 0;
    std::uint64_t commits = 0, committed_leases = 0, observed = 0, send_errors = 0;
  };

  // Opens the lease database, loads every segment's leases, binds the sockets and starts the
  // threads. InvalidInput for a bad configuration, Internal for socket trouble.
  static Result<std::unique_ptr<Server>> start(ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Stops the loop, commits and sends what is queued, joins the threads. Idempotent.
  void stop();

  Stats stats() const;
  std::uint16_t port() const;
  // Every lease of every segment (served ones from the allocators, observed ones from the map).
  std::vector<Lease> leases() const;
  // Which MAC holds (or was last seen with) this address: the TFTP side maps a client to a phone.
  std::optional<std::string> mac_for_ip(std::uint32_t ip) const;

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// An interface's IPv4 address and prefix length (getifaddrs): the first one `wanted` accepts
// (the one in a segment's subnet, or on a pool's network, when the interface also has secondary
// addresses), else its first one; NotFound when it has none.
Result<std::pair<std::uint32_t, int>> interface_ipv4(
    const std::string& interface,
    const std::function<bool(std::uint32_t address, int prefix)>& wanted = {});

}  // namespace labctl::dhcp
