#include "agents/net/dhcp/lease_db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "common/sqlite.h"

namespace labctl::dhcp {
namespace {

// The table is created when missing and never altered in place: a later change adds columns with
// defaults (ALTER TABLE ... ADD COLUMN after checking PRAGMA table_info), so older rows stay
// readable and an older labctl ignores the new columns.
constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS dhcp_leases (
  segment TEXT NOT NULL,
  ip INTEGER NOT NULL CHECK (ip BETWEEN 0 AND 4294967295),
  client_key TEXT NOT NULL,
  mac TEXT NOT NULL DEFAULT '',
  hostname TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL CHECK (state IN ('bound', 'released', 'declined', 'expired')),
  starts_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (segment, ip)
) WITHOUT ROWID;
)sql";

constexpr std::string_view kCols =
    "segment, ip, client_key, mac, hostname, state, starts_at, expires_at, updated_at";

constexpr std::string_view kUpsert =
    "INSERT INTO dhcp_leases (segment, ip, client_key, mac, hostname, state, starts_at, "
    "expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (segment, ip) DO "
    "UPDATE SET client_key = excluded.client_key, mac = excluded.mac, hostname = "
    "excluded.hostname, state = excluded.state, starts_at = excluded.starts_at, expires_at = "
    "excluded.expires_at, updated_at = excluded.updated_at";

constexpr int kBusyTimeoutMs = 5000;

constexpr char kWhat[] = "dhcp leases";
using sqlite::DbLock;
using Stmt = sqlite::Stmt<kWhat>;

Status exec_sql(sqlite3* db, std::string_view sql, std::string_view op) {
  return sqlite::exec(kWhat, db, sql, op);
}
using Txn = sqlite::Txn<kWhat>;

// Runs a PRAGMA and, when `expect` is not empty, checks the value it reports.
Status pragma(sqlite3* db, std::string_view sql, std::string_view expect) {
  auto st = Stmt::prepare(db, sql, sql);
  if (!st) return fail(std::move(st.error()));
  auto row = st->step();
  if (!row) return fail(std::move(row.error()));
  if (!expect.empty()) {
    const std::string got = *row ? st->text(0) : std::string();
    if (got != expect)
      return fail(Errc::PreconditionFailed, "dhcp leases: " + std::string(sql) + " returned '" +
                                                got + "', expected '" + std::string(expect) + "'");
  }
  return {};
}

Result<sqlite3*> open_connection(const std::string& target, const std::string& what) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(target.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg =
        "dhcp leases: cannot open " + what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    return fail(Errc::PreconditionFailed, std::move(msg));
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  return db;
}

std::string dotted(std::uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
         std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

Status check_lease(const Lease& l) {
  if (l.segment.empty())
    return fail(Errc::InvalidInput,
                "dhcp leases: a lease has no segment (client '" + l.client_key + "')");
  if (l.client_key.empty())
    return fail(Errc::InvalidInput,
                "dhcp leases: a lease on segment " + l.segment + " has no client key");
  return {};
}

Result<Lease> read_lease(const Stmt& st) {
  Lease l;
  l.segment = st.text(0);
  const std::int64_t ip = st.i64(1);
  if (ip < 0 || ip > 0xffffffffLL)
    return fail(Errc::Internal,
                "dhcp leases: corrupt ip " + std::to_string(ip) + " on segment " + l.segment);
  l.ip = static_cast<std::uint32_t>(ip);
  l.client_key = st.text(2);
  l.mac = st.text(3);
  l.hostname = st.text(4);
  const std::string state = st.text(5);
  auto parsed = lease_state_from_name(state);
  if (!parsed)
    return fail(Errc::Internal, "dhcp leases: unknown state '" + state + "' on segment " +
                                    l.segment + " ip " + dotted(l.ip));
  l.state = *parsed;
  l.starts_at = st.i64(6);
  l.expires_at = st.i64(7);
  l.updated_at = st.i64(8);
  return l;
}

}  // namespace

std::string_view lease_state_name(LeaseState s) {
  switch (s) {
    case LeaseState::Bound:
      return "bound";
    case LeaseState::Released:
      return "released";
    case LeaseState::Declined:
      return "declined";
    case LeaseState::Expired:
      return "expired";
  }
  return "bound";
}

std::optional<LeaseState> lease_state_from_name(std::string_view s) {
  for (auto st :
       {LeaseState::Bound, LeaseState::Released, LeaseState::Declined, LeaseState::Expired})
    if (lease_state_name(st) == s) return st;
  return std::nullopt;
}

std::string make_client_key(std::span<const std::uint8_t> client_id, std::string_view mac) {
  if (client_id.empty()) return "hw:" + std::string(mac);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(client_id.size() * 2);
  for (std::uint8_t b : client_id) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0x0f]);
  }
  return out;
}

