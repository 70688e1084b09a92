#include "agents/net/dhcp/allocator.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agents/net/dhcp/lease_db.h"

namespace labctl::dhcp {
namespace {

constexpr std::uint32_t ip4(int a, int b, int c, int d) {
  return (static_cast<std::uint32_t>(a) << 24) | (static_cast<std::uint32_t>(b) << 16) |
         (static_cast<std::uint32_t>(c) << 8) | static_cast<std::uint32_t>(d);
}
constexpr std::uint32_t lab(int d) {
  return ip4(10, 0, 0, d);
}

constexpr std::int64_t T0 = 1'700'000'000'000;
constexpr std::int64_t kSec = 1000;
constexpr std::int64_t kMin = 60 * kSec;
constexpr std::int64_t kHour = 60 * kMin;
constexpr std::uint32_t kServer = lab(1);
const std::string kPhone = "00:11:22:33:44:55";

std::string mac(int n) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "02:00:00:%02x:%02x:%02x", (n >> 16) & 0xff, (n >> 8) & 0xff,
                n & 0xff);
  return buf;
}

// 10.0.0.0/24, pool .100-.199, server .1, 1 h leases, the reception phone reserved at .50.
AllocatorConfig base_config() {
  AllocatorConfig c;
  c.segment = "lab";
  c.network = lab(0);
  c.prefix = 24;
  c.pool_first = lab(100);
  c.pool_last = lab(199);
  c.lease_time_ms = kHour;
  c.server_address = kServer;
  c.reservations.push_back({kPhone, lab(50), "reception", "cisco-phone"});
  return c;
}

std::unique_ptr<Allocator> make(AllocatorConfig c, const std::vector<Lease>& rows = {},
                                std::int64_t now = T0) {
  auto a = Allocator::create(std::move(c), rows, now);
  if (!a) ADD_FAILURE() << a.error().message();
  return a ? std::move(*a) : nullptr;
}

Query query(QueryType type, const std::string& m) {
  Query q;
  q.type = type;
  q.mac = m;
  q.client_key = "hw:" + m;
  return q;
}
Query discover(const std::string& m, std::uint32_t requested = 0) {
  Query q = query(QueryType::Discover, m);
  q.requested_ip = requested;
  return q;
}
Query select(const std::string& m, std::uint32_t ip, std::uint32_t server = kServer) {
  Query q = query(QueryType::Request, m);
  q.requested_ip = ip;
  q.server_id = server;
  return q;
}
Query init_reboot(const std::string& m, std::uint32_t ip) {
  Query q = query(QueryType::Request, m);
  q.requested_ip = ip;
  return q;
}
Query renew(const std::string& m, std::uint32_t ip) {
  Query q = query(QueryType::Request, m);
  q.ciaddr = ip;
  return q;
}
Query release(const std::string& m, std::uint32_t ip) {
  Query q = query(QueryType::Release, m);
  q.ciaddr = ip;
  return q;
}
Query decline(const std::string& m, std::uint32_t ip) {
  Query q = query(QueryType::Decline, m);
  q.requested_ip = ip;
  return q;
}

// DISCOVER then REQUEST (SELECTING) of what was offered; returns the ACK.
Decision dora(Allocator& a, const std::string& m, std::int64_t now, std::uint32_t requested = 0) {
  const Decision o = a.handle(discover(m, requested), now);
  EXPECT_EQ(o.kind, DecisionKind::Offer) << o.reason << ": " << o.message;
  const Decision d = a.handle(select(m, o.yiaddr), now);
  EXPECT_EQ(d.kind, DecisionKind::Ack) << d.reason << ": " << d.message;
  return d;
}

Lease bound_row(const std::string& m, std::uint32_t ip, std::int64_t start, std::int64_t len) {
  return Lease{"lab", ip, "hw:" + m, m, "", LeaseState::Bound, start, start + len, start};
}

// Evaluates `d` once (it is usually a handle() call).
#define EXPECT_DECISION(d, k, r)                                                     \
  do {                                                                               \
    const Decision& dd_ = (d);                                                       \
    EXPECT_EQ(dd_.kind, DecisionKind::k) << dd_.reason << ": " << dd_.message;       \
    EXPECT_EQ(dd_.reason, r) << decision_kind_name(dd_.kind) << ": " << dd_.message; \
  } while (0)

// ---- DISCOVER and offers -----------------------------------------------------------------------

TEST(DhcpAllocator, DiscoverOffersFromThePoolWithoutPersisting) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  const Decision d = a->handle(discover(mac(1)), T0);
  EXPECT_DECISION(d, Offer, "pool");
  EXPECT_EQ(d.yiaddr, lab(100));
  EXPECT_EQ(d.lease_ms, kHour);
  EXPECT_FALSE(d.persist);
  EXPECT_TRUE(d.persist_also.empty());
  EXPECT_FALSE(d.reservation);
  EXPECT_FALSE(d.message.empty());
  EXPECT_TRUE(a->leases().empty());
  EXPECT_FALSE(a->by_ip(lab(100)));
  const auto s = a->stats(T0);
  EXPECT_EQ(s.pool_size, 100u);
  EXPECT_EQ(s.offered, 1u);
  EXPECT_EQ(s.free, 99u);
}

