#include "controller/state_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace labctl::controller {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A fresh directory under /tmp, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/labctl-state-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Sets or unsets an environment variable, restoring the old value on destruction.
class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~EnvVar() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

std::unique_ptr<StateStore> open_ok(const fs::path& dir) {
  auto s = StateStore::open(dir);
  if (!s) ADD_FAILURE() << "open " << dir << ": " << s.error().message();
  return s ? std::move(*s) : nullptr;
}

// Single-value query through the store's connection.
std::string query_text(StateStore& store, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(store.handle(), sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    if (p) out = p;
  } else {
    ADD_FAILURE() << "query failed: " << sql << ": " << sqlite3_errmsg(store.handle());
  }
  sqlite3_finalize(st);
  return out;
}

StepRecord make_step(const std::string& device, int seq, const std::string& key,
                     json args = json::object()) {
  StepRecord s;
  s.device = device;
  s.seq = seq;
  s.key = key;
  s.action = "act-" + key;
  s.title = "do " + key + " on " + device;
  s.args = std::move(args);
  return s;
}

unsigned file_mode(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0xffffffffu;
  return st.st_mode & 07777;
}

TEST(StateStore, OpenCreatesDirAndDatabaseWithModesAndWal) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "nested" / "state";
  auto store = open_ok(dir);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->path(), dir / "state.db");
  EXPECT_TRUE(fs::is_directory(dir));
  EXPECT_EQ(file_mode(dir), 0700u);
  EXPECT_EQ(file_mode(dir / "state.db"), 0600u);
  EXPECT_EQ(query_text(*store, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(query_text(*store, "PRAGMA synchronous"), "2");  // FULL
  EXPECT_EQ(query_text(*store, "PRAGMA foreign_keys"), "1");
  EXPECT_EQ(store->schema_version(), 1);

  ASSERT_TRUE(store->begin_run("apply", "/inv.yaml", "abc"));
  EXPECT_TRUE(fs::exists(dir / "state.db-wal"));
  EXPECT_EQ(file_mode(dir / "state.db-wal"), 0600u);
}

TEST(StateStore, OpenRefusesAFileInPlaceOfTheDirectory) {
  TempDir tmp;
  const fs::path file = tmp.path() / "not-a-dir";
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_TRUE(f);
    std::fclose(f);
  }
  auto s = StateStore::open(file);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::PreconditionFailed);
  EXPECT_NE(s.error().message().find(file.string()), std::string::npos) << s.error().message();
}

