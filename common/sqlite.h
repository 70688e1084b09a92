// What every SQLite user in labctl shares (the state store, the DHCP lease table, the firmware
// index): errors as labctl::Error, the connection's lock, a prepared statement, exec and a
// transaction. Header-only, so
// only the libraries that already link SQLite use it.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/error.h"

namespace labctl::sqlite {

// SQLite failure -> Error, "WHAT: OP: message". BUSY/LOCKED (left after the busy timeout) is a
// Timeout, anything else Internal.
inline Error db_error(std::string_view what, sqlite3* db, int rc, std::string_view op) {
  const int primary = rc & 0xff;
  const Errc code =
      (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) ? Errc::Timeout : Errc::Internal;
  std::string msg = std::string(what) + ": " + std::string(op) + ": ";
  // sqlite3_errmsg describes the connection's latest failure; fall back to the code's text if
  // that is not the one we are reporting.
  if (db != nullptr && sqlite3_errcode(db) == rc)
    msg += sqlite3_errmsg(db);
  else
    msg += sqlite3_errstr(rc);
  return Error(code, std::move(msg));
}

// Holds the connection's own (recursive) mutex for the duration of an operation, so a multi-call
// sequence (a transaction, a statement and its sqlite3_changes / sqlite3_errmsg) is not
// interleaved with another thread's calls on the same connection.
class DbLock {
 public:
  explicit DbLock(sqlite3* db) : mu_(sqlite3_db_mutex(db)) { sqlite3_mutex_enter(mu_); }
  ~DbLock() { sqlite3_mutex_leave(mu_); }
  DbLock(const DbLock&) = delete;
  DbLock& operator=(const DbLock&) = delete;

 private:
  sqlite3_mutex* mu_;
};

// RAII prepared statement; errors are named "WHAT: OP: ...". A bind failure is remembered and
// reported by the next step().
template <const char* What>
class Stmt {
 public:
  static Result<Stmt> prepare(sqlite3* db, std::string_view sql, std::string_view op) {
    sqlite3_stmt* s = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(s);
      return fail(db_error(What, db, rc, op));
    }
    return Stmt(db, s, op);
  }
  Stmt(Stmt&& o) noexcept
      : db_(o.db_), s_(std::exchange(o.s_, nullptr)), op_(std::move(o.op_)), rc_(o.rc_) {}
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s_); }

  // Binders (1-based).
  Stmt& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(s_, i, v)); }
  Stmt& bind(int i, int v) { return check(sqlite3_bind_int(s_, i, v)); }
  Stmt& bind(int i, std::string_view v) {
    return check(sqlite3_bind_text64(s_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const std::optional<std::int64_t>& v) {
    return v ? bind(i, *v) : check(sqlite3_bind_null(s_, i));
  }

  // Makes the statement ready to run again with new bindings.
  Stmt& reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    rc_ = SQLITE_OK;
    return *this;
  }

  // true: a row is available; false: done.
  Result<bool> step() {
    if (rc_ != SQLITE_OK) return fail(db_error(What, db_, rc_, op_ + " (bind)"));
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return fail(db_error(What, db_, rc, op_));
  }
  // Runs a statement that returns no rows.
  Status run() {
    auto r = step();
    if (!r) return fail(std::move(r.error()));
    return {};
  }

  std::int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  std::optional<std::int64_t> opt_i64(int c) const {
    if (sqlite3_column_type(s_, c) == SQLITE_NULL) return std::nullopt;
    return i64(c);
  }
  std::string text(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    if (p == nullptr) return {};
    return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c)));
  }

 private:
  Stmt(sqlite3* db, sqlite3_stmt* s, std::string_view op) : db_(db), s_(s), op_(op) {}
  Stmt& check(int rc) {
    if (rc != SQLITE_OK && rc_ == SQLITE_OK) rc_ = rc;
    return *this;
  }

  sqlite3* db_;
  sqlite3_stmt* s_;
  std::string op_;
  int rc_ = SQLITE_OK;
};

// Runs SQL without results (sqlite3_exec); errors as db_error's.
inline Status exec(std::string_view what, sqlite3* db, std::string_view sql, std::string_view op) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return {};
  const int primary = rc & 0xff;
  std::string msg =
      std::string(what) + ": " + std::string(op) + ": " + (err ? err : sqlite3_errstr(rc));
  sqlite3_free(err);
  return fail(primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? Errc::Timeout : Errc::Internal,
              std::move(msg));
}

// BEGIN IMMEDIATE ... COMMIT; rolls back unless committed. Errors name "OP: begin" / "OP: commit"
// ("begin" / "commit" without an op).
template <const char* What>
class Txn {
 public:
  static Result<Txn> begin(sqlite3* db, std::string_view op = {}) {
    if (auto s = exec(What, db, "BEGIN IMMEDIATE", step_name(op, "begin")); !s)
      return fail(std::move(s.error()));
    return Txn(db, op);
  }
  Txn(Txn&& o) noexcept : db_(std::exchange(o.db_, nullptr)), op_(std::move(o.op_)) {}
  Txn& operator=(Txn&&) = delete;
  Txn(const Txn&) = delete;
  ~Txn() {
    if (db_ != nullptr && !sqlite3_get_autocommit(db_))
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Status commit() {
    auto s = exec(What, db_, "COMMIT", step_name(op_, "commit"));
    if (s) db_ = nullptr;
    return s;
  }

 private:
  Txn(sqlite3* db, std::string_view op) : db_(db), op_(op) {}
  static std::string step_name(std::string_view op, std::string_view step) {
    return op.empty() ? std::string(step) : std::string(op) + ": " + std::string(step);
  }
  sqlite3* db_;
  std::string op_;
};

}  // namespace labctl::sqlite