TEST(DhcpAllocator, RetransmittedDiscoverGetsTheHeldOffer) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->handle(discover(mac(1)), T0).yiaddr, lab(100));
  const Decision again = a->handle(discover(mac(1)), T0 + 2 * kSec);
  EXPECT_DECISION(again, Offer, "offered");
  EXPECT_EQ(again.yiaddr, lab(100));
  // Held for the first client: a second one gets the next address, even when asking for .100.
  const Decision other = a->handle(discover(mac(2), lab(100)), T0 + 3 * kSec);
  EXPECT_DECISION(other, Offer, "pool");
  EXPECT_EQ(other.yiaddr, lab(101));
}

TEST(DhcpAllocator, OfferHoldExpiresAndTheCursorMovesOn) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->handle(discover(mac(1)), T0).yiaddr, lab(100));
  // After the hold (30 s) .100 is free again, but the round-robin cursor hands out .101 first so
  // a late REQUEST for .100 still finds it.
  const Decision next = a->handle(discover(mac(2)), T0 + 31 * kSec);
  EXPECT_EQ(next.yiaddr, lab(101));
  EXPECT_EQ(a->stats(T0 + 31 * kSec).offered, 1u);
  const Decision asked = a->handle(discover(mac(3), lab(100)), T0 + 32 * kSec);
  EXPECT_DECISION(asked, Offer, "requested");
  EXPECT_EQ(asked.yiaddr, lab(100));
}

TEST(DhcpAllocator, ServerAddressInsideThePoolIsNeverOffered) {
  auto c = base_config();
  c.pool_first = lab(1);
  c.pool_last = lab(3);  // the server is .1
  auto a = make(c);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->handle(discover(mac(1)), T0).yiaddr, lab(2));
  EXPECT_EQ(a->handle(discover(mac(2), lab(1)), T0).yiaddr, lab(3));
  EXPECT_DECISION(a->handle(discover(mac(3)), T0), Ignore, "exhausted");
  EXPECT_EQ(a->stats(T0).pool_size, 2u);
}

// ---- REQUEST in SELECTING ----------------------------------------------------------------------

TEST(DhcpAllocator, SelectingAcksAndPersistsTheLease) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  ASSERT_EQ(a->handle(discover(mac(1)), T0).yiaddr, lab(100));
  Query q = select(mac(1), lab(100));
  q.hostname = "esx1";
  const Decision d = a->handle(q, T0 + kSec);
  EXPECT_DECISION(d, Ack, "selected");
  EXPECT_EQ(d.yiaddr, lab(100));
  EXPECT_EQ(d.lease_ms, kHour);
  ASSERT_TRUE(d.persist);
  Lease want;
  want.segment = "lab";
  want.ip = lab(100);
  want.client_key = "hw:" + mac(1);
  want.mac = mac(1);
  want.hostname = "esx1";
  want.state = LeaseState::Bound;
  want.starts_at = T0 + kSec;
  want.expires_at = T0 + kSec + kHour;
  want.updated_at = T0 + kSec;
  EXPECT_EQ(*d.persist, want);
  EXPECT_EQ(a->by_ip(lab(100)), want);
  EXPECT_EQ(a->by_mac(mac(1)), want);
  EXPECT_FALSE(a->by_mac(mac(2)));
  EXPECT_EQ(a->leases(), std::vector<Lease>{want});
  EXPECT_EQ(a->stats(T0 + kSec).bound, 1u);
  EXPECT_EQ(a->stats(T0 + kSec).offered, 0u);
}

TEST(DhcpAllocator, SelectingAnotherServerWithdrawsOurOffer) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  ASSERT_EQ(a->handle(discover(mac(1)), T0).yiaddr, lab(100));
  const Decision d = a->handle(select(mac(1), ip4(10, 0, 0, 2), ip4(10, 0, 0, 2)), T0 + kSec);
  EXPECT_DECISION(d, Ignore, "other-server");
  EXPECT_FALSE(d.persist);
  EXPECT_EQ(a->stats(T0 + kSec).offered, 0u);
  const Decision other = a->handle(discover(mac(2), lab(100)), T0 + 2 * kSec);
  EXPECT_DECISION(other, Offer, "requested");
  EXPECT_EQ(other.yiaddr, lab(100));
}

TEST(DhcpAllocator, SelectingNaksWhatIsNoLongerOursToGive) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  ASSERT_EQ(a->handle(discover(mac(1)), T0).yiaddr, lab(100));
  // The offer lapses and another client takes .100.
  dora(*a, mac(2), T0 + 40 * kSec, lab(100));
  EXPECT_DECISION(a->handle(select(mac(1), lab(100)), T0 + 41 * kSec), Nak, "not-your-lease");
  EXPECT_DECISION(a->handle(select(mac(1), lab(20)), T0 + 41 * kSec), Nak, "not-in-pool");
  EXPECT_DECISION(a->handle(select(mac(1), lab(50)), T0 + 41 * kSec), Nak, "reserved-for-other");
  EXPECT_DECISION(a->handle(select(mac(1), ip4(10, 9, 0, 5)), T0 + 41 * kSec), Nak, "wrong-subnet");
}

TEST(DhcpAllocator, SelectingAfterTheHoldStillAcksAFreeAddress) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  ASSERT_EQ(a->handle(discover(mac(1)), T0).yiaddr, lab(100));
  EXPECT_DECISION(a->handle(select(mac(1), lab(100)), T0 + 5 * kMin), Ack, "selected");
}

