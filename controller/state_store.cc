#include "controller/state_store.h"

#include <fcntl.h>
#include <pwd.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/sqlite.h"

namespace labctl::controller {
namespace {

// Ordered schema migrations. PRAGMA user_version holds how many have been applied; never edit or
// reorder an entry once released, only append.
constexpr std::array<std::string_view, 1> kMigrations{{
    R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  inventory TEXT NOT NULL,
  inventory_hash TEXT NOT NULL,
  status TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  summary TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE steps (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  device TEXT NOT NULL,
  seq INTEGER NOT NULL,
  key TEXT NOT NULL,
  action TEXT NOT NULL,
  title TEXT NOT NULL,
  args TEXT NOT NULL DEFAULT '{}',
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER,
  finished_at INTEGER,
  error_code TEXT NOT NULL DEFAULT '',
  error_message TEXT NOT NULL DEFAULT '',
  UNIQUE(run_id, device, key)
);
CREATE TABLE observations (
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
  device TEXT NOT NULL,
  observed_at INTEGER NOT NULL,
  reachable INTEGER NOT NULL,
  version TEXT NOT NULL DEFAULT '',
  data TEXT NOT NULL DEFAULT '{}',
  error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE audits (
  id INTEGER PRIMARY KEY,
  inventory TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  exit_code INTEGER NOT NULL,
  report TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX steps_run_device_seq ON steps(run_id, device, seq);
CREATE INDEX steps_device ON steps(device);
CREATE INDEX observations_device_time ON observations(device, observed_at);
CREATE INDEX runs_kind_inventory_status ON runs(kind, inventory, status);
)sql",
}};

constexpr int kBusyTimeoutMs = 5000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr char kWhat[] = "state store";
using sqlite::DbLock;
using Stmt = sqlite::Stmt<kWhat>;

Status exec_sql(sqlite3* db, std::string_view sql, std::string_view op) {
  return sqlite::exec(kWhat, db, sql, op);
}
using Txn = sqlite::Txn<kWhat>;

Result<std::string> dump_json(const nlohmann::json& j, std::string_view what) {
  try {
    return j.dump();
  } catch (const std::exception& e) {
    return fail(Errc::InvalidInput,
                "state store: " + std::string(what) + ": cannot serialise JSON: " + e.what());
  }
}

Result<nlohmann::json> parse_json(const std::string& text, std::string_view what, std::int64_t id) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return fail(Errc::Internal, "state store: corrupt JSON in " + std::string(what) + " of row " +
                                    std::to_string(id));
  return j;
}

std::int64_t limit_param(std::size_t limit) {
  if (limit == 0) return -1;  // SQLite: negative LIMIT means no limit
  constexpr auto kMax = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
  return static_cast<std::int64_t>(limit > kMax ? kMax : limit);
}

// Row readers; the column order matches the SELECT lists below.
constexpr std::string_view kRunCols =
    "id, kind, inventory, inventory_hash, status, started_at, finished_at, summary";

Result<RunRecord> read_run(const Stmt& st) {
  RunRecord r;
  r.id = st.i64(0);
  r.kind = st.text(1);
  r.inventory = st.text(2);
  r.inventory_hash = st.text(3);
  r.status = st.text(4);
  r.started_at = st.i64(5);
  r.finished_at = st.opt_i64(6);
  auto j = parse_json(st.text(7), "runs.summary", r.id);
  if (!j) return fail(std::move(j.error()));
  r.summary = std::move(*j);
  return r;
}

constexpr std::string_view kStepCols =
    "id, run_id, device, seq, key, action, title, args, status, attempts, started_at, "
    "finished_at, error_code, error_message";

Result<StepRecord> read_step(const Stmt& st) {
  StepRecord s;
  s.id = st.i64(0);
  s.run_id = st.i64(1);
  s.device = st.text(2);
  s.seq = static_cast<int>(st.i64(3));
  s.key = st.text(4);
  s.action = st.text(5);
  s.title = st.text(6);
  auto j = parse_json(st.text(7), "steps.args", s.id);
  if (!j) return fail(std::move(j.error()));
  s.args = std::move(*j);
  const std::string status = st.text(8);
  auto parsed = step_status_from_name(status);
  if (!parsed)
    return fail(Errc::Internal,
                "state store: unknown step status '" + status + "' in row " + std::to_string(s.id));
  s.status = *parsed;
  s.attempts = static_cast<int>(st.i64(9));
  s.started_at = st.opt_i64(10);
  s.finished_at = st.opt_i64(11);
  s.error_code = st.text(12);
  s.error_message = st.text(13);
  return s;
}

constexpr std::string_view kObsCols =
    "id, run_id, device, observed_at, reachable, version, data, error";

Result<ObservationRecord> read_observation(const Stmt& st) {
  ObservationRecord o;
  o.id = st.i64(0);
  o.run_id = st.opt_i64(1);
  o.device = st.text(2);
  o.observed_at = st.i64(3);
  o.reachable = st.i64(4) != 0;
  o.version = st.text(5);
  auto j = parse_json(st.text(6), "observations.data", o.id);
  if (!j) return fail(std::move(j.error()));
  o.data = std::move(*j);
  o.error = st.text(7);
  return o;
}

constexpr std::string_view kAuditCols = "id, inventory, started_at, finished_at, exit_code, report";

Result<AuditRecord> read_audit(const Stmt& st) {
  AuditRecord a;
  a.id = st.i64(0);
  a.inventory = st.text(1);
  a.started_at = st.i64(2);
  a.finished_at = st.i64(3);
  a.exit_code = static_cast<int>(st.i64(4));
  auto j = parse_json(st.text(5), "audits.report", a.id);
  if (!j) return fail(std::move(j.error()));
  a.report = std::move(*j);
  return a;
}

// Runs a SELECT and reads every row with `read`.
template <typename T, typename Reader>
Result<std::vector<T>> collect(Stmt& st, Reader read) {
  std::vector<T> out;
  for (;;) {
    auto row = st.step();
    if (!row) return fail(std::move(row.error()));
    if (!*row) return out;
    auto rec = read(st);
    if (!rec) return fail(std::move(rec.error()));
    out.push_back(std::move(*rec));
  }
}

template <typename T, typename Reader>
Result<std::optional<T>> collect_one(Stmt& st, Reader read) {
  auto row = st.step();
  if (!row) return fail(std::move(row.error()));
  if (!*row) return std::optional<T>();
  auto rec = read(st);
  if (!rec) return fail(std::move(rec.error()));
  return std::optional<T>(std::move(*rec));
}

Result<int> user_version(sqlite3* db) {
  auto st = Stmt::prepare(db, "PRAGMA user_version", "read schema version");
  if (!st) return fail(std::move(st.error()));
  auto row = st->step();
  if (!row) return fail(std::move(row.error()));
  return *row ? static_cast<int>(st->i64(0)) : 0;
}

// Sets a PRAGMA and checks the value it reports back (when it reports one).
Status pragma(sqlite3* db, std::string_view sql, std::string_view expect) {
  auto st = Stmt::prepare(db, sql, sql);
  if (!st) return fail(std::move(st.error()));
  auto row = st->step();
  if (!row) return fail(std::move(row.error()));
  if (!expect.empty()) {
    const std::string got = *row ? st->text(0) : std::string();
    if (got != expect)
      return fail(Errc::PreconditionFailed, "state store: " + std::string(sql) + " returned '" +
                                                got + "', expected '" + std::string(expect) + "'");
  }
  return {};
}

// Opens a connection; `target` is a file path or ":memory:".
Result<sqlite3*> open_connection(const std::string& target, const std::string& what) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(target.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg =
        "state store: cannot open " + what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    return fail(Errc::PreconditionFailed, std::move(msg));
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  return db;
}

}  // namespace

std::string_view step_status_name(StepStatus s) {
  switch (s) {
    case StepStatus::Pending:
      return "pending";
    case StepStatus::Running:
      return "running";
    case StepStatus::Done:
      return "done";
    case StepStatus::Failed:
      return "failed";
    case StepStatus::Skipped:
      return "skipped";
  }
  return "pending";
}

std::optional<StepStatus> step_status_from_name(std::string_view s) {
  for (auto st : {StepStatus::Pending, StepStatus::Running, StepStatus::Done, StepStatus::Failed,
                  StepStatus::Skipped})
    if (step_status_name(st) == s) return st;
  return std::nullopt;
}

Result<std::unique_ptr<StateStore>> StateStore::open(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (!ec) fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec)
      return fail(Errc::PreconditionFailed,
                  "state store: cannot create directory " + dir.string() + ": " + ec.message());
  } else if (!fs::is_directory(dir, ec)) {
    return fail(Errc::PreconditionFailed,
                "state store: " + dir.string() + " exists and is not a directory");
  }

  const fs::path file = dir / "state.db";
  // Create the database file ourselves so it is 0600 whatever the umask; SQLite gives its -wal and
  // -shm files the same mode.
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    const bool ok = ::fchmod(fd, 0600) == 0;
    const int err = errno;
    ::close(fd);
    if (!ok)
      return fail(Errc::PreconditionFailed,
                  "state store: cannot chmod " + file.string() + ": " + std::strerror(err));
  } else if (errno != EEXIST) {
    return fail(Errc::PreconditionFailed,
                "state store: cannot create " + file.string() + ": " + std::strerror(errno));
  }

  auto db = open_connection(file.string(), file.string());
  if (!db) return fail(std::move(db.error()));
  std::unique_ptr<StateStore> store(new StateStore(*db, file));

  auto wal = pragma(*db, "PRAGMA journal_mode=WAL", "wal");
  if (!wal) {
    // A lock held elsewhere stays a Timeout; anything else means the file cannot be used.
    Error e = std::move(wal.error());
    return fail(
        Error(e.code() == Errc::Timeout ? Errc::Timeout : Errc::PreconditionFailed, e.message())
            .context(file.string()));
  }
  for (auto sql : {"PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"})
    if (auto s = pragma(*db, sql, ""); !s) return fail(std::move(s.error()).context(file.string()));
  if (auto s = store->migrate(); !s) return fail(std::move(s.error()));
  return store;
}

