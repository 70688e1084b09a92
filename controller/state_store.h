// The state store: SQLite (WAL) in the state directory. Runs, steps, device observations and
// audits; later issues add DHCP leases and TFTP transfers through further migrations.
//
// Every write is durable when the call returns (synchronous=FULL), so the engine can commit a
// step's start before running it and its outcome before the next one. Journal writes from many
// threads at once share transactions (group commit): each caller still waits for its own write to
// be on disk, but one fsync serves every write that arrived while the previous one was flushing.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"

struct sqlite3;

namespace labctl::controller {

enum class StepStatus { Pending, Running, Done, Failed, Skipped };
std::string_view step_status_name(StepStatus s);  // "pending", "running", ...
std::optional<StepStatus> step_status_from_name(std::string_view s);

struct RunRecord {
  std::int64_t id = 0;
  std::string kind;             // "apply", "plan", "audit"
  std::string inventory;        // absolute path of the inventory file
  std::string inventory_hash;   // sha256 of its bytes
  std::string status;           // "running", "done", "failed", "interrupted"
  std::int64_t started_at = 0;  // unix milliseconds
  std::optional<std::int64_t> finished_at;
  nlohmann::json summary;  // free-form, JSON object
};

struct StepRecord {
  std::int64_t id = 0;
  std::int64_t run_id = 0;
  std::string device;
  int seq = 0;          // order within the device
  std::string key;      // stable identity of the step within the run, e.g. "flash@1.04"
  std::string action;   // plugin action name
  std::string title;    // human one-liner
  nlohmann::json args;  // the step's arguments (never secrets)
  StepStatus status = StepStatus::Pending;
  int attempts = 0;
  std::optional<std::int64_t> started_at, finished_at;
  std::string error_code;  // errc_name, "" when none
  std::string error_message;
};

struct ObservationRecord {
  std::int64_t id = 0;
  std::optional<std::int64_t> run_id;
  std::string device;
  std::int64_t observed_at = 0;
  bool reachable = false;
  std::string version;  // firmware version text, "" when unknown
  nlohmann::json data;  // the full probe result as JSON
  std::string error;    // when not reachable
};

struct AuditRecord {
  std::int64_t id = 0;
  std::string inventory;
  std::int64_t started_at = 0;
  std::int64_t finished_at = 0;
  int exit_code = 0;
  nlohmann::json report;  // the JSON report as printed by `labctl audit --format json`
};

class StateStore {
 public:
  // Opens (creating the directory with 0700 and the database with 0600 if needed) and migrates
  // `dir/state.db`. Refuses a database whose schema is newer than this build knows.
  static Result<std::unique_ptr<StateStore>> open(const std::filesystem::path& dir);
  // In-memory store, for tests.
  static Result<std::unique_ptr<StateStore>> open_memory();
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  int schema_version() const;  // PRAGMA user_version after migration
  const std::filesystem::path& path() const { return path_; }

  // Runs
  Result<std::int64_t> begin_run(const std::string& kind, const std::string& inventory,
                                 const std::string& inventory_hash);
  Status finish_run(std::int64_t run_id, const std::string& status, const nlohmann::json& summary);
  Result<std::optional<RunRecord>> run(std::int64_t run_id);
  // Newest first; `limit` 0 = all.
  Result<std::vector<RunRecord>> runs(std::size_t limit = 0);
  // The newest run of `kind` for `inventory` whose status is "running" or "interrupted".
  Result<std::optional<RunRecord>> unfinished_run(const std::string& kind,
                                                  const std::string& inventory);

  // Steps. add_steps inserts all in one transaction, status Pending, and fills in their ids.
  Status add_steps(std::int64_t run_id, std::vector<StepRecord>& steps);
  Status step_started(std::int64_t step_id);  // Running, attempts+1, started_at=now
  Status step_finished(std::int64_t step_id, StepStatus status, const std::string& error_code = "",
                       const std::string& error_message = "");
  Result<std::vector<StepRecord>> steps(std::int64_t run_id);  // by device, then seq
  Result<std::vector<StepRecord>> steps_for_device(const std::string& device, std::size_t limit);

  // Observations
  Result<std::int64_t> record_observation(const ObservationRecord& obs);
  // Many observations in one transaction (a probe of the whole lab).
  Status record_observations(const std::vector<ObservationRecord>& obs);
  Result<std::optional<ObservationRecord>> latest_observation(const std::string& device);

  // Audits
  Result<std::int64_t> record_audit(const AuditRecord& audit);
  Result<std::vector<AuditRecord>> audits(std::size_t limit = 0);  // newest first

  // For migrations added by later issues: run `sql` inside the store's connection.
  Status exec(const std::string& sql);
  sqlite3* handle() { return db_; }

 private:
  StateStore(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}
  Status migrate();
  // Runs `op` inside a shared transaction (see the class comment) and returns its own result.
  Status group_write(const std::function<Status(sqlite3*)>& op);
  sqlite3* db_ = nullptr;
  struct PendingWrite;
  std::mutex gc_mu_;
  std::condition_variable gc_cv_;
  std::vector<PendingWrite*> gc_queue_;
  bool gc_leader_ = false;
  std::filesystem::path path_;
};

// Where state lives: --state-dir / $LABCTL_STATE_DIR, else /var/lib/labctl as root, else
// $XDG_STATE_HOME/labctl (default ~/.local/state/labctl).
std::filesystem::path default_state_dir();

}  // namespace labctl::controller