TEST(StateStore, ReopenKeepsData) {
  TempDir tmp;
  std::int64_t run_id = 0, done_id = 0, failed_id = 0, obs_id = 0, audit_id = 0;
  const json args = {{"image", "bmc-1.04.bin"}, {"sizes", {1, 2, 3}}, {"nested", {{"ok", true}}}};
  const json summary = {{"done", 1}, {"failed", 1}, {"note", "ünïcode"}};
  const json report = {{"devices", json::array({{{"name", "sw1"}, {"drift", false}}})}};
  {
    auto store = open_ok(tmp.path());
    ASSERT_TRUE(store);
    auto r = store->begin_run("apply", "/etc/lab/inv.yaml", "deadbeef");
    ASSERT_TRUE(r);
    run_id = *r;
    std::vector<StepRecord> steps{make_step("sw1", 0, "flash@1.04", args),
                                  make_step("sw1", 1, "reboot"), make_step("sw2", 0, "config")};
    ASSERT_TRUE(store->add_steps(run_id, steps));
    done_id = steps[0].id;
    failed_id = steps[1].id;
    ASSERT_TRUE(store->step_started(done_id));
    ASSERT_TRUE(store->step_finished(done_id, StepStatus::Done));
    ASSERT_TRUE(store->step_started(failed_id));
    ASSERT_TRUE(store->step_finished(failed_id, StepStatus::Failed, "timeout", "no answer"));
    ASSERT_TRUE(store->finish_run(run_id, "failed", summary));

    ObservationRecord o;
    o.run_id = run_id;
    o.device = "sw1";
    o.observed_at = 1'700'000'000'123;
    o.reachable = true;
    o.version = "1.04";
    o.data = {{"model", "X1"}, {"ports", 48}};
    auto oid = store->record_observation(o);
    ASSERT_TRUE(oid);
    obs_id = *oid;

    AuditRecord a;
    a.inventory = "/etc/lab/inv.yaml";
    a.started_at = 10;
    a.finished_at = 20;
    a.exit_code = 3;
    a.report = report;
    auto aid = store->record_audit(a);
    ASSERT_TRUE(aid);
    audit_id = *aid;
  }

  auto store = open_ok(tmp.path());
  ASSERT_TRUE(store);
  auto run = store->run(run_id);
  ASSERT_TRUE(run);
  ASSERT_TRUE(run->has_value());
  EXPECT_EQ((*run)->kind, "apply");
  EXPECT_EQ((*run)->inventory, "/etc/lab/inv.yaml");
  EXPECT_EQ((*run)->inventory_hash, "deadbeef");
  EXPECT_EQ((*run)->status, "failed");
  EXPECT_GT((*run)->started_at, 0);
  ASSERT_TRUE((*run)->finished_at.has_value());
  EXPECT_GE(*(*run)->finished_at, (*run)->started_at);
  EXPECT_EQ((*run)->summary, summary);

  auto steps = store->steps(run_id);
  ASSERT_TRUE(steps);
  ASSERT_EQ(steps->size(), 3u);
  EXPECT_EQ((*steps)[0].id, done_id);
  EXPECT_EQ((*steps)[0].status, StepStatus::Done);
  EXPECT_EQ((*steps)[0].args, args);
  EXPECT_EQ((*steps)[0].action, "act-flash@1.04");
  EXPECT_EQ((*steps)[0].title, "do flash@1.04 on sw1");
  EXPECT_EQ((*steps)[1].id, failed_id);
  EXPECT_EQ((*steps)[1].status, StepStatus::Failed);
  EXPECT_EQ((*steps)[1].error_code, "timeout");
  EXPECT_EQ((*steps)[1].error_message, "no answer");
  EXPECT_EQ((*steps)[2].status, StepStatus::Pending);
  EXPECT_EQ((*steps)[2].args, json::object());
  EXPECT_FALSE((*steps)[2].started_at.has_value());

  auto obs = store->latest_observation("sw1");
  ASSERT_TRUE(obs);
  ASSERT_TRUE(obs->has_value());
  EXPECT_EQ((*obs)->id, obs_id);
  EXPECT_EQ((*obs)->run_id, run_id);
  EXPECT_EQ((*obs)->observed_at, 1'700'000'000'123);
  EXPECT_TRUE((*obs)->reachable);
  EXPECT_EQ((*obs)->version, "1.04");
  EXPECT_EQ((*obs)->data, (json{{"model", "X1"}, {"ports", 48}}));
  auto none = store->latest_observation("sw9");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());

  auto audits = store->audits();
  ASSERT_TRUE(audits);
  ASSERT_EQ(audits->size(), 1u);
  EXPECT_EQ((*audits)[0].id, audit_id);
  EXPECT_EQ((*audits)[0].inventory, "/etc/lab/inv.yaml");
  EXPECT_EQ((*audits)[0].started_at, 10);
  EXPECT_EQ((*audits)[0].finished_at, 20);
  EXPECT_EQ((*audits)[0].exit_code, 3);
  EXPECT_EQ((*audits)[0].report, report);
}