// ---- reservations ------------------------------------------------------------------------------

TEST(DhcpAllocator, ReservationIsOfferedAndAckedWithItsDevice) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  const Decision o = a->handle(discover(kPhone, lab(120)), T0);
  EXPECT_DECISION(o, Offer, "reserved");
  EXPECT_EQ(o.yiaddr, lab(50));
  ASSERT_TRUE(o.reservation);
  EXPECT_EQ(o.reservation->name, "reception");
  EXPECT_EQ(o.reservation->type, "cisco-phone");
  const Decision d = a->handle(select(kPhone, lab(50)), T0);
  EXPECT_DECISION(d, Ack, "reserved");
  ASSERT_TRUE(d.persist);
  EXPECT_EQ(d.persist->ip, lab(50));
  ASSERT_TRUE(d.reservation);
  EXPECT_EQ(a->by_ip(lab(50))->mac, kPhone);
  // The phone renews and reboots into its address.
  EXPECT_DECISION(a->handle(renew(kPhone, lab(50)), T0 + 30 * kMin), Ack, "reserved");
  EXPECT_DECISION(a->handle(init_reboot(kPhone, lab(50)), T0 + 31 * kMin), Ack, "reserved");
}

TEST(DhcpAllocator, ReservationMacsAreMatchedInLowerCase) {
  auto c = base_config();
  c.reservations[0].mac = "00:11:22:33:44:AA";
  auto a = make(c);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->config().reservations[0].mac, "00:11:22:33:44:aa");
  EXPECT_DECISION(a->handle(discover("00:11:22:33:44:aa"), T0), Offer, "reserved");
}

TEST(DhcpAllocator, AReservedAddressNeverGoesToAnotherClient) {
  auto c = base_config();
  c.pool_first = lab(50);  // the reservation lies inside the pool
  c.pool_last = lab(51);
  auto a = make(c);
  ASSERT_TRUE(a);
  const Decision o = a->handle(discover(mac(1), lab(50)), T0);
  EXPECT_DECISION(o, Offer, "pool");
  EXPECT_EQ(o.yiaddr, lab(51));
  EXPECT_DECISION(a->handle(discover(mac(2), lab(50)), T0), Ignore, "exhausted");
  EXPECT_DECISION(a->handle(select(mac(2), lab(50)), T0), Nak, "reserved-for-other");
  EXPECT_DECISION(a->handle(init_reboot(mac(2), lab(50)), T0), Nak, "reserved-for-other");
  EXPECT_DECISION(a->handle(renew(mac(2), lab(50)), T0), Nak, "reserved-for-other");
  EXPECT_EQ(a->stats(T0).pool_size, 1u);
}

// Inventory changed: client Y holds a lease on what is now X's reserved address.
TEST(DhcpAllocator, ReservationWinsOverAStaleLeaseOfAnotherClient) {
  const std::string x = "00:11:22:33:44:66";
  const std::string y = mac(7);
  auto c = base_config();
  c.reservations.push_back({x, lab(120), "lobby", "cisco-phone"});
  auto a = make(c, {bound_row(y, lab(120), T0 - kMin, kHour)});
  ASSERT_TRUE(a);
  EXPECT_DECISION(a->handle(renew(y, lab(120)), T0), Nak, "reserved-for-other");
  EXPECT_DECISION(a->handle(init_reboot(y, lab(120)), T0), Nak, "reserved-for-other");
  const Decision yo = a->handle(discover(y, lab(120)), T0);
  EXPECT_DECISION(yo, Offer, "pool");
  EXPECT_NE(yo.yiaddr, lab(120));
  // X gets its address although Y's row has not expired.
  const Decision xo = a->handle(discover(x), T0);
  EXPECT_DECISION(xo, Offer, "reserved");
  EXPECT_EQ(xo.yiaddr, lab(120));
  const Decision xa = a->handle(select(x, lab(120)), T0);
  EXPECT_DECISION(xa, Ack, "reserved");
  ASSERT_TRUE(xa.persist);
  EXPECT_EQ(xa.persist->client_key, "hw:" + x);
  EXPECT_EQ(a->by_ip(lab(120))->mac, x);
  EXPECT_FALSE(a->by_mac(y));
  EXPECT_DECISION(a->handle(select(y, yo.yiaddr), T0), Ack, "selected");
}

TEST(DhcpAllocator, ReservationMovedNaksTheOldAddressAndReleasesIt) {
  // The phone had a pool lease before the inventory reserved .50 for it.
  auto a = make(base_config(), {bound_row(kPhone, lab(130), T0 - kMin, kHour)});
  ASSERT_TRUE(a);
  EXPECT_DECISION(a->handle(renew(kPhone, lab(130)), T0), Nak, "reservation-moved");
  EXPECT_DECISION(a->handle(init_reboot(kPhone, lab(130)), T0), Nak, "reservation-moved");
  EXPECT_DECISION(a->handle(discover(kPhone), T0), Offer, "reserved");
  const Decision d = a->handle(select(kPhone, lab(50)), T0);
  EXPECT_DECISION(d, Ack, "reserved");
  ASSERT_EQ(d.persist_also.size(), 1u);
  EXPECT_EQ(d.persist_also[0].ip, lab(130));
  EXPECT_EQ(d.persist_also[0].state, LeaseState::Released);
  EXPECT_EQ(a->by_ip(lab(130))->state, LeaseState::Released);
  EXPECT_EQ(a->by_mac(kPhone)->ip, lab(50));
}

