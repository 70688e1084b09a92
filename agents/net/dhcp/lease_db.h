// The DHCP lease database: one SQLite table, `dhcp_leases`, in the controller's state database.
//
// Every write is durable when the call returns (WAL, synchronous=FULL): the server commits a lease
// before the DHCPACK that announces it leaves, so a crash never forgets an address it handed out.
// Writes are batched two ways. commit() takes a batch from a single writer (the server's writer
// thread passes every lease that accumulated while the previous commit was flushing, then sends
// those ACKs). commit_one() groups concurrent callers itself: each waits for its own lease to be on
// disk, but one fsync serves every call that arrived while the previous one was flushing.
//
// The table shares state.db with the controller's StateStore (its own name, created with CREATE
// TABLE IF NOT EXISTS, never touching the store's schema version), so both can be open at once;
// SQLite's busy timeout serialises their writers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

struct sqlite3;

namespace labctl::dhcp {

enum class LeaseState {
  Bound,     // the client holds the address until expires_at
  Released,  // the client gave it back (DHCPRELEASE) at expires_at; free, remembered for it
  Declined,  // a client found it in use (DHCPDECLINE); quarantined until expires_at
  Expired,   // the lease ran out at expires_at without a renewal; free, remembered for the client
};
std::string_view lease_state_name(LeaseState s);  // "bound", "released", "declined", "expired"
std::optional<LeaseState> lease_state_from_name(std::string_view s);

// One row: the latest state of one address on one segment.
struct Lease {
  std::string segment;
  std::uint32_t ip = 0;    // host byte order; unique per segment
  std::string client_key;  // see make_client_key
  std::string mac;         // "aa:bb:cc:dd:ee:ff"
  std::string hostname;    // option 12 as sent, "" when none
  LeaseState state = LeaseState::Bound;
  std::int64_t starts_at = 0;   // unix ms: start of the current lease period (the last ACK)
  std::int64_t expires_at = 0;  // unix ms: see LeaseState
  std::int64_t updated_at = 0;  // unix ms: when this row last changed

  // Bound and not yet expired at `now`.
  bool active(std::int64_t now) const { return state == LeaseState::Bound && expires_at > now; }
  bool operator==(const Lease&) const = default;
};

// How leases name a client: the client identifier (option 61) as lower-case hex when the client
// sent one (RFC 2132 9.14: it then identifies the client, not chaddr), else "hw:" + mac.
std::string make_client_key(std::span<const std::uint8_t> client_id, std::string_view mac);

// The file leases live in by default: the controller's state database in `state_dir`.
inline std::filesystem::path default_lease_db_path(const std::filesystem::path& state_dir) {
  return state_dir / "state.db";
}

class LeaseDb {
 public:
  // Opens `file` (creating its directory with 0700 and the file with 0600 when missing), switches
  // it to WAL, synchronous=FULL, and creates the dhcp_leases table when absent.
  static Result<std::unique_ptr<LeaseDb>> open(const std::filesystem::path& file);
  // In-memory database, for tests (nothing is durable).
  static Result<std::unique_ptr<LeaseDb>> open_memory();
  ~LeaseDb();
  LeaseDb(const LeaseDb&) = delete;
  LeaseDb& operator=(const LeaseDb&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Upserts every lease (keyed by segment and ip) in one transaction; all or nothing, durable when
  // it returns. InvalidInput (and nothing written) when a lease has no segment or client key.
  // Thread-safe; an empty batch is a no-op.
  Status commit(const std::vector<Lease>& batch);
  // Upserts one lease, sharing a transaction with concurrent callers (group commit). Durable when
  // it returns; a failure of the shared transaction fails every caller in it.
  Status commit_one(const Lease& lease);

  // Every row of `segment`, by ip; every row of every segment, by segment then ip.
  Result<std::vector<Lease>> load(std::string_view segment);
  Result<std::vector<Lease>> load_all();

  // Deletes the row of `ip` on `segment`; NotFound when there is none.
  Status remove(std::string_view segment, std::uint32_t ip);

  // Transactions committed by commit() and commit_one() through this connection (for tests and
  // metrics: rows written / transactions = how well writes were grouped).
  std::uint64_t transactions() const;

 private:
  LeaseDb(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}
  Status create_table();
  Status write(std::span<const Lease* const> rows);  // one transaction
  Result<std::vector<Lease>> select(std::string_view sql, std::optional<std::string_view> segment);

  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
  struct Pending;
  std::mutex gc_mu_;
  std::condition_variable gc_cv_;
  std::vector<Pending*> gc_queue_;
  bool gc_leader_ = false;
  mutable std::mutex stats_mu_;
  std::uint64_t transactions_ = 0;
};

}  // namespace labctl::dhcp
