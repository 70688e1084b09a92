#include "controller/progress.h"

#include <chrono>
#include <ctime>
#include <iomanip>
#include <map>
#include <mutex>
#include <ostream>
#include <sstream>

namespace labctl::controller {

namespace {

using Clock = std::chrono::steady_clock;

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::ostringstream ss;
  ss << std::put_time(&tm, "%Y-%m-%dT%H:%M:%S") << '.' << std::setw(3) << std::setfill('0') << ms
     << 'Z';
  return ss.str();
}

std::string seconds(std::chrono::milliseconds d) {
  std::ostringstream ss;
  ss << std::fixed << std::setprecision(1) << static_cast<double>(d.count()) / 1000.0 << "s";
  return ss.str();
}

class PlainProgress : public ProgressSink {
 public:
  explicit PlainProgress(std::ostream& out) : out_(out) {}
  void run_started(std::size_t devices, std::size_t steps, std::size_t already) override {
    line("run", std::to_string(steps - already) + " steps to run on " + std::to_string(devices) +
                    " devices" +
                    (already ? " (" + std::to_string(already) + " already done)" : ""));
  }
  void step_started(const std::string& d, const StepRecord& s, int index, int count,
                    int attempt) override {
    line(d, "[" + std::to_string(index) + "/" + std::to_string(count) + "] " + s.title +
                (attempt > 1 ? " (attempt " + std::to_string(attempt) + ")" : "") + ": started");
  }
  void step_progress(const std::string&, std::uint64_t, std::uint64_t, std::string_view) override {}
  void step_finished(const std::string& d, const StepRecord& s, StepStatus st, const Error* e,
                     bool retry, std::chrono::milliseconds elapsed) override {
    if (st == StepStatus::Done)
      line(d, s.title + ": done in " + seconds(elapsed));
    else if (st == StepStatus::Skipped)
      line(d, s.title + ": already done (checked on the device)");
    else
      line(d, s.title + ": failed (" + std::string(e ? errc_name(e->code()) : "error") +
                  "): " + (e ? e->message() : "") + (retry ? "; will retry" : ""));
  }
  void device_finished(const std::string& d, bool ok, const std::string& summary) override {
    line(d, (ok ? "done: " : "not finished: ") + summary);
  }
  void run_finished() override {}

 private:
  void line(const std::string& who, const std::string& what) {
    std::lock_guard lock(mu_);
    out_ << timestamp() << ' ' << who << ": " << what << '\n' << std::flush;
  }
  std::ostream& out_;
  std::mutex mu_;
};

// Redraws a block of lines in place: finished devices scroll up as permanent lines, active ones
// are redrawn under them with the overall bar last.
class TerminalProgress : public ProgressSink {
 public:
  TerminalProgress(std::ostream& out, bool color) : out_(out), color_(color) {}
  void run_started(std::size_t devices, std::size_t steps, std::size_t already) override {
    std::lock_guard lock(mu_);
    total_ = steps;
    done_ = already;
    devices_ = devices;
    start_ = Clock::now();
    redraw();
  }
  void step_started(const std::string& d, const StepRecord& s, int index, int count,
                    int attempt) override {
    std::lock_guard lock(mu_);
    auto& a = active_[d];
    a.text = "[" + std::to_string(index) + "/" + std::to_string(count) + "] " + s.title +
             (attempt > 1 ? " (attempt " + std::to_string(attempt) + ")" : "");
    a.since = Clock::now();
    a.detail.clear();
    throttle();
  }
  void step_progress(const std::string& d, std::uint64_t done, std::uint64_t total,
                     std::string_view note) override {
    std::lock_guard lock(mu_);
    auto& a = active_[d];
    a.detail = total ? std::to_string(done * 100 / total) + "%" : std::to_string(done);
    if (!note.empty()) a.detail += " " + std::string(note);
    throttle();
  }
  void step_finished(const std::string& d, const StepRecord& s, StepStatus st, const Error* e,
                     bool retry, std::chrono::milliseconds) override {
    std::lock_guard lock(mu_);
    if (st == StepStatus::Done || st == StepStatus::Skipped) ++done_;
    if (st == StepStatus::Failed && e) {
      clear();
      out_ << "  " << d << ": " << s.title << ": " << errc_name(e->code()) << ": " << e->message()
           << (retry ? " (will retry)" : "") << '\n';
      drawn_ = 0;
    }
    throttle();
  }
  void device_finished(const std::string& d, bool ok, const std::string& summary) override {
    std::lock_guard lock(mu_);
    active_.erase(d);
    clear();
    const char* mark =
        ok ? (color_ ? "\x1b[32m✓\x1b[0m " : "✓ ") : (color_ ? "\x1b[31m✗\x1b[0m " : "✗ ");
    out_ << mark << d << ": " << summary << '\n';
    drawn_ = 0;
    redraw();
  }
  void run_finished() override {
    std::lock_guard lock(mu_);
    clear();
    out_ << std::flush;
  }

 private:
  struct Active {
    std::string text, detail;
    Clock::time_point since;
  };
  void throttle() {
    if (Clock::now() - last_ >= std::chrono::milliseconds(100)) redraw();
  }
  void clear() {
    for (int i = 0; i < drawn_; ++i)
      out_ << "\x1b[1A\x1b[2K";
    drawn_ = 0;
  }
  void redraw() {
    clear();
    auto now = Clock::now();
    for (const auto& [d, a] : active_) {
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - a.since).count();
      out_ << "  " << d << ": " << a.text << (a.detail.empty() ? "" : "  " + a.detail) << "  "
           << secs << "s\n";
      ++drawn_;
    }
    const int width = 30;
    int filled = total_ ? static_cast<int>(done_ * width / total_) : width;
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - start_).count();
    out_ << "[" << std::string(static_cast<std::size_t>(filled), '#')
         << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << done_ << "/"
         << total_ << " steps, " << devices_ << " devices, " << secs << "s\n"
         << std::flush;
    ++drawn_;
    last_ = now;
  }
  std::ostream& out_;
  const bool color_;
  std::mutex mu_;
  std::map<std::string, Active> active_;
  std::size_t total_ = 0, done_ = 0, devices_ = 0;
  int drawn_ = 0;
  Clock::time_point start_ = Clock::now(), last_{};
};

}  // namespace

std::unique_ptr<ProgressSink> make_plain_progress(std::ostream& out) {
  return std::make_unique<PlainProgress>(out);
}
std::unique_ptr<ProgressSink> make_terminal_progress(std::ostream& out, bool color) {
  return std::make_unique<TerminalProgress>(out, color);
}

}  // namespace labctl::controller