Result<std::unique_ptr<StateStore>> StateStore::open_memory() {
  auto db = open_connection(":memory:", "in-memory database");
  if (!db) return fail(std::move(db.error()));
  std::unique_ptr<StateStore> store(new StateStore(*db, ":memory:"));
  if (auto s = pragma(*db, "PRAGMA foreign_keys=ON", ""); !s) return fail(std::move(s.error()));
  if (auto s = store->migrate(); !s) return fail(std::move(s.error()));
  return store;
}

StateStore::~StateStore() {
  sqlite3_close_v2(db_);
}

Status StateStore::migrate() {
  DbLock lock(db_);
  const int known = static_cast<int>(kMigrations.size());
  for (;;) {
    auto txn = Txn::begin(db_, "migrate");
    if (!txn) return fail(std::move(txn.error()).context(path_.string()));
    // Read inside the write transaction so a concurrent opener cannot apply the same migration.
    auto v = user_version(db_);
    if (!v) return fail(std::move(v.error()).context(path_.string()));
    if (*v > known)
      return fail(Errc::PreconditionFailed, "state store: " + path_.string() +
                                                " has schema version " + std::to_string(*v) +
                                                ", newer than the " + std::to_string(known) +
                                                " this build knows; use a newer labctl");
    if (*v == known) return {};
    const std::string op = "migration " + std::to_string(*v + 1);
    if (auto s = exec_sql(db_, std::string(kMigrations[static_cast<std::size_t>(*v)]), op); !s)
      return fail(std::move(s.error()).context(path_.string()));
    // user_version cannot be a bound parameter; the value is our own integer, not input.
    if (auto s = exec_sql(db_, "PRAGMA user_version = " + std::to_string(*v + 1), op); !s)
      return fail(std::move(s.error()).context(path_.string()));
    if (auto s = txn->commit(); !s) return fail(std::move(s.error()).context(path_.string()));
  }
}