TEST(DhcpAllocator, DenyUnknownServesOnlyReservations) {
  auto c = base_config();
  c.deny_unknown = true;
  auto a = make(c);
  ASSERT_TRUE(a);
  EXPECT_DECISION(a->handle(discover(mac(1)), T0), Ignore, "unknown-client-denied");
  EXPECT_DECISION(a->handle(select(mac(1), lab(100)), T0), Ignore, "unknown-client-denied");
  EXPECT_DECISION(a->handle(renew(mac(1), lab(100)), T0), Nak, "unknown-client-denied");
  Query inform = query(QueryType::Inform, mac(1));
  inform.ciaddr = lab(7);
  EXPECT_DECISION(a->handle(inform, T0), Ignore, "unknown-client-denied");
  EXPECT_DECISION(a->handle(discover(kPhone), T0), Offer, "reserved");
  EXPECT_DECISION(a->handle(select(kPhone, lab(50)), T0), Ack, "reserved");
}

TEST(DhcpAllocator, ReservationsOnlyWithoutAPool) {
  auto c = base_config();
  c.pool_first = c.pool_last = 0;
  auto a = make(c);
  ASSERT_TRUE(a);
  EXPECT_DECISION(a->handle(discover(mac(1)), T0), Ignore, "exhausted");
  EXPECT_DECISION(a->handle(init_reboot(mac(1), lab(100)), T0), Nak, "not-in-pool");
  EXPECT_DECISION(a->handle(discover(kPhone), T0), Offer, "reserved");
}

// ---- INIT-REBOOT ------------------------------------------------------------------------------

TEST(DhcpAllocator, InitRebootConfirmsNaksOrAcksFreeAddresses) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  ASSERT_EQ(dora(*a, mac(1), T0).yiaddr, lab(100));
  const std::int64_t t = T0 + 10 * kMin;
  const Decision own = a->handle(init_reboot(mac(1), lab(100)), t);
  EXPECT_DECISION(own, Ack, "rebooted");
  ASSERT_TRUE(own.persist);
  EXPECT_EQ(own.persist->expires_at, T0 + 10 * kMin + kHour);
  EXPECT_DECISION(a->handle(init_reboot(mac(1), ip4(192, 168, 1, 5)), t), Nak, "wrong-subnet");
  EXPECT_DECISION(a->handle(init_reboot(mac(2), lab(100)), t), Nak, "not-your-lease");
  // Holding .100, the client may not move to another address by asking for it.
  EXPECT_DECISION(a->handle(init_reboot(mac(1), lab(160)), t), Nak, "not-your-lease");
  EXPECT_DECISION(a->handle(init_reboot(mac(3), lab(20)), t), Nak, "not-in-pool");
  EXPECT_DECISION(a->handle(init_reboot(mac(3), lab(1)), t), Nak, "not-your-lease");
  // Authoritative: no record of the client, the address is free and in the pool -> ACK.
  const Decision fresh = a->handle(init_reboot(mac(3), lab(150)), t);
  EXPECT_DECISION(fresh, Ack, "requested");
  ASSERT_TRUE(fresh.persist);
  EXPECT_EQ(fresh.persist->ip, lab(150));
}

TEST(DhcpAllocator, NonAuthoritativeStaysSilentWithoutARecord) {
  auto c = base_config();
  c.authoritative = false;
  auto a = make(c);
  ASSERT_TRUE(a);
  ASSERT_EQ(dora(*a, mac(1), T0).yiaddr, lab(100));
  EXPECT_DECISION(a->handle(init_reboot(mac(3), lab(150)), T0), Ignore, "no-record");
  EXPECT_DECISION(a->handle(renew(mac(3), lab(150)), T0), Ignore, "no-record");
  EXPECT_DECISION(a->handle(init_reboot(mac(3), ip4(192, 168, 1, 5)), T0), Nak, "wrong-subnet");
  EXPECT_DECISION(a->handle(init_reboot(mac(1), lab(100)), T0), Ack, "rebooted");
  EXPECT_DECISION(a->handle(init_reboot(mac(1), lab(101)), T0), Nak, "not-your-lease");
}

// ---- RENEWING / REBINDING ----------------------------------------------------------------------

TEST(DhcpAllocator, RenewingExtendsTheClientsOwnLease) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  Query q = discover(mac(1));
  q.hostname = "vm1";
  ASSERT_EQ(a->handle(q, T0).yiaddr, lab(100));
  q = select(mac(1), lab(100));
  q.hostname = "vm1";
  ASSERT_EQ(a->handle(q, T0).kind, DecisionKind::Ack);
  const Decision d = a->handle(renew(mac(1), lab(100)), T0 + 30 * kMin);
  EXPECT_DECISION(d, Ack, "renewed");
  ASSERT_TRUE(d.persist);
  EXPECT_EQ(d.persist->starts_at, T0 + 30 * kMin);
  EXPECT_EQ(d.persist->expires_at, T0 + 90 * kMin);
  EXPECT_EQ(d.persist->hostname, "vm1");  // kept when the renewal does not send it
  EXPECT_DECISION(a->handle(renew(mac(1), ip4(10, 1, 0, 100)), T0 + 31 * kMin), Nak,
                  "wrong-subnet");
}