TEST(StateStore, MigrationsAreIdempotent) {
  TempDir tmp;
  {
    auto store = open_ok(tmp.path());
    ASSERT_TRUE(store);
    EXPECT_EQ(store->schema_version(), 1);
    ASSERT_TRUE(store->begin_run("plan", "/i", "h"));
  }
  auto store = open_ok(tmp.path());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schema_version(), 1);
  EXPECT_EQ(query_text(*store, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"), "4");
  EXPECT_EQ(query_text(*store,
                       "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                       "name NOT LIKE 'sqlite_autoindex%'"),
            "4");
  auto runs = store->runs();
  ASSERT_TRUE(runs);
  EXPECT_EQ(runs->size(), 1u);
}

TEST(StateStore, RefusesNewerSchema) {
  TempDir tmp;
  const fs::path db_path = tmp.path() / "state.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = StateStore::open(tmp.path());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::PreconditionFailed);
  const std::string& msg = s.error().message();
  EXPECT_NE(msg.find(db_path.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("99"), std::string::npos) << msg;
  EXPECT_NE(msg.find(" 1 "), std::string::npos) << msg;
}

TEST(StateStore, StepLifecycleCountsAttempts) {
  auto opened = StateStore::open_memory();
  ASSERT_TRUE(opened) << opened.error().message();
  auto& store = **opened;
  auto run = store.begin_run("apply", "/i", "h");
  ASSERT_TRUE(run);
  std::vector<StepRecord> steps{make_step("bmc1", 0, "flash")};
  steps[0].status = StepStatus::Done;  // ignored: new steps are pending
  steps[0].attempts = 7;
  ASSERT_TRUE(store.add_steps(*run, steps));
  EXPECT_GT(steps[0].id, 0);
  EXPECT_EQ(steps[0].run_id, *run);
  EXPECT_EQ(steps[0].status, StepStatus::Pending);

  auto get = [&]() {
    auto all = store.steps(*run);
    EXPECT_TRUE(all);
    EXPECT_EQ(all->size(), 1u);
    return all->at(0);
  };
  StepRecord s = get();
  EXPECT_EQ(s.status, StepStatus::Pending);
  EXPECT_EQ(s.attempts, 0);
  EXPECT_FALSE(s.started_at);
  EXPECT_FALSE(s.finished_at);

  ASSERT_TRUE(store.step_started(s.id));
  s = get();
  EXPECT_EQ(s.status, StepStatus::Running);
  EXPECT_EQ(s.attempts, 1);
  ASSERT_TRUE(s.started_at);
  EXPECT_FALSE(s.finished_at);
  const std::int64_t first_start = *s.started_at;

  // Interrupted and restarted: a second attempt.
  ASSERT_TRUE(store.step_started(s.id));
  s = get();
  EXPECT_EQ(s.status, StepStatus::Running);
  EXPECT_EQ(s.attempts, 2);
  EXPECT_GE(*s.started_at, first_start);

  ASSERT_TRUE(store.step_finished(s.id, StepStatus::Done));
  s = get();
  EXPECT_EQ(s.status, StepStatus::Done);
  EXPECT_EQ(s.attempts, 2);
  ASSERT_TRUE(s.finished_at);
  EXPECT_GE(*s.finished_at, *s.started_at);
  EXPECT_EQ(s.error_code, "");
}

TEST(StateStore, UnknownIdsAreNotFound) {
  auto opened = StateStore::open_memory();
  ASSERT_TRUE(opened);
  auto& store = **opened;
  auto f = store.step_finished(12345, StepStatus::Done);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code(), Errc::NotFound);
  auto s = store.step_started(12345);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::NotFound);
  auto r = store.finish_run(777, "done", json::object());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::NotFound);
  std::vector<StepRecord> steps{make_step("d", 0, "k")};
  auto a = store.add_steps(777, steps);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), Errc::NotFound);
  auto run = store.run(777);
  ASSERT_TRUE(run);
  EXPECT_FALSE(run->has_value());
}