int StateStore::schema_version() const {
  DbLock lock(db_);
  auto v = user_version(db_);
  return v ? *v : -1;
}

Result<std::int64_t> StateStore::begin_run(const std::string& kind, const std::string& inventory,
                                           const std::string& inventory_hash) {
  DbLock lock(db_);
  auto st = Stmt::prepare(db_,
                          "INSERT INTO runs (kind, inventory, inventory_hash, status, started_at, "
                          "summary) VALUES (?, ?, ?, 'running', ?, '{}')",
                          "begin run");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, kind).bind(2, inventory).bind(3, inventory_hash).bind(4, now_ms());
  if (auto s = st->run(); !s) return fail(std::move(s.error()));
  return sqlite3_last_insert_rowid(db_);
}

Status StateStore::finish_run(std::int64_t run_id, const std::string& status,
                              const nlohmann::json& summary) {
  auto text = dump_json(summary, "finish run");
  if (!text) return fail(std::move(text.error()));
  DbLock lock(db_);
  auto st = Stmt::prepare(
      db_, "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?", "finish run");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, status).bind(2, now_ms()).bind(3, *text).bind(4, run_id);
  if (auto s = st->run(); !s) return fail(std::move(s.error()));
  if (sqlite3_changes(db_) == 0)
    return fail(Errc::NotFound, "state store: finish run: no run " + std::to_string(run_id));
  return {};
}