TEST(DhcpAllocator, RenewingAnExpiredLeaseStillFreeIsAcked) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  ASSERT_EQ(dora(*a, mac(1), T0).yiaddr, lab(100));
  const Decision d = a->handle(renew(mac(1), lab(100)), T0 + 2 * kHour);
  EXPECT_DECISION(d, Ack, "renewed");
  // The lease was found expired on the way (and that row is reported), then renewed.
  ASSERT_EQ(d.persist_also.size(), 1u);
  EXPECT_EQ(d.persist_also[0].state, LeaseState::Expired);
  ASSERT_TRUE(d.persist);
  EXPECT_EQ(d.persist->state, LeaseState::Bound);
}

TEST(DhcpAllocator, ExpiredAndReassignedIsNakedOnRenew) {
  auto c = base_config();
  c.pool_last = c.pool_first;  // one address
  auto a = make(c);
  ASSERT_TRUE(a);
  ASSERT_EQ(dora(*a, mac(1), T0).yiaddr, lab(100));
  EXPECT_DECISION(a->handle(discover(mac(2)), T0 + 30 * kMin), Ignore, "exhausted");
  // Expiry frees the address lazily, the moment it is considered.
  const Decision o = a->handle(discover(mac(2)), T0 + kHour);
  EXPECT_DECISION(o, Offer, "pool");
  EXPECT_EQ(o.yiaddr, lab(100));
  ASSERT_EQ(o.persist_also.size(), 1u);
  EXPECT_EQ(o.persist_also[0].client_key, "hw:" + mac(1));
  EXPECT_EQ(o.persist_also[0].state, LeaseState::Expired);
  EXPECT_DECISION(a->handle(select(mac(2), lab(100)), T0 + kHour), Ack, "selected");
  EXPECT_DECISION(a->handle(renew(mac(1), lab(100)), T0 + kHour + kSec), Nak, "not-your-lease");
  EXPECT_DECISION(a->handle(init_reboot(mac(1), lab(100)), T0 + kHour + 2 * kSec), Nak,
                  "not-your-lease");
}

TEST(DhcpAllocator, RenewingAFreeAddressWithoutARecordRecoversIt) {
  // A lost database: clients keep their addresses instead of all being sent back to DISCOVER.
  auto a = make(base_config());
  ASSERT_TRUE(a);
  const Decision d = a->handle(renew(mac(5), lab(170)), T0);
  EXPECT_DECISION(d, Ack, "recovered");
  ASSERT_TRUE(d.persist);
  EXPECT_EQ(d.persist->ip, lab(170));
  EXPECT_DECISION(a->handle(renew(mac(6), lab(170)), T0), Nak, "not-your-lease");
}

// ---- RELEASE, DECLINE, INFORM ------------------------------------------------------------------

TEST(DhcpAllocator, ReleaseThenRediscoverGetsTheSameAddressBack) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  ASSERT_EQ(dora(*a, mac(1), T0).yiaddr, lab(100));
  ASSERT_EQ(dora(*a, mac(2), T0).yiaddr, lab(101));
  EXPECT_DECISION(a->handle(release(mac(1), lab(101)), T0 + kMin), Ignore, "not-your-lease");
  EXPECT_FALSE(a->handle(release(mac(1), lab(101)), T0 + kMin).persist);
  const Decision r = a->handle(release(mac(1), lab(100)), T0 + kMin);
  EXPECT_DECISION(r, Ignore, "released");
  ASSERT_TRUE(r.persist);
  EXPECT_EQ(r.persist->state, LeaseState::Released);
  EXPECT_EQ(r.persist->expires_at, T0 + kMin);
  EXPECT_EQ(a->stats(T0 + kMin).bound, 1u);
  // Not handed to the next client while never-used addresses remain ...
  EXPECT_EQ(a->handle(discover(mac(3)), T0 + 2 * kMin).yiaddr, lab(102));
  // ... and the releasing client gets it back.
  const Decision back = a->handle(discover(mac(1)), T0 + 3 * kMin);
  EXPECT_DECISION(back, Offer, "previous");
  EXPECT_EQ(back.yiaddr, lab(100));
  EXPECT_DECISION(a->handle(select(mac(1), lab(100)), T0 + 3 * kMin), Ack, "selected");
}

TEST(DhcpAllocator, FreedAddressesAreReusedLongestFreeFirst) {
  auto c = base_config();
  c.pool_last = lab(102);
  auto a = make(c);
  ASSERT_TRUE(a);
  ASSERT_EQ(dora(*a, mac(1), T0).yiaddr, lab(100));
  ASSERT_EQ(dora(*a, mac(2), T0).yiaddr, lab(101));
  ASSERT_EQ(dora(*a, mac(3), T0).yiaddr, lab(102));
  ASSERT_EQ(a->handle(release(mac(2), lab(101)), T0 + 1 * kMin).reason, "released");
  ASSERT_EQ(a->handle(release(mac(1), lab(100)), T0 + 2 * kMin).reason, "released");
  ASSERT_EQ(a->handle(release(mac(3), lab(102)), T0 + 3 * kMin).reason, "released");
  EXPECT_EQ(a->handle(discover(mac(4)), T0 + 4 * kMin).yiaddr, lab(101));
  EXPECT_EQ(a->handle(discover(mac(5)), T0 + 4 * kMin).yiaddr, lab(100));
  EXPECT_EQ(a->handle(discover(mac(6)), T0 + 4 * kMin).yiaddr, lab(102));
  EXPECT_DECISION(a->handle(discover(mac(7)), T0 + 4 * kMin), Ignore, "exhausted");
}