TEST(StateStore, AddStepsIsAllOrNothing) {
  auto opened = StateStore::open_memory();
  ASSERT_TRUE(opened);
  auto& store = **opened;
  auto run = store.begin_run("apply", "/i", "h");
  ASSERT_TRUE(run);
  // Duplicate (run, device, key): the whole batch must be rolled back.
  std::vector<StepRecord> steps{make_step("d", 0, "a"), make_step("d", 1, "b"),
                                make_step("d", 2, "a")};
  auto r = store.add_steps(*run, steps);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Internal);
  auto all = store.steps(*run);
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());
  // And the connection is usable afterwards (no transaction left open).
  std::vector<StepRecord> ok{make_step("d", 0, "a")};
  EXPECT_TRUE(store.add_steps(*run, ok));
}

TEST(StateStore, UnfinishedRunPicksNewestOfKindAndInventory) {
  auto opened = StateStore::open_memory();
  ASSERT_TRUE(opened);
  auto& store = **opened;
  auto begin = [&](const char* kind, const char* inv, const char* status) {
    auto id = store.begin_run(kind, inv, "h");
    EXPECT_TRUE(id);
    if (std::string(status) != "running") {
      EXPECT_TRUE(store.finish_run(*id, status, {}));
    }
    return *id;
  };
  begin("apply", "/a", "interrupted");
  const auto expect_a = begin("apply", "/a", "running");
  begin("apply", "/a", "done");
  begin("apply", "/a", "failed");
  begin("apply", "/b", "running");  // other inventory
  begin("plan", "/a", "running");   // other kind

  auto u = store.unfinished_run("apply", "/a");
  ASSERT_TRUE(u);
  ASSERT_TRUE(u->has_value());
  EXPECT_EQ((*u)->id, expect_a);

  const auto interrupted_b = begin("apply", "/b", "interrupted");
  auto ub = store.unfinished_run("apply", "/b");
  ASSERT_TRUE(ub && ub->has_value());
  EXPECT_EQ((*ub)->id, interrupted_b);
  EXPECT_EQ((*ub)->status, "interrupted");

  auto none = store.unfinished_run("audit", "/a");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST(StateStore, Ordering) {
  auto opened = StateStore::open_memory();
  ASSERT_TRUE(opened);
  auto& store = **opened;
  std::vector<std::int64_t> run_ids;
  for (int i = 0; i < 3; ++i)
    run_ids.push_back(*store.begin_run("apply", "/i", "h"));

  auto runs = store.runs();
  ASSERT_TRUE(runs);
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].id, run_ids[2]);
  EXPECT_EQ((*runs)[2].id, run_ids[0]);
  auto two = store.runs(2);
  ASSERT_TRUE(two);
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[1].id, run_ids[1]);

  // Inserted out of order; steps() returns by device, then seq.
  std::vector<StepRecord> steps{make_step("zeta", 1, "z1"), make_step("alpha", 2, "a2"),
                                make_step("zeta", 0, "z0"), make_step("alpha", 0, "a0"),
                                make_step("alpha", 1, "a1")};
  ASSERT_TRUE(store.add_steps(run_ids[0], steps));
  auto got = store.steps(run_ids[0]);
  ASSERT_TRUE(got);
  std::vector<std::string> keys;
  for (const auto& s : *got)
    keys.push_back(s.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"a0", "a1", "a2", "z0", "z1"}));

  std::vector<StepRecord> later{make_step("alpha", 0, "b0")};
  ASSERT_TRUE(store.add_steps(run_ids[1], later));
  auto dev = store.steps_for_device("alpha", 0);
  ASSERT_TRUE(dev);
  keys.clear();
  for (const auto& s : *dev)
    keys.push_back(s.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"b0", "a1", "a0", "a2"}));  // by id, newest first
  auto dev2 = store.steps_for_device("alpha", 2);
  ASSERT_TRUE(dev2);
  ASSERT_EQ(dev2->size(), 2u);
  EXPECT_EQ((*dev2)[0].key, "b0");
  EXPECT_EQ((*dev2)[1].key, "a1");

  for (int i = 0; i < 3; ++i) {
    AuditRecord a;
    a.inventory = "/i";
    a.exit_code = i;
    a.report = json::object();
    ASSERT_TRUE(store.record_audit(a));
  }
  auto audits = store.audits();
  ASSERT_TRUE(audits);
  ASSERT_EQ(audits->size(), 3u);
  EXPECT_EQ((*audits)[0].exit_code, 2);
  EXPECT_EQ((*audits)[2].exit_code, 0);
  auto one = store.audits(1);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].exit_code, 2);
}