Result<std::optional<RunRecord>> StateStore::run(std::int64_t run_id) {
  DbLock lock(db_);
  auto st =
      Stmt::prepare(db_, "SELECT " + std::string(kRunCols) + " FROM runs WHERE id = ?", "read run");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, run_id);
  return collect_one<RunRecord>(*st, read_run);
}

Result<std::vector<RunRecord>> StateStore::runs(std::size_t limit) {
  DbLock lock(db_);
  auto st = Stmt::prepare(
      db_, "SELECT " + std::string(kRunCols) + " FROM runs ORDER BY id DESC LIMIT ?", "list runs");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, limit_param(limit));
  return collect<RunRecord>(*st, read_run);
}

Result<std::optional<RunRecord>> StateStore::unfinished_run(const std::string& kind,
                                                            const std::string& inventory) {
  DbLock lock(db_);
  auto st = Stmt::prepare(db_,
                          "SELECT " + std::string(kRunCols) +
                              " FROM runs WHERE kind = ? AND inventory = ? AND status IN "
                              "('running', 'interrupted') ORDER BY id DESC LIMIT 1",
                          "find unfinished run");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, kind).bind(2, inventory);
  return collect_one<RunRecord>(*st, read_run);
}

Status StateStore::add_steps(std::int64_t run_id, std::vector<StepRecord>& steps) {
  // Serialise every step's arguments before touching the database.
  std::vector<std::string> args;
  args.reserve(steps.size());
  for (const auto& s : steps) {
    auto text = dump_json(s.args, "add steps: " + s.device + " " + s.key);
    if (!text) return fail(std::move(text.error()));
    args.push_back(std::move(*text));
  }

  DbLock lock(db_);
  auto txn = Txn::begin(db_, "add steps");
  if (!txn) return fail(std::move(txn.error()));
  {
    auto check = Stmt::prepare(db_, "SELECT 1 FROM runs WHERE id = ?", "add steps");
    if (!check) return fail(std::move(check.error()));
    check->bind(1, run_id);
    auto row = check->step();
    if (!row) return fail(std::move(row.error()));
    if (!*row)
      return fail(Errc::NotFound, "state store: add steps: no run " + std::to_string(run_id));
  }
  auto st = Stmt::prepare(db_,
                          "INSERT INTO steps (run_id, device, seq, key, action, title, args, "
                          "status, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0)",
                          "add steps");
  if (!st) return fail(std::move(st.error()));
  std::vector<std::int64_t> ids;
  ids.reserve(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto& s = steps[i];
    st->reset()
        .bind(1, run_id)
        .bind(2, s.device)
        .bind(3, s.seq)
        .bind(4, s.key)
        .bind(5, s.action)
        .bind(6, s.title)
        .bind(7, args[i]);
    if (auto r = st->run(); !r) return fail(std::move(r.error()).context(s.device + " " + s.key));
    ids.push_back(sqlite3_last_insert_rowid(db_));
  }
  if (auto c = txn->commit(); !c) return fail(std::move(c.error()));
  for (std::size_t i = 0; i < steps.size(); ++i) {
    auto& s = steps[i];
    s.id = ids[i];
    s.run_id = run_id;
    s.status = StepStatus::Pending;
    s.attempts = 0;
    s.started_at.reset();
    s.finished_at.reset();
    s.error_code.clear();
    s.error_message.clear();
  }
  return {};
}

