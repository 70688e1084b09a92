#include "agents/net/dhcp/allocator.h"

#include <algorithm>
#include <iterator>
#include <limits>

namespace labctl::dhcp {
namespace {

std::string ip_text(std::uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
         std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

std::uint32_t netmask(int prefix) {
  return prefix <= 0 ? 0u : ~std::uint32_t{0} << (32 - prefix);
}

// "aa:bb:cc:dd:ee:ff" in either case -> lower case; nullopt for anything else.
std::optional<std::string> canonical_mac(std::string_view s) {
  if (s.size() != 17) return std::nullopt;
  std::string out(s);
  for (std::size_t i = 0; i < out.size(); ++i) {
    char& c = out[i];
    if (i % 3 == 2) {
      if (c != ':') return std::nullopt;
      continue;
    }
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  }
  return out;
}

std::string who(const Query& q) {
  std::string s = q.mac.empty() ? q.client_key : q.mac;
  if (!q.hostname.empty()) s += " (" + q.hostname + ")";
  return s;
}

std::string res_text(const Reservation& r) {
  return r.name.empty() ? r.mac : r.mac + " (" + r.name + ")";
}

Decision& ignore(Decision& d, std::string reason, std::string message) {
  d.kind = DecisionKind::Ignore;
  d.yiaddr = 0;
  d.lease_ms = 0;
  d.reason = std::move(reason);
  d.message = std::move(message);
  return d;
}

Decision& nak(Decision& d, std::string reason, std::string message) {
  d.kind = DecisionKind::Nak;
  d.yiaddr = 0;
  d.lease_ms = 0;
  d.reason = std::move(reason);
  d.message = std::move(message);
  return d;
}

}  // namespace

std::string_view query_type_name(QueryType t) {
  switch (t) {
    case QueryType::Discover:
      return "discover";
    case QueryType::Request:
      return "request";
    case QueryType::Decline:
      return "decline";
    case QueryType::Release:
      return "release";
    case QueryType::Inform:
      return "inform";
  }
  return "discover";
}

std::string_view decision_kind_name(DecisionKind k) {
  switch (k) {
    case DecisionKind::Offer:
      return "offer";
    case DecisionKind::Ack:
      return "ack";
    case DecisionKind::Nak:
      return "nak";
    case DecisionKind::Ignore:
      return "ignore";
  }
  return "ignore";
}

bool AllocatorConfig::in_subnet(std::uint32_t ip) const {
  const std::uint32_t m = netmask(prefix);
  return (ip & m) == (network & m);
}

bool AllocatorConfig::in_pool(std::uint32_t ip) const {
  if (pool_first == 0 && pool_last == 0) return false;
  return ip >= pool_first && ip <= pool_last;
}

// ---- Ranges ------------------------------------------------------------------------------------

void Allocator::Ranges::add_range(std::uint32_t first, std::uint32_t last) {
  if (r_.empty()) {  // the pool at start: one range
    r_.emplace(first, last);
    count_ += static_cast<std::size_t>(last - first) + 1;
    return;
  }
  for (std::uint64_t a = first; a <= last; ++a)
    insert(static_cast<std::uint32_t>(a));
}

bool Allocator::Ranges::contains(std::uint32_t a) const {
  auto it = r_.upper_bound(a);
  if (it == r_.begin()) return false;
  --it;
  return a <= it->second;
}

bool Allocator::Ranges::insert(std::uint32_t a) {
  if (contains(a)) return false;
  auto next = r_.upper_bound(a);
  auto prev = next == r_.begin() ? r_.end() : std::prev(next);
  const bool join_prev = prev != r_.end() && a != 0 && prev->second == a - 1;
  const bool join_next =
      next != r_.end() && a != std::numeric_limits<std::uint32_t>::max() && next->first == a + 1;
  if (join_prev && join_next) {
    prev->second = next->second;
    r_.erase(next);
  } else if (join_prev) {
    prev->second = a;
  } else if (join_next) {
    const std::uint32_t last = next->second;
    r_.erase(next);
    r_.emplace(a, last);
  } else {
    r_.emplace(a, a);
  }
  ++count_;
  return true;
}

bool Allocator::Ranges::erase(std::uint32_t a) {
  auto it = r_.upper_bound(a);
  if (it == r_.begin()) return false;
  --it;
  if (a > it->second) return false;
  const std::uint32_t first = it->first;
  const std::uint32_t last = it->second;
  r_.erase(it);
  if (first < a) r_.emplace(first, a - 1);
  if (a < last) r_.emplace(a + 1, last);
  --count_;
  return true;
}

std::optional<std::uint32_t> Allocator::Ranges::first_from(std::uint32_t a) const {
  auto it = r_.upper_bound(a);
  if (it != r_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= a) return a;
  }
  if (it != r_.end()) return it->first;
  return std::nullopt;
}

// ---- construction ------------------------------------------------------------------------------

Result<std::unique_ptr<Allocator>> Allocator::create(Config config, const std::vector<Lease>& rows,
                                                     std::int64_t now) {
  const std::string segment = config.segment;
  auto bad = [&](const std::string& what) {
    return fail(Errc::InvalidInput, "dhcp segment '" + segment + "': " + what);
  };
  if (config.segment.empty()) return bad("no segment name");
  if (config.prefix < 0 || config.prefix > 32)
    return bad("prefix /" + std::to_string(config.prefix) + " is not 0..32");
  const std::uint32_t mask = netmask(config.prefix);
  if ((config.network & ~mask) != 0)
    return bad(ip_text(config.network) + "/" + std::to_string(config.prefix) +
               " has host bits set");
  const std::uint32_t broadcast = config.network | ~mask;
  const std::string subnet = ip_text(config.network) + "/" + std::to_string(config.prefix);
  // Addresses that no client may have: the network and broadcast addresses (not on /31, /32).
  auto special = [&](std::uint32_t ip) {
    return config.prefix <= 30 && (ip == config.network || ip == broadcast);
  };
  const bool has_pool = !(config.pool_first == 0 && config.pool_last == 0);
  if (has_pool) {
    const std::string pool = ip_text(config.pool_first) + "-" + ip_text(config.pool_last);
    if (config.pool_first > config.pool_last) return bad("pool " + pool + " ends before it starts");
    if (!config.in_subnet(config.pool_first) || !config.in_subnet(config.pool_last))
      return bad("pool " + pool + " is not inside " + subnet);
    if (special(config.pool_first) || special(config.pool_last))
      return bad("pool " + pool + " includes the network or broadcast address of " + subnet);
  }
  if (config.server_address == 0) return bad("no server address (option 54)");
  if (config.lease_time_ms <= 0) return bad("lease time must be positive");
  if (config.offer_hold_ms <= 0) return bad("offer hold time must be positive");
  if (config.decline_quarantine_ms < 0) return bad("decline quarantine time must not be negative");
  for (auto& r : config.reservations) {
    auto mac = canonical_mac(r.mac);
    if (!mac) return bad("reservation '" + r.name + "': bad MAC '" + r.mac + "'");
    r.mac = *mac;
    const std::string label = "reservation " + (r.name.empty() ? r.mac : r.name);
    if (!config.in_subnet(r.ip)) return bad(label + ": " + ip_text(r.ip) + " is not in " + subnet);
    if (special(r.ip))
      return bad(label + ": " + ip_text(r.ip) + " is the network or broadcast address");
    if (r.ip == config.server_address)
      return bad(label + ": " + ip_text(r.ip) + " is the server's own address");
  }

  std::unique_ptr<Allocator> a(new Allocator(std::move(config)));
  for (const auto& r : a->cfg_.reservations) {
    const std::string label = "reservation " + (r.name.empty() ? r.mac : r.name);
    if (!a->res_by_mac_.emplace(r.mac, &r).second) return bad(label + ": MAC reserved twice");
    if (!a->res_by_ip_.emplace(r.ip, &r).second)
      return bad(label + ": " + ip_text(r.ip) + " reserved twice");
  }
  if (has_pool) {
    a->never_.add_range(a->cfg_.pool_first, a->cfg_.pool_last);
    a->never_.erase(a->cfg_.server_address);
    for (const auto& r : a->cfg_.reservations)
      a->never_.erase(r.ip);
  }
  a->pool_size_ = a->never_.size();
  a->cursor_ = a->cfg_.pool_first;

  for (const auto& l : rows)
    if (l.segment == a->cfg_.segment) {
      a->unfile(l.ip);
      a->rows_[l.ip] = l;
    }
  for (const auto& [ip, l] : a->rows_) {
    a->file(ip, now);
    a->index(l, now);
  }
  return a;
}

// ---- bookkeeping -------------------------------------------------------------------------------

bool Allocator::dynamic(std::uint32_t ip) const {
  return cfg_.in_pool(ip) && ip != cfg_.server_address && !res_by_ip_.contains(ip);
}

void Allocator::file(std::uint32_t ip, std::int64_t now) {
  if (auto o = offers_.find(ip); o != offers_.end()) {
    offered_.emplace(o->second.until, ip);
    filed_[ip] = {Bucket::Offer, o->second.until};
    return;
  }
  auto r = rows_.find(ip);
  if (r == rows_.end()) {
    if (dynamic(ip)) never_.insert(ip);
    return;
  }
  const Lease& l = r->second;
  switch (l.state) {
    case LeaseState::Bound:
      bound_.emplace(l.expires_at, ip);
      filed_[ip] = {Bucket::Bound, l.expires_at};
      return;
    case LeaseState::Declined:
      if (l.expires_at > now) {
        quarantine_.emplace(l.expires_at, ip);
        filed_[ip] = {Bucket::Quarantine, l.expires_at};
        return;
      }
      [[fallthrough]];
    case LeaseState::Released:
    case LeaseState::Expired:
      // Free since the lease ended (or the quarantine did): the oldest is handed out first.
      if (dynamic(ip)) {
        free_.emplace(l.expires_at, ip);
        filed_[ip] = {Bucket::Free, l.expires_at};
      }
      return;
  }
}

void Allocator::unfile(std::uint32_t ip) {
  auto f = filed_.find(ip);
  if (f == filed_.end()) {
    never_.erase(ip);
    return;
  }
  const std::pair<std::int64_t, std::uint32_t> key{f->second.key, ip};
  switch (f->second.bucket) {
    case Bucket::Free:
      free_.erase(key);
      break;
    case Bucket::Bound:
      bound_.erase(key);
      break;
    case Bucket::Quarantine:
      quarantine_.erase(key);
      break;
    case Bucket::Offer:
      offered_.erase(key);
      break;
  }
  filed_.erase(f);
}

void Allocator::index(const Lease& row, std::int64_t now) {
  if (row.state == LeaseState::Declined) return;
  // Keep the better row per client and per MAC: an active lease over an inactive one, else the
  // newer.
  auto better = [&](std::uint32_t current, auto same_owner) {
    auto it = rows_.find(current);
    if (it == rows_.end() || !same_owner(it->second)) return true;
    const Lease& cur = it->second;
    if (row.active(now) != cur.active(now)) return row.active(now);
    return row.updated_at >= cur.updated_at;
  };
  auto c = by_client_.find(row.client_key);
  if (c == by_client_.end() ||
      better(c->second, [&](const Lease& l) { return l.client_key == row.client_key; }))
    by_client_[row.client_key] = row.ip;
  if (row.mac.empty()) return;
  auto m = by_mac_.find(row.mac);
  if (m == by_mac_.end() || better(m->second, [&](const Lease& l) { return l.mac == row.mac; }))
    by_mac_[row.mac] = row.ip;
}

void Allocator::reap(std::int64_t now) {
  // Offers past their hold time give their address back.
  while (!offered_.empty() && offered_.begin()->first <= now) {
    const std::uint32_t ip = offered_.begin()->second;
    drop_offer(ip, now);
  }
  // Bound leases past expiry become Expired (free, still remembered for their client).
  while (!bound_.empty() && bound_.begin()->first <= now) {
    const std::uint32_t ip = bound_.begin()->second;
    unfile(ip);
    Lease& l = rows_[ip];
    l.state = LeaseState::Expired;
    l.updated_at = now;
    pending_.push_back(l);
    file(ip, now);
  }
  // Quarantines that ended make their addresses free (file() sees expires_at <= now).
  while (!quarantine_.empty() && quarantine_.begin()->first <= now) {
    const std::uint32_t ip = quarantine_.begin()->second;
    unfile(ip);
    file(ip, now);
  }
}

const Reservation* Allocator::reservation_for_mac(std::string_view mac) const {
  if (mac.empty()) return nullptr;
  auto it = res_by_mac_.find(std::string(mac));
  return it == res_by_mac_.end() ? nullptr : it->second;
}

const Reservation* Allocator::reservation_at(std::uint32_t ip) const {
  auto it = res_by_ip_.find(ip);
  return it == res_by_ip_.end() ? nullptr : it->second;
}

bool Allocator::quarantined(std::uint32_t ip, std::int64_t now) const {
  auto r = rows_.find(ip);
  return r != rows_.end() && r->second.state == LeaseState::Declined && r->second.expires_at > now;
}

// The client's reservation unless its address is quarantined (a DECLINE said something else
// answers there): then the client is served from the pool until the quarantine ends.
const Reservation* Allocator::usable_reservation(std::string_view mac, std::int64_t now) const {
  const Reservation* r = reservation_for_mac(mac);
  return r != nullptr && !quarantined(r->ip, now) ? r : nullptr;
}

Allocator::Avail Allocator::available(std::uint32_t ip, const std::string& key,
                                      std::string_view mac, std::int64_t now) const {
  if (!cfg_.in_subnet(ip)) return Avail::NotInSubnet;
  if (ip == cfg_.server_address) return Avail::ServerAddress;
  if (const Reservation* r = reservation_at(ip)) {
    if (r->mac != mac) return Avail::ReservedOther;
    // A reservation wins over any other client's lease or offer on its address.
    return quarantined(ip, now) ? Avail::Quarantined : Avail::Free;
  }
  if (!cfg_.in_pool(ip)) return Avail::NotInPool;
  if (quarantined(ip, now)) return Avail::Quarantined;
  if (auto o = offers_.find(ip);
      o != offers_.end() && o->second.client_key != key && o->second.until > now)
    return Avail::InUse;
  if (auto r = rows_.find(ip);
      r != rows_.end() && r->second.active(now) && r->second.client_key != key)
    return Avail::InUse;
  return Avail::Free;
}

const Lease* Allocator::client_record(const std::string& key) const {
  auto c = by_client_.find(key);
  if (c == by_client_.end()) return nullptr;
  auto r = rows_.find(c->second);
  if (r == rows_.end() || r->second.client_key != key || r->second.state == LeaseState::Declined)
    return nullptr;
  return &r->second;
}

std::optional<std::uint32_t> Allocator::next_free() {
  // Never-used addresses first, round robin from the cursor, so an address that just came back
  // (an offer not taken up) is not handed straight to the next client.
  if (never_.size() > 0) {
    auto a = never_.first_from(cursor_);
    if (!a) a = never_.first_from(0);
    if (a) {
      cursor_ = *a + 1;  // wraps to 0 after 255.255.255.255, which first_from handles
      return a;
    }
  }
  // Then the address that has been free longest: a released or expired address stays with its
  // last client as long as possible.
  if (!free_.empty()) return free_.begin()->second;
  return std::nullopt;
}

void Allocator::drop_offer(std::uint32_t ip, std::int64_t now) {
  auto o = offers_.find(ip);
  if (o == offers_.end()) return;
  unfile(ip);
  if (auto c = offer_by_client_.find(o->second.client_key);
      c != offer_by_client_.end() && c->second == ip)
    offer_by_client_.erase(c);
  offers_.erase(o);
  file(ip, now);
}

void Allocator::drop_client_offer(const std::string& key, std::int64_t now) {
  auto c = offer_by_client_.find(key);
  if (c == offer_by_client_.end()) return;
  const std::uint32_t ip = c->second;
  drop_offer(ip, now);
}

Decision& Allocator::offer(Decision& d, std::uint32_t ip, const Query& q, const std::string& key,
                           std::int64_t now, std::string reason, std::string message) {
  if (auto c = offer_by_client_.find(key); c != offer_by_client_.end() && c->second != ip)
    drop_offer(c->second, now);
  drop_offer(ip, now);  // another client's (only the reserved owner may take it over)
  unfile(ip);
  offers_[ip] = Offer{key, q.mac, now + cfg_.offer_hold_ms, reason};
  offer_by_client_[key] = ip;
  file(ip, now);
  d.kind = DecisionKind::Offer;
  d.yiaddr = ip;
  d.lease_ms = cfg_.lease_time_ms;
  d.reason = std::move(reason);
  d.message = std::move(message);
  return d;
}

Decision& Allocator::ack(Decision& d, std::uint32_t ip, const Query& q, const std::string& key,
                         std::int64_t now, std::string reason, std::string message) {
  drop_client_offer(key, now);
  drop_offer(ip, now);
  // The client moves: its lease on another address ends now.
  if (const Lease* old = client_record(key);
      old != nullptr && old->ip != ip && old->state == LeaseState::Bound) {
    const std::uint32_t oip = old->ip;
    unfile(oip);
    Lease& o = rows_[oip];
    o.state = LeaseState::Released;
    o.expires_at = std::min(o.expires_at, now);
    o.updated_at = now;
    file(oip, now);
    d.persist_also.push_back(o);
  }
  unfile(ip);
  Lease& row = rows_[ip];
  std::string hostname = q.hostname;
  if (hostname.empty() && row.client_key == key) hostname = row.hostname;
  row = Lease{.segment = cfg_.segment,
              .ip = ip,
              .client_key = key,
              .mac = q.mac,
              .hostname = std::move(hostname),
              .state = LeaseState::Bound,
              .starts_at = now,
              .expires_at = now + cfg_.lease_time_ms,
              .updated_at = now};
  file(ip, now);
  by_client_[key] = ip;
  if (!q.mac.empty()) by_mac_[q.mac] = ip;
  d.kind = DecisionKind::Ack;
  d.yiaddr = ip;
  d.lease_ms = cfg_.lease_time_ms;
  d.persist = row;
  d.reason = std::move(reason);
  d.message = std::move(message);
  return d;
}

Decision& Allocator::nak_for(Decision& d, Avail why, std::uint32_t ip) {
  const std::string a = ip_text(ip);
  switch (why) {
    case Avail::NotInSubnet:
      return nak(d, "wrong-subnet",
                 a + " is not in " + ip_text(cfg_.network) + "/" + std::to_string(cfg_.prefix));
    case Avail::ServerAddress:
      return nak(d, "not-your-lease", a + " is the server's own address");
    case Avail::ReservedOther: {
      const Reservation* r = reservation_at(ip);
      return nak(d, "reserved-for-other",
                 a + " is reserved for " + (r != nullptr ? res_text(*r) : std::string("another")));
    }
    case Avail::NotInPool:
      return nak(d, "not-in-pool", a + " is outside the pool and not reserved for this client");
    case Avail::Quarantined:
      return nak(d, "quarantined", a + " is quarantined after a DECLINE");
    case Avail::InUse:
    case Avail::Free:
      break;
  }
  return nak(d, "not-your-lease", a + " is held by another client");
}

// ---- the protocol ------------------------------------------------------------------------------

Decision Allocator::handle(const Query& query, std::int64_t now) {
  std::lock_guard lock(mu_);
  Decision d;
  reap(now);
  d.persist_also = std::move(pending_);
  pending_.clear();

  Query q = query;
  if (auto m = canonical_mac(q.mac)) q.mac = std::move(*m);
  if (q.client_key.empty() && !q.mac.empty()) q.client_key = "hw:" + q.mac;
  if (q.client_key.empty())
    return ignore(d, "malformed", "no client identifier and no hardware address");
  if (q.giaddr != 0 && !cfg_.in_subnet(q.giaddr))
    return ignore(
        d, "wrong-subnet",
        "relayed through " + ip_text(q.giaddr) + ", which is not on segment " + cfg_.segment);
  if (const Reservation* r = reservation_for_mac(q.mac)) d.reservation = *r;

  switch (q.type) {
    case QueryType::Discover:
      return discover(q, now, std::move(d));
    case QueryType::Request:
      return request(q, now, std::move(d));
    case QueryType::Decline:
      return decline(q, now, std::move(d));
    case QueryType::Release:
      return release(q, now, std::move(d));
    case QueryType::Inform:
      if (cfg_.deny_unknown && !d.reservation)
        return ignore(d, "unknown-client-denied", who(q) + " has no reservation");
      if (q.ciaddr != 0 && !cfg_.in_subnet(q.ciaddr))
        return ignore(
            d, "wrong-subnet",
            "INFORM from " + ip_text(q.ciaddr) + ", which is not on segment " + cfg_.segment);
      d.kind = DecisionKind::Ack;
      d.reason = "inform";
      d.message = "configuration for " + who(q) + " at " + ip_text(q.ciaddr);
      return d;
  }
  return ignore(d, "malformed", "unknown query type");
}

Decision Allocator::discover(const Query& q, std::int64_t now, Decision d) {
  const std::string& key = q.client_key;
  const Reservation* res = reservation_for_mac(q.mac);
  if (cfg_.deny_unknown && res == nullptr)
    return ignore(d, "unknown-client-denied",
                  who(q) + " has no reservation and segment " + cfg_.segment + " denies unknown");
  if (res != nullptr) {
    if (!quarantined(res->ip, now))
      return offer(d, res->ip, q, key, now, "reserved",
                   ip_text(res->ip) + " is reserved for " + res_text(*res));
    // Its address was DECLINEd: fall through to the pool for the quarantine's length.
  }
  auto free_for_client = [&](std::uint32_t ip) {
    return available(ip, key, q.mac, now) == Avail::Free;
  };
  if (auto o = offer_by_client_.find(key);
      o != offer_by_client_.end() && free_for_client(o->second))
    return offer(d, o->second, q, key, now, "offered",
                 ip_text(o->second) + " again for " + who(q) + " (offer still held)");
  if (const Lease* rec = client_record(key); rec != nullptr && free_for_client(rec->ip)) {
    const bool current = rec->active(now);
    return offer(d, rec->ip, q, key, now, current ? "current" : "previous",
                 ip_text(rec->ip) +
                     (current ? ", its current lease, " : ", its previous address, ") + "for " +
                     who(q));
  }
  if (q.requested_ip != 0 && free_for_client(q.requested_ip))
    return offer(d, q.requested_ip, q, key, now, "requested",
                 ip_text(q.requested_ip) + " as requested by " + who(q));
  if (auto ip = next_free())
    return offer(d, *ip, q, key, now, "pool", ip_text(*ip) + " from the pool for " + who(q));
  std::string msg = "no free address for " + who(q);
  if (pool_size_ == 0) {
    msg += ": segment " + cfg_.segment + " has no pool";
  } else {
    msg += " in pool " + ip_text(cfg_.pool_first) + "-" + ip_text(cfg_.pool_last) + " (" +
           std::to_string(pool_size_) + " addresses: " + std::to_string(bound_.size()) +
           " leased, " + std::to_string(offers_.size()) + " offered, " +
           std::to_string(quarantine_.size()) + " quarantined)";
  }
  return ignore(d, "exhausted", std::move(msg));
}

Decision Allocator::request(const Query& q, std::int64_t now, Decision d) {
  const std::string& key = q.client_key;
  const Reservation* res = reservation_for_mac(q.mac);
  const Reservation* ures = usable_reservation(q.mac, now);

  if (q.server_id != 0) {
    // SELECTING: the client answers an offer, ours or another server's.
    if (q.server_id != cfg_.server_address) {
      drop_client_offer(key, now);
      return ignore(d, "other-server",
                    who(q) + " chose server " + ip_text(q.server_id) + "; our offer is withdrawn");
    }
    if (cfg_.deny_unknown && res == nullptr)
      return ignore(d, "unknown-client-denied", who(q) + " has no reservation");
    const std::uint32_t ip = q.requested_ip != 0 ? q.requested_ip : q.ciaddr;
    if (ip == 0) return ignore(d, "malformed", "REQUEST with a server identifier but no address");
    if (ures != nullptr && ip != ures->ip)
      return nak(d, "reservation-moved",
                 who(q) + " asked for " + ip_text(ip) + " but its reserved address is " +
                     ip_text(ures->ip));
    if (auto a = available(ip, key, q.mac, now); a != Avail::Free) return nak_for(d, a, ip);
    if (ures != nullptr)
      return ack(d, ip, q, key, now, "reserved", ip_text(ip) + " for " + res_text(*ures));
    return ack(d, ip, q, key, now, "selected", ip_text(ip) + " for " + who(q));
  }

  // INIT-REBOOT (requested address, no ciaddr) or RENEWING/REBINDING (ciaddr).
  const bool renewing = q.ciaddr != 0;
  const std::uint32_t ip = renewing ? q.ciaddr : q.requested_ip;
  if (ip == 0)
    return ignore(d, "malformed", "REQUEST without server identifier, requested address or ciaddr");
  if (!cfg_.in_subnet(ip)) return nak_for(d, Avail::NotInSubnet, ip);
  if (cfg_.deny_unknown && res == nullptr)
    return nak(d, "unknown-client-denied", who(q) + " has no reservation");
  if (ures != nullptr) {
    if (ip == ures->ip)
      return ack(d, ip, q, key, now, "reserved", ip_text(ip) + " for " + res_text(*ures));
    return nak(
        d, "reservation-moved",
        who(q) + " uses " + ip_text(ip) + " but its reserved address is " + ip_text(ures->ip));
  }
  if (const Reservation* r = reservation_at(ip); r != nullptr && r->mac != q.mac)
    return nak_for(d, Avail::ReservedOther, ip);

  const Lease* rec = client_record(key);
  if (rec != nullptr && rec->ip == ip) {
    if (auto a = available(ip, key, q.mac, now); a != Avail::Free) return nak_for(d, a, ip);
    return ack(d, ip, q, key, now, renewing ? "renewed" : "rebooted",
               ip_text(ip) + (renewing ? " renewed for " : " confirmed for ") + who(q));
  }
  if (!cfg_.authoritative) {
    if (rec == nullptr)
      return ignore(d, "no-record", "no record of " + who(q) + " (not authoritative)");
    return nak(d, "not-your-lease",
               who(q) + " asked for " + ip_text(ip) + " but its address is " + ip_text(rec->ip));
  }
  if (rec != nullptr && rec->active(now))
    return nak(d, "not-your-lease",
               who(q) + " asked for " + ip_text(ip) + " but holds " + ip_text(rec->ip));
  if (auto a = available(ip, key, q.mac, now); a != Avail::Free) return nak_for(d, a, ip);
  return ack(d, ip, q, key, now, renewing ? "recovered" : "requested",
             ip_text(ip) + " (free, no record) for " + who(q));
}

Decision Allocator::decline(const Query& q, std::int64_t now, Decision d) {
  const std::string& key = q.client_key;
  const std::uint32_t ip = q.requested_ip != 0 ? q.requested_ip : q.ciaddr;
  if (ip == 0) return ignore(d, "malformed", "DECLINE without an address");
  // Only the client the address was offered or leased to may take it out of use.
  bool ours = false;
  if (auto o = offers_.find(ip); o != offers_.end() && o->second.client_key == key) ours = true;
  if (auto r = rows_.find(ip);
      r != rows_.end() && r->second.client_key == key && r->second.state == LeaseState::Bound)
    ours = true;
  if (!ours)
    return ignore(d, "not-your-lease",
                  who(q) + " declined " + ip_text(ip) + ", which was not offered or leased to it");
  drop_offer(ip, now);
  unfile(ip);
  Lease& row = rows_[ip];
  std::string hostname = row.client_key == key && q.hostname.empty() ? row.hostname : q.hostname;
  row = Lease{.segment = cfg_.segment,
              .ip = ip,
              .client_key = key,
              .mac = q.mac,
              .hostname = std::move(hostname),
              .state = LeaseState::Declined,
              .starts_at = now,
              .expires_at = now + cfg_.decline_quarantine_ms,
              .updated_at = now};
  file(ip, now);
  if (auto c = by_client_.find(key); c != by_client_.end() && c->second == ip) by_client_.erase(c);
  if (auto m = by_mac_.find(q.mac); m != by_mac_.end() && m->second == ip) by_mac_.erase(m);
  d.persist = row;
  return ignore(d, "declined",
                who(q) + " found " + ip_text(ip) + " in use; quarantined for " +
                    std::to_string(cfg_.decline_quarantine_ms / 1000) + " s");
}

Decision Allocator::release(const Query& q, std::int64_t now, Decision d) {
  const std::string& key = q.client_key;
  drop_client_offer(key, now);
  const std::uint32_t ip = q.ciaddr;
  auto r = rows_.find(ip);
  if (ip == 0 || r == rows_.end() || r->second.client_key != key ||
      r->second.state != LeaseState::Bound)
    return ignore(d, "not-your-lease",
                  who(q) + " released " + ip_text(ip) + ", which it does not hold");
  unfile(ip);
  Lease& row = r->second;
  row.state = LeaseState::Released;
  row.expires_at = std::min(row.expires_at, now);
  row.updated_at = now;
  file(ip, now);
  d.persist = row;
  return ignore(d, "released", who(q) + " released " + ip_text(ip));
}

// ---- queries -----------------------------------------------------------------------------------

std::vector<Lease> Allocator::expire(std::int64_t now) {
  std::lock_guard lock(mu_);
  reap(now);
  std::vector<Lease> out = std::move(pending_);
  pending_.clear();
  return out;
}

std::vector<Lease> Allocator::leases() const {
  std::lock_guard lock(mu_);
  std::vector<Lease> out;
  out.reserve(rows_.size());
  for (const auto& [ip, l] : rows_)
    out.push_back(l);
  std::sort(out.begin(), out.end(), [](const Lease& a, const Lease& b) { return a.ip < b.ip; });
  return out;
}

std::optional<Lease> Allocator::by_ip(std::uint32_t ip) const {
  std::lock_guard lock(mu_);
  auto r = rows_.find(ip);
  if (r == rows_.end()) return std::nullopt;
  return r->second;
}

std::optional<Lease> Allocator::by_mac(std::string_view mac) const {
  std::lock_guard lock(mu_);
  auto m = by_mac_.find(std::string(mac));
  if (m == by_mac_.end()) return std::nullopt;
  auto r = rows_.find(m->second);
  if (r == rows_.end() || r->second.mac != mac) return std::nullopt;
  return r->second;
}

Allocator::Stats Allocator::stats(std::int64_t now) {
  std::lock_guard lock(mu_);
  reap(now);
  Stats s;
  s.pool_size = pool_size_;
  for (const auto& [ip, l] : rows_)
    if (l.active(now)) ++s.bound;
  s.offered = offers_.size();
  s.quarantined = quarantine_.size();
  s.free = never_.size() + free_.size();
  return s;
}

}  // namespace labctl::dhcp
