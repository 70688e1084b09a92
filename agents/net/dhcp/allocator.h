// The DHCP allocation engine for one segment: which address a client gets, and what to answer.
//
// No sockets, no packets, no clock: the server extracts a Query from each packet, passes the time,
// and gets a Decision (what to send, which lease row must be durable before it is sent). Leases
// live in memory, loaded from LeaseDb rows at start; offers are held in memory only. The rules are
// RFC 2131 section 4.3 as a server authoritative for its segment; README.md ("Leases and
// allocation") explains every choice.
//
// Lookups by client, MAC and address are hash lookups; finding a free address takes O(log n) from
// a set of never-used ranges and a queue of freed addresses ordered by when they became free, so a
// /16 pool costs no more per DISCOVER than a /24. Every public method is thread-safe (one mutex):
// the server's loop calls handle(), the TFTP side calls by_ip() / by_mac().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agents/net/dhcp/lease_db.h"
#include "common/error.h"

namespace labctl::dhcp {

// A fixed address for a MAC, from the inventory.
struct Reservation {
  std::string mac;       // "aa:bb:cc:dd:ee:ff"
  std::uint32_t ip = 0;  // inside the subnet; may lie inside or outside the pool
  std::string name;      // inventory device name
  std::string type;      // inventory device type, e.g. "cisco-phone"
  bool operator==(const Reservation&) const = default;
};

struct AllocatorConfig {
  std::string segment;
  std::uint32_t network = 0;  // subnet address, host byte order
  int prefix = 24;            // 0..32
  // Dynamic pool, inclusive; both 0 = no pool (reservations only).
  std::uint32_t pool_first = 0;
  std::uint32_t pool_last = 0;
  std::int64_t lease_time_ms = 86'400'000;
  std::int64_t offer_hold_ms = 30'000;  // how long an OFFER keeps its address for the client
  // How long a DECLINEd address stays out of use. 10 minutes, like dnsmasq's DECLINE_BACKOFF;
  // Kea's 24 h default lets one looping client drain a small pool for a day (see README).
  std::int64_t decline_quarantine_ms = 600'000;
  bool deny_unknown = false;  // serve only MACs with a reservation
  // Authoritative (the default, as dnsmasq's dhcp-authoritative and Kea): NAK what is not valid
  // for the client and ACK a free pool address it asks for without a record of it. When false,
  // clients we have no record of are ignored (RFC 2131 4.3.2: "remain silent").
  bool authoritative = true;
  std::vector<Reservation> reservations;
  std::uint32_t server_address = 0;  // our server identifier (option 54); never handed out

  bool in_subnet(std::uint32_t ip) const;
  bool in_pool(std::uint32_t ip) const;
};

enum class QueryType { Discover, Request, Decline, Release, Inform };
std::string_view query_type_name(QueryType t);  // "discover", ...

// What the server extracts from a client's packet. Addresses in host byte order, 0 when absent.
struct Query {
  QueryType type = QueryType::Discover;
  std::string client_key;  // make_client_key(option 61, mac); "" = "hw:" + mac
  std::string mac;         // chaddr, "aa:bb:cc:dd:ee:ff" (upper case is folded)
  std::uint32_t ciaddr = 0;
  std::uint32_t requested_ip = 0;  // option 50
  std::uint32_t server_id = 0;     // option 54
  std::string hostname;            // option 12
  std::uint32_t giaddr = 0;        // relay address: the client's network is giaddr's
};

enum class DecisionKind { Offer, Ack, Nak, Ignore };
std::string_view decision_kind_name(DecisionKind k);  // "offer", "ack", "nak", "ignore"

// What to answer, and what to write first.
//
// reason (stable, for events and tests):
//   Offer:  reserved, offered (a retransmitted DISCOVER), current (the client's bound lease),
//           previous (its released/expired address), requested (option 50), pool
//   Ack:    reserved, selected (SELECTING), rebooted (INIT-REBOOT, its own lease), requested
//           (INIT-REBOOT, a free pool address we had no record of), renewed (RENEWING/REBINDING),
//           recovered (renewing a free pool address we had no record of), inform
//   Nak:    wrong-subnet, not-your-lease (someone else holds it, or it expired and was
//           reassigned), reserved-for-other, reservation-moved (the client's MAC is now reserved
//           another address), not-in-pool, quarantined, unknown-client-denied
//   Ignore: exhausted, unknown-client-denied, other-server, no-record (not authoritative),
//           wrong-subnet (giaddr in another subnet), released, declined, not-your-lease
//           (RELEASE/DECLINE of an address the client does not hold), malformed
struct Decision {
  DecisionKind kind = DecisionKind::Ignore;
  std::uint32_t yiaddr = 0;   // Offer/Ack: the address; 0 for an Ack to INFORM
  std::int64_t lease_ms = 0;  // Offer/Ack: the lease time; 0 for INFORM
  // The row that must be durable before the reply leaves (Ack, Release, Decline). Release and
  // Decline are Ignore (nothing to send) with a row to write.
  std::optional<Lease> persist;
  // Rows this decision changed on the side: leases found expired (state Expired) and a lease the
  // client left for another address (state Released). May come with any kind, Ignore included.
  // Commit them in the same batch; they need not precede the reply (losing them only brings back
  // the older, more conservative row).
  std::vector<Lease> persist_also;
  std::optional<Reservation> reservation;  // the client's reservation, when its MAC has one
  std::string reason;
  std::string message;  // human, e.g. "10.0.0.7 is reserved for 00:11:22:33:44:55 (reception)"
};

class Allocator {
 public:
  using Config = AllocatorConfig;