Status StateStore::step_started(std::int64_t step_id) {
  return group_write([&](sqlite3* db) -> Status {
    auto st = Stmt::prepare(db,
                            "UPDATE steps SET status = 'running', attempts = attempts + 1, "
                            "started_at = ?, finished_at = NULL, error_code = '', "
                            "error_message = '' WHERE id = ?",
                            "step started");
    if (!st) return fail(std::move(st.error()));
    st->bind(1, now_ms()).bind(2, step_id);
    if (auto s = st->run(); !s) return fail(std::move(s.error()));
    if (sqlite3_changes(db) == 0)
      return fail(Errc::NotFound, "state store: step started: no step " + std::to_string(step_id));
    return {};
  });
}

Status StateStore::step_finished(std::int64_t step_id, StepStatus status,
                                 const std::string& error_code, const std::string& error_message) {
  return group_write([&](sqlite3* db) -> Status {
    auto st = Stmt::prepare(db,
                            "UPDATE steps SET status = ?, finished_at = ?, error_code = ?, "
                            "error_message = ? WHERE id = ?",
                            "step finished");
    if (!st) return fail(std::move(st.error()));
    st->bind(1, step_status_name(status))
        .bind(2, now_ms())
        .bind(3, error_code)
        .bind(4, error_message)
        .bind(5, step_id);
    if (auto s = st->run(); !s) return fail(std::move(s.error()));
    if (sqlite3_changes(db) == 0)
      return fail(Errc::NotFound, "state store: step finished: no step " + std::to_string(step_id));
    return {};
  });
}

Result<std::vector<StepRecord>> StateStore::steps(std::int64_t run_id) {
  DbLock lock(db_);
  auto st = Stmt::prepare(
      db_,
      "SELECT " + std::string(kStepCols) + " FROM steps WHERE run_id = ? ORDER BY device, seq, id",
      "list steps");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, run_id);
  return collect<StepRecord>(*st, read_step);
}

Result<std::vector<StepRecord>> StateStore::steps_for_device(const std::string& device,
                                                             std::size_t limit) {
  DbLock lock(db_);
  auto st = Stmt::prepare(
      db_,
      "SELECT " + std::string(kStepCols) + " FROM steps WHERE device = ? ORDER BY id DESC LIMIT ?",
      "list device steps");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, device).bind(2, limit_param(limit));
  return collect<StepRecord>(*st, read_step);
}