TEST(StateStore, CorruptJsonIsInternalError) {
  auto opened = StateStore::open_memory();
  ASSERT_TRUE(opened);
  auto& store = **opened;
  auto run = store.begin_run("apply", "/i", "h");
  ASSERT_TRUE(run);
  std::vector<StepRecord> steps{make_step("d", 0, "k")};
  ASSERT_TRUE(store.add_steps(*run, steps));
  ASSERT_TRUE(store.exec("UPDATE runs SET summary = '{not json'"));
  ASSERT_TRUE(store.exec("UPDATE steps SET args = '[1,'"));

  auto r = store.run(*run);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Internal);
  EXPECT_NE(r.error().message().find("runs.summary"), std::string::npos) << r.error().message();
  auto all = store.runs();
  ASSERT_FALSE(all);
  EXPECT_EQ(all.error().code(), Errc::Internal);
  auto s = store.steps(*run);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::Internal);

  ASSERT_TRUE(store.exec("UPDATE steps SET args = '{}', status = 'bogus'"));
  auto bad_status = store.steps(*run);
  ASSERT_FALSE(bad_status);
  EXPECT_EQ(bad_status.error().code(), Errc::Internal);
}

TEST(StateStore, ExecAndSqlErrors) {
  auto opened = StateStore::open_memory();
  ASSERT_TRUE(opened);
  auto& store = **opened;
  EXPECT_EQ(store.path(), fs::path(":memory:"));
  ASSERT_TRUE(store.exec("CREATE TABLE leases (mac TEXT PRIMARY KEY, ip TEXT NOT NULL)"));
  auto bad = store.exec("CREATE TABLE leases (x)");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::Internal);
  EXPECT_NE(bad.error().message().find("already exists"), std::string::npos)
      << bad.error().message();
}

TEST(StateStore, CommittedDataSurvivesAKilledProcess) {
  TempDir tmp;
  const pid_t pid = ::fork();
  ASSERT_NE(pid, -1);
  if (pid == 0) {
    // Child: commit a run, its steps and one step start, then die without any cleanup.
    auto s = StateStore::open(tmp.path());
    if (!s) ::_exit(10);
    auto run = (*s)->begin_run("apply", "/inv", "hash");
    if (!run) ::_exit(11);
    std::vector<StepRecord> steps{make_step("sw1", 0, "a"), make_step("sw1", 1, "b")};
    if (!(*s)->add_steps(*run, steps)) ::_exit(12);
    if (!(*s)->step_started(steps[0].id)) ::_exit(13);
    ::kill(::getpid(), SIGKILL);
    ::_exit(14);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited with " << WEXITSTATUS(wstatus);
  EXPECT_EQ(WTERMSIG(wstatus), SIGKILL);

  auto store = open_ok(tmp.path());
  ASSERT_TRUE(store);
  auto run = store->unfinished_run("apply", "/inv");
  ASSERT_TRUE(run);
  ASSERT_TRUE(run->has_value());
  EXPECT_EQ((*run)->status, "running");
  auto steps = store->steps((*run)->id);
  ASSERT_TRUE(steps);
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].key, "a");
  EXPECT_EQ((*steps)[0].status, StepStatus::Running);
  EXPECT_EQ((*steps)[0].attempts, 1);
  EXPECT_EQ((*steps)[1].key, "b");
  EXPECT_EQ((*steps)[1].status, StepStatus::Pending);
}