TEST(DhcpAllocator, DeclineQuarantinesTheAddressUntilItsTimeIsUp) {
  auto c = base_config();
  c.pool_last = lab(101);
  auto a = make(c);
  ASSERT_TRUE(a);
  EXPECT_EQ(c.decline_quarantine_ms, 10 * kMin);
  ASSERT_EQ(a->handle(discover(mac(1)), T0).yiaddr, lab(100));
  // Only the client it was offered or leased to may decline it.
  EXPECT_DECISION(a->handle(decline(mac(9), lab(100)), T0), Ignore, "not-your-lease");
  const Decision d = a->handle(decline(mac(1), lab(100)), T0 + kSec);
  EXPECT_DECISION(d, Ignore, "declined");
  ASSERT_TRUE(d.persist);
  EXPECT_EQ(d.persist->state, LeaseState::Declined);
  EXPECT_EQ(d.persist->expires_at, T0 + kSec + 10 * kMin);
  // The decliner moves on; nobody gets .100 during the quarantine.
  const Decision next = a->handle(discover(mac(1)), T0 + 11 * kSec);
  EXPECT_EQ(next.yiaddr, lab(101));
  EXPECT_DECISION(a->handle(discover(mac(2), lab(100)), T0 + 12 * kSec), Ignore, "exhausted");
  EXPECT_DECISION(a->handle(init_reboot(mac(2), lab(100)), T0 + 12 * kSec), Nak, "quarantined");
  EXPECT_EQ(a->stats(T0 + 12 * kSec).quarantined, 1u);
  // After it, the address is back.
  const Decision later = a->handle(discover(mac(2), lab(100)), T0 + kSec + 10 * kMin);
  EXPECT_DECISION(later, Offer, "requested");
  EXPECT_EQ(later.yiaddr, lab(100));
}

TEST(DhcpAllocator, DecliningALeaseDropsIt) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  ASSERT_EQ(dora(*a, mac(1), T0).yiaddr, lab(100));
  EXPECT_DECISION(a->handle(decline(mac(1), lab(100)), T0 + kSec), Ignore, "declined");
  EXPECT_FALSE(a->by_mac(mac(1)));
  EXPECT_EQ(a->by_ip(lab(100))->state, LeaseState::Declined);
  EXPECT_DECISION(a->handle(renew(mac(1), lab(100)), T0 + 2 * kSec), Nak, "quarantined");
  EXPECT_EQ(a->handle(discover(mac(1)), T0 + 3 * kSec).yiaddr, lab(101));
}

TEST(DhcpAllocator, DeclinedReservationFallsBackToThePoolForTheQuarantine) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  ASSERT_EQ(a->handle(discover(kPhone), T0).yiaddr, lab(50));
  EXPECT_DECISION(a->handle(decline(kPhone, lab(50)), T0), Ignore, "declined");
  const Decision o = a->handle(discover(kPhone), T0 + 10 * kSec);
  EXPECT_DECISION(o, Offer, "pool");
  EXPECT_EQ(o.yiaddr, lab(100));
  ASSERT_TRUE(o.reservation);  // still the reception phone for options and names
  EXPECT_DECISION(a->handle(select(kPhone, lab(100)), T0 + 10 * kSec), Ack, "selected");
  // Quarantine over: the reservation applies again and the pool lease is let go.
  EXPECT_DECISION(a->handle(renew(kPhone, lab(100)), T0 + 11 * kMin), Nak, "reservation-moved");
  EXPECT_DECISION(a->handle(discover(kPhone), T0 + 11 * kMin), Offer, "reserved");
  const Decision d = a->handle(select(kPhone, lab(50)), T0 + 11 * kMin);
  EXPECT_DECISION(d, Ack, "reserved");
  ASSERT_EQ(d.persist_also.size(), 1u);
  EXPECT_EQ(d.persist_also[0].ip, lab(100));
}

TEST(DhcpAllocator, InformIsAckedWithoutALease) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  Query q = query(QueryType::Inform, mac(1));
  q.ciaddr = lab(7);
  const Decision d = a->handle(q, T0);
  EXPECT_DECISION(d, Ack, "inform");
  EXPECT_EQ(d.yiaddr, 0u);
  EXPECT_EQ(d.lease_ms, 0);
  EXPECT_FALSE(d.persist);
  EXPECT_TRUE(a->leases().empty());
  q.ciaddr = ip4(10, 9, 9, 9);
  EXPECT_DECISION(a->handle(q, T0), Ignore, "wrong-subnet");
}

// ---- relays, identity, malformed ---------------------------------------------------------------

TEST(DhcpAllocator, RelayedFromAnotherSubnetIsNotOurs) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  Query q = discover(mac(1));
  q.giaddr = ip4(192, 168, 5, 1);
  EXPECT_DECISION(a->handle(q, T0), Ignore, "wrong-subnet");
  q.giaddr = lab(254);
  EXPECT_DECISION(a->handle(q, T0), Offer, "pool");
}