Result<std::unique_ptr<LeaseDb>> LeaseDb::open(const std::filesystem::path& file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = file.parent_path();
  if (!dir.empty() && !fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (!ec) fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec)
      return fail(Errc::PreconditionFailed,
                  "dhcp leases: cannot create directory " + dir.string() + ": " + ec.message());
  }
  // Create the file ourselves so it is 0600 whatever the umask; SQLite gives its -wal and -shm
  // files the same mode.
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    const bool ok = ::fchmod(fd, 0600) == 0;
    const int err = errno;
    ::close(fd);
    if (!ok)
      return fail(Errc::PreconditionFailed,
                  "dhcp leases: cannot chmod " + file.string() + ": " + std::strerror(err));
  } else if (errno != EEXIST) {
    return fail(Errc::PreconditionFailed,
                "dhcp leases: cannot create " + file.string() + ": " + std::strerror(errno));
  }

  auto db = open_connection(file.string(), file.string());
  if (!db) return fail(std::move(db.error()));
  std::unique_ptr<LeaseDb> ldb(new LeaseDb(*db, file));
  if (auto wal = pragma(*db, "PRAGMA journal_mode=WAL", "wal"); !wal) {
    Error e = std::move(wal.error());
    return fail(
        Error(e.code() == Errc::Timeout ? Errc::Timeout : Errc::PreconditionFailed, e.message())
            .context(file.string()));
  }
  if (auto s = pragma(*db, "PRAGMA synchronous=FULL", ""); !s)
    return fail(std::move(s.error()).context(file.string()));
  if (auto s = ldb->create_table(); !s) return fail(std::move(s.error()).context(file.string()));
  return ldb;
}

Result<std::unique_ptr<LeaseDb>> LeaseDb::open_memory() {
  auto db = open_connection(":memory:", "in-memory database");
  if (!db) return fail(std::move(db.error()));
  std::unique_ptr<LeaseDb> ldb(new LeaseDb(*db, ":memory:"));
  if (auto s = ldb->create_table(); !s) return fail(std::move(s.error()));
  return ldb;
}

LeaseDb::~LeaseDb() {
  sqlite3_close_v2(db_);
}

Status LeaseDb::create_table() {
  DbLock lock(db_);
  return exec_sql(db_, kSchema, "create table");
}

Status LeaseDb::write(std::span<const Lease* const> rows) {
  DbLock lock(db_);
  auto txn = Txn::begin(db_, "commit");
  if (!txn) return fail(std::move(txn.error()));
  auto st = Stmt::prepare(db_, kUpsert, "commit");
  if (!st) return fail(std::move(st.error()));
  for (const Lease* l : rows) {
    st->reset()
        .bind(1, l->segment)
        .bind(2, static_cast<std::int64_t>(l->ip))
        .bind(3, l->client_key)
        .bind(4, l->mac)
        .bind(5, l->hostname)
        .bind(6, lease_state_name(l->state))
        .bind(7, l->starts_at)
        .bind(8, l->expires_at)
        .bind(9, l->updated_at);
    if (auto s = st->run(); !s) return fail(std::move(s.error()));
  }
  if (auto c = txn->commit(); !c) return fail(std::move(c.error()));
  std::lock_guard stats(stats_mu_);
  ++transactions_;
  return {};
}

Status LeaseDb::commit(const std::vector<Lease>& batch) {
  if (batch.empty()) return {};
  std::vector<const Lease*> rows;
  rows.reserve(batch.size());
  for (const auto& l : batch) {
    if (auto s = check_lease(l); !s) return s;
    rows.push_back(&l);
  }
  return write(rows);
}

struct LeaseDb::Pending {
  const Lease* lease;
  Status result;
  bool done = false;
};

Status LeaseDb::commit_one(const Lease& lease) {
  if (auto s = check_lease(lease); !s) return s;
  Pending p{&lease, {}, false};
  std::unique_lock lock(gc_mu_);
  gc_queue_.push_back(&p);
  while (!p.done) {
    if (gc_leader_) {
      gc_cv_.wait(lock);
      continue;
    }
    // Lead: write every lease queued so far in one transaction, then wake their callers.
    gc_leader_ = true;
    std::vector<Pending*> batch;
    batch.swap(gc_queue_);
    lock.unlock();
    std::vector<const Lease*> rows;
    rows.reserve(batch.size());
    for (auto* q : batch)
      rows.push_back(q->lease);
    const Status result = write(rows);
    lock.lock();
    for (auto* q : batch) {
      q->result = result;
      q->done = true;
    }
    gc_leader_ = false;
    gc_cv_.notify_all();
  }
  return p.result;
}

Result<std::vector<Lease>> LeaseDb::select(std::string_view sql,
                                           std::optional<std::string_view> segment) {
  DbLock lock(db_);
  auto st = Stmt::prepare(db_, sql, "load");
  if (!st) return fail(std::move(st.error()));
  if (segment) st->bind(1, *segment);
  std::vector<Lease> out;
  for (;;) {
    auto row = st->step();
    if (!row) return fail(std::move(row.error()));
    if (!*row) return out;
    auto l = read_lease(*st);
    if (!l) return fail(std::move(l.error()));
    out.push_back(std::move(*l));
  }
}

Result<std::vector<Lease>> LeaseDb::load(std::string_view segment) {
  return select("SELECT " + std::string(kCols) + " FROM dhcp_leases WHERE segment = ? ORDER BY ip",
                segment);
}

Result<std::vector<Lease>> LeaseDb::load_all() {
  return select("SELECT " + std::string(kCols) + " FROM dhcp_leases ORDER BY segment, ip",
                std::nullopt);
}

Status LeaseDb::remove(std::string_view segment, std::uint32_t ip) {
  DbLock lock(db_);
  auto st = Stmt::prepare(db_, "DELETE FROM dhcp_leases WHERE segment = ? AND ip = ?", "remove");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, segment).bind(2, static_cast<std::int64_t>(ip));
  if (auto s = st->run(); !s) return fail(std::move(s.error()));
  if (sqlite3_changes(db_) == 0)
    return fail(Errc::NotFound,
                "dhcp leases: no lease for " + dotted(ip) + " on segment " + std::string(segment));
  return {};
}

std::uint64_t LeaseDb::transactions() const {
  std::lock_guard lock(stats_mu_);
  return transactions_;
}

}  // namespace labctl::dhcp