  // Validates `config` (pool and reservations inside the subnet, pool clear of the network and
  // broadcast addresses, no address or MAC reserved twice, the server address not reserved) and
  // loads `rows` (those of other segments are skipped). InvalidInput names the problem.
  static Result<std::unique_ptr<Allocator>> create(Config config, const std::vector<Lease>& rows,
                                                   std::int64_t now);

  Decision handle(const Query& q, std::int64_t now);

  // Marks every bound lease past its expiry as Expired and returns those rows (plus any found by
  // earlier calls that have not been handed out in a Decision yet). For the server's timer; expiry
  // also happens lazily in handle(), so this is only about keeping the database's states current.
  std::vector<Lease> expire(std::int64_t now);

  // Every row, by address (bound, released, declined and expired; offers are not leases).
  std::vector<Lease> leases() const;
  // The latest row of an address, whatever its state (check Lease::active).
  std::optional<Lease> by_ip(std::uint32_t ip) const;
  // The row the MAC's client last got (by its newest ACK), whatever its state.
  std::optional<Lease> by_mac(std::string_view mac) const;

  struct Stats {
    std::size_t pool_size = 0;    // dynamic addresses (pool minus reservations and our address)
    std::size_t bound = 0;        // active leases, reserved addresses included
    std::size_t offered = 0;      // offers held
    std::size_t quarantined = 0;  // declined, still in quarantine
    std::size_t free = 0;         // dynamic addresses nobody holds
  };
  Stats stats(std::int64_t now);

  const Config& config() const { return cfg_; }

 private:
  // Sorted disjoint ranges of addresses: the never-used part of the pool.
  class Ranges {
   public:
    void add_range(std::uint32_t first, std::uint32_t last);
    bool insert(std::uint32_t a);
    bool erase(std::uint32_t a);
    bool contains(std::uint32_t a) const;
    std::optional<std::uint32_t> first_from(std::uint32_t a) const;  // smallest >= a
    std::size_t size() const { return count_; }

   private:
    std::map<std::uint32_t, std::uint32_t> r_;  // first -> last
    std::size_t count_ = 0;
  };

  // Where an address is filed, so it can be taken out again.
  enum class Bucket { Free, Bound, Quarantine, Offer };
  struct Filed {
    Bucket bucket;
    std::int64_t key;
  };
  struct Offer {
    std::string client_key;
    std::string mac;
    std::int64_t until = 0;
    std::string reason;
  };
  enum class Avail {
    Free,
    NotInSubnet,
    ServerAddress,
    ReservedOther,
    NotInPool,
    Quarantined,
    InUse
  };

  explicit Allocator(Config cfg) : cfg_(std::move(cfg)) {}

  Decision discover(const Query& q, std::int64_t now, Decision d);
  Decision request(const Query& q, std::int64_t now, Decision d);
  Decision decline(const Query& q, std::int64_t now, Decision d);
  Decision release(const Query& q, std::int64_t now, Decision d);

  void reap(std::int64_t now);
  bool dynamic(std::uint32_t ip) const;  // in the pool, not reserved, not ours
  void file(std::uint32_t ip, std::int64_t now);
  void unfile(std::uint32_t ip);
  const Reservation* reservation_for_mac(std::string_view mac) const;
  const Reservation* reservation_at(std::uint32_t ip) const;
  const Reservation* usable_reservation(std::string_view mac, std::int64_t now) const;
  bool quarantined(std::uint32_t ip, std::int64_t now) const;
  Avail available(std::uint32_t ip, const std::string& key, std::string_view mac,
                  std::int64_t now) const;
  const Lease* client_record(const std::string& key) const;
  std::optional<std::uint32_t> next_free();
  void index(const Lease& row, std::int64_t now);
  void drop_offer(std::uint32_t ip, std::int64_t now);
  void drop_client_offer(const std::string& key, std::int64_t now);
  Decision& offer(Decision& d, std::uint32_t ip, const Query& q, const std::string& key,
                  std::int64_t now, std::string reason, std::string message);
  Decision& ack(Decision& d, std::uint32_t ip, const Query& q, const std::string& key,
                std::int64_t now, std::string reason, std::string message);
  Decision& nak_for(Decision& d, Avail why, std::uint32_t ip);

  const Config cfg_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, const Reservation*> res_by_mac_;  // into cfg_
  std::unordered_map<std::uint32_t, const Reservation*> res_by_ip_;
  std::size_t pool_size_ = 0;

  std::unordered_map<std::uint32_t, Lease> rows_;             // ip -> latest row
  std::unordered_map<std::string, std::uint32_t> by_client_;  // client key -> ip of its row
  std::unordered_map<std::string, std::uint32_t> by_mac_;     // mac -> ip of its row
  std::unordered_map<std::uint32_t, Offer> offers_;           // ip -> offer
  std::unordered_map<std::string, std::uint32_t> offer_by_client_;

  Ranges never_;              // dynamic, no row, no offer
  std::uint32_t cursor_ = 0;  // next never-used address to consider (round robin)
  std::unordered_map<std::uint32_t, Filed> filed_;
  std::set<std::pair<std::int64_t, std::uint32_t>> free_;        // (free since, ip), dynamic only
  std::set<std::pair<std::int64_t, std::uint32_t>> bound_;       // (expires_at, ip)
  std::set<std::pair<std::int64_t, std::uint32_t>> quarantine_;  // (until, ip)
  std::set<std::pair<std::int64_t, std::uint32_t>> offered_;     // (until, ip)
  std::vector<Lease> pending_;  // rows changed by reap, not yet handed out
};

}  // namespace labctl::dhcp