TEST(DhcpAllocator, TheClientIdentifierNamesTheClient) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  Query q = discover(mac(1));
  q.client_key = "01020000000001";
  ASSERT_EQ(a->handle(q, T0).yiaddr, lab(100));
  q = select(mac(1), lab(100));
  q.client_key = "01020000000001";
  const Decision d = a->handle(q, T0);
  ASSERT_TRUE(d.persist);
  EXPECT_EQ(d.persist->client_key, "01020000000001");
  // Same identifier on a new NIC: same lease. Same MAC without it: another client.
  q = discover(mac(2));
  q.client_key = "01020000000001";
  EXPECT_DECISION(a->handle(q, T0 + kSec), Offer, "current");
  EXPECT_EQ(a->handle(discover(mac(1)), T0 + kSec).yiaddr, lab(101));
  // An empty key falls back to the hardware address.
  Query bare = discover(mac(3));
  bare.client_key.clear();
  EXPECT_EQ(a->handle(bare, T0 + kSec).yiaddr, lab(102));
  EXPECT_EQ(a->handle(discover(mac(3)), T0 + kSec).reason, "offered");
}

TEST(DhcpAllocator, MalformedQueriesAreIgnored) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  EXPECT_DECISION(a->handle(Query{}, T0), Ignore, "malformed");
  EXPECT_DECISION(a->handle(query(QueryType::Request, mac(1)), T0), Ignore, "malformed");
  EXPECT_DECISION(a->handle(select(mac(1), 0), T0), Ignore, "malformed");
  EXPECT_DECISION(a->handle(query(QueryType::Decline, mac(1)), T0), Ignore, "malformed");
}

// ---- expiry, restart ---------------------------------------------------------------------------

TEST(DhcpAllocator, ExpireSweepsBoundLeasesOnce) {
  auto a = make(base_config());
  ASSERT_TRUE(a);
  dora(*a, mac(1), T0);
  dora(*a, mac(2), T0 + kMin);
  dora(*a, kPhone, T0);
  EXPECT_TRUE(a->expire(T0 + 30 * kMin).empty());
  const auto rows = a->expire(T0 + kHour);  // .100 and the phone; .101 lasts a minute longer
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& l : rows) {
    EXPECT_EQ(l.state, LeaseState::Expired);
    EXPECT_EQ(l.updated_at, T0 + kHour);
  }
  EXPECT_EQ(a->expire(T0 + 2 * kHour).size(), 1u);
  EXPECT_TRUE(a->expire(T0 + 3 * kHour).empty());
  EXPECT_EQ(a->stats(T0 + 3 * kHour).bound, 0u);
  EXPECT_EQ(a->by_ip(lab(100))->state, LeaseState::Expired);
  // Expired addresses stay with their clients while others are free.
  EXPECT_DECISION(a->handle(discover(mac(1)), T0 + 3 * kHour), Offer, "previous");
}

TEST(DhcpAllocator, RestartFromTheDatabaseGivesTheSameAnswers) {
  auto mem = LeaseDb::open_memory();
  ASSERT_TRUE(mem);
  LeaseDb& db = **mem;
  auto a = make(base_config());
  ASSERT_TRUE(a);
  auto commit = [&](const Decision& d) {
    std::vector<Lease> batch = d.persist_also;
    if (d.persist) batch.push_back(*d.persist);
    ASSERT_TRUE(db.commit(batch));
  };
  commit(dora(*a, mac(1), T0));  // .100
  commit(dora(*a, mac(2), T0));  // .101
  commit(a->handle(release(mac(2), lab(101)), T0 + kMin));
  ASSERT_EQ(a->handle(discover(mac(3)), T0 + kMin).yiaddr, lab(102));
  commit(a->handle(decline(mac(3), lab(102)), T0 + kMin));
  commit(dora(*a, kPhone, T0 + kMin));  // .50
  // An offer, never persisted.
  const Decision held = a->handle(discover(mac(4)), T0 + 2 * kMin);
  ASSERT_EQ(held.yiaddr, lab(103));
  EXPECT_FALSE(held.persist);

  auto rows = db.load("lab");
  ASSERT_TRUE(rows);
  EXPECT_EQ(*rows, a->leases());
  auto b = make(base_config(), *rows, T0 + 3 * kMin);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->leases(), a->leases());
  const std::int64_t t = T0 + 3 * kMin;
  for (Allocator* x : {a.get(), b.get()}) {
    SCOPED_TRACE(x == a.get() ? "before restart" : "after restart");
    EXPECT_EQ(x->by_mac(mac(1))->ip, lab(100));
    EXPECT_EQ(x->by_ip(lab(50))->mac, kPhone);
    EXPECT_EQ(x->stats(t).bound, 2u);
    EXPECT_EQ(x->stats(t).quarantined, 1u);
  }
  // Same answers from the restarted allocator.
  EXPECT_DECISION(b->handle(discover(mac(1)), t), Offer, "current");
  EXPECT_EQ(b->handle(discover(mac(1)), t).yiaddr, lab(100));
  EXPECT_DECISION(b->handle(renew(mac(1), lab(100)), t), Ack, "renewed");
  EXPECT_DECISION(b->handle(discover(mac(2)), t), Offer, "previous");
  EXPECT_EQ(b->handle(discover(mac(2)), t).yiaddr, lab(101));
  EXPECT_DECISION(b->handle(init_reboot(mac(9), lab(102)), t), Nak, "quarantined");
  EXPECT_DECISION(b->handle(renew(mac(9), lab(50)), t), Nak, "reserved-for-other");
  // The offer did not survive: .103 is free for anyone.
  const Decision o = b->handle(discover(mac(5), lab(103)), t);
  EXPECT_DECISION(o, Offer, "requested");
  EXPECT_EQ(o.yiaddr, lab(103));
}