TEST(StateStore, ConcurrentObservationsFromFourThreads) {
  TempDir tmp;
  auto store = open_ok(tmp.path());
  ASSERT_TRUE(store);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        ObservationRecord o;
        o.device = "dev" + std::to_string(t);
        o.observed_at = i;
        o.reachable = (i % 2) == 0;
        o.data = {{"i", i}};
        if (!store->record_observation(o)) ++errors;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(query_text(*store, "SELECT count(*) FROM observations"), "800");
  for (int t = 0; t < 4; ++t) {
    auto latest = store->latest_observation("dev" + std::to_string(t));
    ASSERT_TRUE(latest && latest->has_value());
    EXPECT_EQ((*latest)->observed_at, 199);
    EXPECT_EQ((*latest)->data, (json{{"i", 199}}));
  }
}

TEST(StateStore, ConcurrentTransactionsFromThreads) {
  TempDir tmp;
  auto store = open_ok(tmp.path());
  ASSERT_TRUE(store);
  auto run = store->begin_run("apply", "/i", "h");
  ASSERT_TRUE(run);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string dev = "dev" + std::to_string(t);
        std::vector<StepRecord> steps{make_step(dev, 2 * i, "k" + std::to_string(2 * i)),
                                      make_step(dev, 2 * i + 1, "k" + std::to_string(2 * i + 1))};
        if (!store->add_steps(*run, steps)) ++errors;
        if (!store->step_started(steps[0].id)) ++errors;
        if (!store->step_finished(steps[0].id, StepStatus::Done)) ++errors;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(errors.load(), 0);
  auto steps = store->steps(*run);
  ASSERT_TRUE(steps);
  EXPECT_EQ(steps->size(), 200u);
  EXPECT_EQ(query_text(*store, "SELECT count(*) FROM steps WHERE status = 'done'"), "100");
}

// default_state_dir() as a non-root user: in-process, or in a child that drops to nobody.
std::string default_state_dir_unprivileged() {
  if (::geteuid() != 0) return default_state_dir().string();
  int fds[2];
  if (::pipe(fds) != 0) return "<pipe failed>";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    const std::string dir = default_state_dir().string();
    const bool ok = ::write(fds[1], dir.data(), dir.size()) == static_cast<ssize_t>(dir.size());
    ::_exit(ok ? 0 : 3);
  }
  ::close(fds[1]);
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) return "<child failed>";
  return out;
}

TEST(StateStore, DefaultStateDir) {
  {
    EnvVar state("LABCTL_STATE_DIR", "/srv/labstate");
    EnvVar xdg("XDG_STATE_HOME", "/xdg");
    EXPECT_EQ(default_state_dir(), fs::path("/srv/labstate"));
  }
  EnvVar state("LABCTL_STATE_DIR", "");  // empty: ignored
  EnvVar home("HOME", "/home/tester");
  if (::geteuid() == 0) {
    EnvVar xdg("XDG_STATE_HOME", "/xdg");
    EXPECT_EQ(default_state_dir(), fs::path("/var/lib/labctl"));
  }
  {
    EnvVar xdg("XDG_STATE_HOME", "/xdg/state");
    EXPECT_EQ(default_state_dir_unprivileged(), "/xdg/state/labctl");
  }
  {
    EnvVar xdg("XDG_STATE_HOME", "relative/state");  // not absolute: ignored
    EXPECT_EQ(default_state_dir_unprivileged(), "/home/tester/.local/state/labctl");
  }
  {
    EnvVar xdg("XDG_STATE_HOME", nullptr);
    EXPECT_EQ(default_state_dir_unprivileged(), "/home/tester/.local/state/labctl");
  }
}

TEST(StateStore, StepStatusNames) {
  for (auto s : {StepStatus::Pending, StepStatus::Running, StepStatus::Done, StepStatus::Failed,
                 StepStatus::Skipped})
    EXPECT_EQ(step_status_from_name(step_status_name(s)), s);
  EXPECT_EQ(step_status_name(StepStatus::Skipped), "skipped");
  EXPECT_EQ(step_status_name(StepStatus::Running), "running");
  EXPECT_FALSE(step_status_from_name("Done"));
  EXPECT_FALSE(step_status_from_name(""));
}

}  // namespace
}  // namespace labctl::controller