namespace {

Result<std::int64_t> insert_observation(sqlite3* db, const ObservationRecord& obs) {
  auto data = dump_json(obs.data, "record observation: " + obs.device);
  if (!data) return fail(std::move(data.error()));
  auto st = Stmt::prepare(db,
                          "INSERT INTO observations (run_id, device, observed_at, reachable, "
                          "version, data, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          "record observation");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, obs.run_id)
      .bind(2, obs.device)
      .bind(3, obs.observed_at)
      .bind(4, obs.reachable ? 1 : 0)
      .bind(5, obs.version)
      .bind(6, *data)
      .bind(7, obs.error);
  if (auto s = st->run(); !s) return fail(std::move(s.error()));
  return sqlite3_last_insert_rowid(db);
}

}  // namespace

Result<std::int64_t> StateStore::record_observation(const ObservationRecord& obs) {
  std::int64_t id = 0;
  auto r = group_write([&](sqlite3* db) -> Status {
    auto inserted = insert_observation(db, obs);
    if (!inserted) return fail(std::move(inserted.error()));
    id = *inserted;
    return {};
  });
  if (!r) return fail(std::move(r.error()));
  return id;
}

Status StateStore::record_observations(const std::vector<ObservationRecord>& obs) {
  return group_write([&](sqlite3* db) -> Status {
    for (const auto& o : obs)
      if (auto r = insert_observation(db, o); !r) return fail(std::move(r.error()));
    return {};
  });
}

struct StateStore::PendingWrite {
  const std::function<Status(sqlite3*)>* op;
  Status result;
  bool done = false;
};

Status StateStore::group_write(const std::function<Status(sqlite3*)>& op) {
  PendingWrite w{&op, {}, false};
  std::unique_lock lock(gc_mu_);
  gc_queue_.push_back(&w);
  while (!w.done) {
    if (gc_leader_) {
      gc_cv_.wait(lock);
      continue;
    }
    // Lead: take every write queued so far into one transaction.
    gc_leader_ = true;
    std::vector<PendingWrite*> batch;
    batch.swap(gc_queue_);
    lock.unlock();
    {
      DbLock db(db_);
      auto txn = Txn::begin(db_, "journal");
      if (!txn) {
        for (auto* p : batch)
          p->result = fail(txn.error());
      } else {
        // A savepoint per write: one failing write (an unknown step id) leaves the others intact.
        for (auto* p : batch) {
          sqlite3_exec(db_, "SAVEPOINT w", nullptr, nullptr, nullptr);
          p->result = (*p->op)(db_);
          if (!p->result) sqlite3_exec(db_, "ROLLBACK TO w", nullptr, nullptr, nullptr);
          sqlite3_exec(db_, "RELEASE w", nullptr, nullptr, nullptr);
        }
        if (auto c = txn->commit(); !c)
          for (auto* p : batch)
            if (p->result) p->result = fail(c.error());
      }
    }
    lock.lock();
    for (auto* p : batch)
      p->done = true;
    gc_leader_ = false;
    gc_cv_.notify_all();
  }
  return w.result;
}

Result<std::optional<ObservationRecord>> StateStore::latest_observation(const std::string& device) {
  DbLock lock(db_);
  auto st = Stmt::prepare(db_,
                          "SELECT " + std::string(kObsCols) +
                              " FROM observations WHERE device = ? ORDER BY observed_at DESC, "
                              "id DESC LIMIT 1",
                          "latest observation");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, device);
  return collect_one<ObservationRecord>(*st, read_observation);
}

Result<std::int64_t> StateStore::record_audit(const AuditRecord& audit) {
  auto report = dump_json(audit.report, "record audit");
  if (!report) return fail(std::move(report.error()));
  DbLock lock(db_);
  auto st = Stmt::prepare(db_,
                          "INSERT INTO audits (inventory, started_at, finished_at, exit_code, "
                          "report) VALUES (?, ?, ?, ?, ?)",
                          "record audit");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, audit.inventory)
      .bind(2, audit.started_at)
      .bind(3, audit.finished_at)
      .bind(4, audit.exit_code)
      .bind(5, *report);
  if (auto s = st->run(); !s) return fail(std::move(s.error()));
  return sqlite3_last_insert_rowid(db_);
}

Result<std::vector<AuditRecord>> StateStore::audits(std::size_t limit) {
  DbLock lock(db_);
  auto st = Stmt::prepare(
      db_, "SELECT " + std::string(kAuditCols) + " FROM audits ORDER BY id DESC LIMIT ?",
      "list audits");
  if (!st) return fail(std::move(st.error()));
  st->bind(1, limit_param(limit));
  return collect<AuditRecord>(*st, read_audit);
}

Status StateStore::exec(const std::string& sql) {
  DbLock lock(db_);
  return exec_sql(db_, sql, "exec");
}

std::filesystem::path default_state_dir() {
  if (const char* d = std::getenv("LABCTL_STATE_DIR"); d != nullptr && *d != '\0') return d;
  if (::geteuid() == 0) return "/var/lib/labctl";
  if (const char* x = std::getenv("XDG_STATE_HOME"); x != nullptr && x[0] == '/')
    return std::filesystem::path(x) / "labctl";
  std::string home;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    home = h;
  } else if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_dir != nullptr) {
    home = pw->pw_dir;
  }
  return std::filesystem::path(home) / ".local" / "state" / "labctl";
}

}  // namespace labctl::controller