TEST(DhcpAllocator, RowsOfOtherSegmentsAreSkipped) {
  Lease other = bound_row(mac(1), lab(100), T0, kHour);
  other.segment = "office";
  auto a = make(base_config(), {other});
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->leases().empty());
  EXPECT_EQ(a->handle(discover(mac(2)), T0).yiaddr, lab(100));
}

// ---- scale -------------------------------------------------------------------------------------

TEST(DhcpAllocator, AllocatesAWholeSlash16PoolAndThenReportsExhaustion) {
  constexpr int kPool = 65'000;
  auto c = base_config();
  c.network = ip4(10, 0, 0, 0);
  c.prefix = 16;
  c.pool_first = ip4(10, 0, 0, 1);
  c.pool_last = c.pool_first + kPool - 1;  // 10.0.253.232
  c.server_address = ip4(10, 0, 255, 254);
  c.reservations.clear();
  auto a = make(c);
  ASSERT_TRUE(a);
  std::vector<bool> used(kPool, false);
  int failures = 0;
  for (int i = 0; i < kPool; ++i) {
    const std::string m = mac(i);
    const Decision o = a->handle(discover(m), T0);
    const Decision d = a->handle(select(m, o.yiaddr, c.server_address), T0);
    const std::uint32_t off = d.yiaddr - c.pool_first;
    if (o.kind != DecisionKind::Offer || d.kind != DecisionKind::Ack || !d.persist ||
        off >= static_cast<std::uint32_t>(kPool) || used[off]) {
      if (++failures < 5) ADD_FAILURE() << "client " << i << ": " << d.reason << " " << d.message;
      continue;
    }
    used[off] = true;
  }
  EXPECT_EQ(failures, 0);
  const Decision last = a->handle(discover(mac(kPool)), T0);
  EXPECT_DECISION(last, Ignore, "exhausted");
  const auto s = a->stats(T0);
  EXPECT_EQ(s.pool_size, static_cast<std::size_t>(kPool));
  EXPECT_EQ(s.bound, static_cast<std::size_t>(kPool));
  EXPECT_EQ(s.free, 0u);
  EXPECT_EQ(a->leases().size(), static_cast<std::size_t>(kPool));
}

// ---- configuration -----------------------------------------------------------------------------

TEST(DhcpAllocator, RejectsBadConfiguration) {
  struct Case {
    const char* what;
    void (*edit)(AllocatorConfig&);
    const char* says;
  };
  const Case cases[] = {
      {"no segment", [](AllocatorConfig& c) { c.segment.clear(); }, "no segment"},
      {"host bits", [](AllocatorConfig& c) { c.network = lab(5); }, "host bits"},
      {"prefix", [](AllocatorConfig& c) { c.prefix = 33; }, "prefix"},
      {"pool order", [](AllocatorConfig& c) { std::swap(c.pool_first, c.pool_last); }, "ends"},
      {"pool outside", [](AllocatorConfig& c) { c.pool_last = ip4(10, 0, 1, 5); }, "not inside"},
      {"pool network", [](AllocatorConfig& c) { c.pool_first = lab(0); }, "broadcast"},
      {"pool broadcast", [](AllocatorConfig& c) { c.pool_last = lab(255); }, "broadcast"},
      {"no server", [](AllocatorConfig& c) { c.server_address = 0; }, "server address"},
      {"lease time", [](AllocatorConfig& c) { c.lease_time_ms = 0; }, "lease time"},
      {"bad mac", [](AllocatorConfig& c) { c.reservations[0].mac = "0011.2233.4455"; }, "bad MAC"},
      {"res outside", [](AllocatorConfig& c) { c.reservations[0].ip = ip4(10, 0, 1, 5); },
       "not in 10.0.0.0/24"},
      {"res server", [](AllocatorConfig& c) { c.reservations[0].ip = kServer; }, "server's own"},
      {"dup mac",
       [](AllocatorConfig& c) {
         c.reservations.push_back({kPhone, lab(51), "again", ""});
       },
       "MAC reserved twice"},
      {"dup ip",
       [](AllocatorConfig& c) {
         c.reservations.push_back({"00:11:22:33:44:99", lab(50), "again", ""});
       },
       "reserved twice"},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.what);
    auto c = base_config();
    tc.edit(c);
    auto a = Allocator::create(c, {}, T0);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code(), Errc::InvalidInput);
    EXPECT_NE(a.error().message().find(tc.says), std::string::npos) << a.error().message();
    EXPECT_NE(a.error().message().find("dhcp segment"), std::string::npos);
  }
}

TEST(DhcpAllocator, NamesOfKindsAndTypes) {
  EXPECT_EQ(decision_kind_name(DecisionKind::Nak), "nak");
  EXPECT_EQ(query_type_name(QueryType::Inform), "inform");
}

}  // namespace
}  // namespace labctl::dhcp
