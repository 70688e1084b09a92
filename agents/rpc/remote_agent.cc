#include "agents/rpc/remote_agent.h"

#include <curl/curl.h>

#include <cstdio>
#include <thread>

namespace labctl::agents::rpc {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  std::string body;
  std::string pending;  // a partial line of a stream
  const RemoteAgent::LineFn* on_line = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  const std::atomic<bool>* cancel2 = nullptr;
  std::chrono::steady_clock::time_point deadline{};
  bool too_long = false;
};

std::size_t on_data(char* p, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t len = size * n;
  if (t->on_line == nullptr || !*t->on_line) {
    if (t->body.size() + len > kMaxConfigBody) {
      t->too_long = true;
      return 0;
    }
    t->body.append(p, len);
    return len;
  }
  t->pending.append(p, len);
  std::size_t start = 0;
  for (;;) {
    const auto nl = t->pending.find('\n', start);
    if (nl == std::string::npos) break;
    (*t->on_line)(std::string_view(t->pending).substr(start, nl - start));
    start = nl + 1;
  }
  t->pending.erase(0, start);
  if (t->pending.size() > kMaxStreamLine) {
    t->too_long = true;
    return 0;
  }
  return len;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* t = static_cast<Transfer*>(user);
  if (t->cancel && t->cancel->load()) return 1;
  if (t->cancel2 && t->cancel2->load()) return 1;
  if (t->deadline != std::chrono::steady_clock::time_point{} &&
      std::chrono::steady_clock::now() > t->deadline)
    return 1;
  return 0;
}

std::size_t read_file_cb(char* buf, std::size_t size, std::size_t n, void* user) {
  return std::fread(buf, size, n, static_cast<std::FILE*>(user));
}

bool cancelled(const std::atomic<bool>* a, const std::atomic<bool>* b) {
  return (a && a->load()) || (b && b->load());
}

// Sleeps up to `d`, waking early on cancellation; false when cancelled.
bool pause(std::chrono::milliseconds d, const std::atomic<bool>* a, const std::atomic<bool>* b) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
    if (cancelled(a, b)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !cancelled(a, b);
}

}  // namespace

// Easy handles with their live connections, reused by whichever thread calls next.
struct RemoteAgent::Pool {
  std::mutex mu;
  std::vector<CURL*> idle;
  ~Pool() {
    for (CURL* c : idle)
      curl_easy_cleanup(c);
  }
  CURL* take() {
    {
      std::lock_guard lock(mu);
      if (!idle.empty()) {
        CURL* c = idle.back();
        idle.pop_back();
        curl_easy_reset(c);  // keeps the connection and TLS session caches
        return c;
      }
    }
    return curl_easy_init();
  }
  void give(CURL* c) {
    std::lock_guard lock(mu);
    idle.push_back(c);
  }
};

RemoteAgent::RemoteAgent(RemoteAgentOptions options)
    : opt_(std::move(options)), pool_(std::make_unique<Pool>()) {
  global_init();
  config_id_ = config_id(opt_.config);
  while (!opt_.url.empty() && opt_.url.back() == '/')
    opt_.url.pop_back();
}

RemoteAgent::~RemoteAgent() = default;

std::string RemoteAgent::where() const {
  return "agent '" + opt_.name + "' (" + opt_.url + ")";
}

RemoteAgent::Counters RemoteAgent::counters() const {
  std::lock_guard lock(counters_mu_);
  return counters_;
}

Result<RemoteAgent::Http> RemoteAgent::exchange(const std::string& method, const std::string& path,
                                                const std::string& body, bool repeatable,
                                                const LineFn& on_line,
                                                const std::atomic<bool>* cancel,
                                                std::chrono::steady_clock::time_point deadline) {
  const int attempts = std::max(1, opt_.retries);
  // Answers 429 are waited out, up to about a minute in all.
  constexpr int kMaxThrottled = 100;
  int throttled = 0;
  for (int attempt = 1;; ++attempt) {
    {
      std::lock_guard lock(counters_mu_);
      ++counters_.calls;
      if (attempt > 1) ++counters_.retries;
    }
    CURL* c = pool_->take();
    if (c == nullptr) return fail(Errc::Internal, "libcurl: cannot make a handle");
    Transfer t;
    t.on_line = &on_line;
    t.cancel = opt_.cancel;
    t.cancel2 = cancel;
    t.deadline = deadline;
    const std::string url = opt_.url + path;
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    headers = curl_slist_append(headers, ("Labctl-Api: " + std::to_string(kApiVersion)).c_str());
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_CAINFO, opt_.ca.c_str());
    curl_easy_setopt(c, CURLOPT_SSLCERT, opt_.cert.c_str());
    curl_easy_setopt(c, CURLOPT_SSLKEY, opt_.key.c_str());
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt_.connect_timeout.count()));
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    if (on_line) {
      // A step runs as long as it needs; the agent's keepalive lines show it is alive.
      curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(
          c, CURLOPT_LOW_SPEED_TIME,
          static_cast<long>(std::max<std::int64_t>(
              1, std::chrono::duration_cast<std::chrono::seconds>(opt_.stall_timeout).count())));
    } else {
      curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(opt_.call_timeout.count()));
    }
    std::FILE* upload = nullptr;
    if (method == "GET") {
      curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (method == "UPLOAD") {  // PUT of a file's bytes; `body` is its path
      upload = std::fopen(body.c_str(), "rb");
      if (upload == nullptr) {
        curl_slist_free_all(headers);
        pool_->give(c);
        return fail(Errc::Internal, body + ": cannot open for upload");
      }
      std::fseek(upload, 0, SEEK_END);
      const long size = std::ftell(upload);
      std::fseek(upload, 0, SEEK_SET);
      curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(c, CURLOPT_READFUNCTION, read_file_cb);
      curl_easy_setopt(c, CURLOPT_READDATA, upload);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
      curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 0L);
      curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    } else {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    long connects = 0;
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
    if (upload) std::fclose(upload);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
    curl_slist_free_all(headers);
    pool_->give(c);
    if (rc == CURLE_OK && status == 429 && throttled < kMaxThrottled) {
      // The agent's rate limit: the call was not carried out, so it is always safe to repeat.
      ++throttled;
      --attempt;
      if (!pause(std::chrono::milliseconds(50 + 50 * std::min(throttled, 20)), opt_.cancel, cancel))
        return fail(Errc::Cancelled, where() + ": cancelled");
      continue;
    }
    if (rc == CURLE_OK) {
      if (on_line && !t.pending.empty()) on_line(t.pending);
      return Http{status, std::move(t.body)};
    }
    const std::string detail = errbuf[0] ? std::string(errbuf) : curl_easy_strerror(rc);
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
      if (cancelled(opt_.cancel, cancel)) return fail(Errc::Cancelled, where() + ": cancelled");
      return fail(Errc::Timeout, where() + ": no result before the deadline");
    }
    if (t.too_long)
      return fail(Errc::InvalidInput, where() + ": the answer is over the size limit");
    // Certificate and handshake failures do not heal by themselves: never retried.
    if (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION ||
        rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE ||
        rc == CURLE_SSL_ISSUER_ERROR || rc == CURLE_SSL_CIPHER)
      return fail(Errc::AuthFailed, where() + ": TLS: " + detail);
    // With TLS 1.3 the server checks the client's certificate after the client thinks the
    // handshake is over: its refusal arrives as an alert on the first read.
    if (detail.find("alert") != std::string::npos &&
        (detail.find("handshake failure") != std::string::npos ||
         detail.find("certificate") != std::string::npos ||
         detail.find("unknown ca") != std::string::npos))
      return fail(Errc::AuthFailed,
                  where() + ": the agent refused this controller's certificate (" + detail + ")");
    const bool never_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
    if ((repeatable || never_sent) && attempt < attempts) {
      if (!pause(std::chrono::milliseconds(250 << (attempt - 1)), opt_.cancel, cancel))
        return fail(Errc::Cancelled, where() + ": cancelled");
      continue;
    }
    (void)connects;
    return fail(Errc::Unreachable, where() + ": " + detail);
  }
}

Error RemoteAgent::agent_error(const Http& h, std::optional<NeedFirmware>* need) const {
  Error e = decode_error(h.body, static_cast<int>(h.status), need);
  e.context(where());
  return e;
}

Status RemoteAgent::ensure_config() {
  std::lock_guard lock(config_mu_);
  if (pushed_) return {};
  auto h = exchange("PUT", "/v1/config", encode(opt_.config).dump(), true);
  if (!h) return fail(std::move(h.error()));
  if (h->status != 200) return fail(agent_error(*h, nullptr).context("configuration"));
  auto ack = decode_config_ack(h->body);
  if (!ack) return fail(std::move(ack.error()).context(where()));
  if (ack->config != config_id_)
    return fail(Errc::VerifyMismatch, where() + ": holds configuration " + ack->config +
                                          " after the push of " + config_id_);
  pushed_ = true;
  std::lock_guard c(counters_mu_);
  ++counters_.config_pushes;
  return {};
}

Result<ConfigAck> RemoteAgent::push_config() {
  {
    std::lock_guard lock(config_mu_);
    pushed_ = false;
  }
  auto h = exchange("PUT", "/v1/config", encode(opt_.config).dump(), true);
  if (!h) return fail(std::move(h.error()));
  if (h->status != 200) return fail(agent_error(*h, nullptr).context("configuration"));
  auto ack = decode_config_ack(h->body);
  if (!ack) return fail(std::move(ack.error()).context(where()));
  std::lock_guard lock(config_mu_);
  pushed_ = ack->config == config_id_;
  return ack;
}

Status RemoteAgent::upload_firmware(const NeedFirmware& need) {
  const auto* fam = opt_.catalog ? opt_.catalog->family(need.family) : nullptr;
  const auto* rel = fam ? fam->find(need.release) : nullptr;
  if (rel == nullptr)
    return fail(Errc::NotFound, where() + " asks for firmware " + need.family + " " + need.release +
                                    ", which the catalog does not have");
  if (!opt_.firmware)
    return fail(Errc::NotSupported, "no firmware store to send " + need.release + " from");
  auto images = opt_.firmware(*fam, *rel);
  if (!images) return fail(std::move(images.error()));
  FirmwareManifest m{need.family, need.release, {}};
  for (const auto& i : *images)
    m.files.push_back({i.name, i.sha256, i.size});
  auto h = exchange("POST", "/v1/firmware", encode(m).dump(), true);
  if (!h) return fail(std::move(h.error()));
  if (h->status != 200) return fail(agent_error(*h, nullptr).context("firmware manifest"));
  auto j = json::parse(h->body, nullptr, false);
  if (!j.is_object() || !j.contains("missing") || !j["missing"].is_array())
    return fail(Errc::Internal, where() + ": a firmware answer without 'missing'");
  for (const auto& sha : j["missing"]) {
    if (!sha.is_string()) continue;
    const auto* img = [&]() -> const sdk::FirmwareImage* {
      for (const auto& i : *images)
        if (i.sha256 == sha.get<std::string>()) return &i;
      return nullptr;
    }();
    if (img == nullptr) continue;
    auto up = exchange("UPLOAD", "/v1/blobs/" + img->sha256, img->path.string(), true);
    if (!up) return fail(std::move(up.error()).context("upload " + img->name));
    if (up->status != 201 && up->status != 200)
      return fail(agent_error(*up, nullptr).context("upload " + img->name));
    std::lock_guard c(counters_mu_);
    ++counters_.blobs_uploaded;
  }
  return {};
}

Result<json> RemoteAgent::call(const std::string& path, const json& body, bool repeatable) {
  bool pushed_again = false;
  std::set<std::pair<std::string, std::string>> uploaded;
  for (;;) {
    if (auto s = ensure_config(); !s) return fail(std::move(s.error()));
    json b = body;
    b["config"] = config_id_;
    auto h = exchange("POST", path, b.dump(), repeatable);
    if (!h) return fail(std::move(h.error()));
    if (h->status == 200) {
      auto j = json::parse(h->body, nullptr, false);
      if (!j.is_object()) return fail(Errc::Internal, where() + ": an answer that is not JSON");
      return j;
    }
    std::optional<NeedFirmware> need;
    Error e = agent_error(*h, &need);
    if (h->status == 409 && !pushed_again) {  // the agent restarted, or another controller
      pushed_again = true;
      std::lock_guard lock(config_mu_);
      pushed_ = false;
      continue;
    }
    if (need && uploaded.insert({need->family, need->release}).second) {
      if (auto s = upload_firmware(*need); !s) return fail(std::move(s.error()));
      continue;
    }
    return fail(std::move(e));
  }
}

Result<sdk::Observation> RemoteAgent::probe(const sdk::Device& device) {
  auto j = call("/v1/probe", {{"device", device.name}}, true);
  if (!j) return fail(std::move(j.error()));
  if (!j->contains("observation"))
    return fail(Errc::Internal, where() + ": a probe answer without an observation");
  auto o = sdk::Observation::from_json((*j)["observation"]);
  if (!o) return fail(std::move(o.error()).context(where()));
  return o;
}

Result<bool> RemoteAgent::step_done(const sdk::Device& device, const sdk::Step& step) {
  auto j = call("/v1/step-done", {{"device", device.name}, {"step", step.to_json()}}, true);
  if (!j) return fail(std::move(j.error()));
  if (!j->contains("done") || !(*j)["done"].is_boolean())
    return fail(Errc::Internal, where() + ": a step-done answer without 'done'");
  return (*j)["done"].get<bool>();
}

Result<sdk::VerbResult> RemoteAgent::run_verb(const sdk::Device& device, const std::string& verb,
                                              const sdk::json& args) {
  auto j = call("/v1/verb", {{"device", device.name}, {"verb", verb}, {"args", args}}, false);
  if (!j) return fail(std::move(j.error()));
  sdk::VerbResult r;
  r.data = j->value("data", json::object());
  if (auto it = j->find("text"); it != j->end() && it->is_string()) r.text = it->get<std::string>();
  return r;
}

Status RemoteAgent::run_step(const sdk::Device& device, const sdk::Step& step,
                             const StepControl& control) {
  bool pushed_again = false;
  std::set<std::pair<std::string, std::string>> uploaded;
  for (;;) {
    if (auto s = ensure_config(); !s) return fail(std::move(s.error()));
    StepCall c;
    c.config = config_id_;
    c.device = device.name;
    c.step = step;
    const auto now = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point local_deadline{};
    if (control.deadline != std::chrono::steady_clock::time_point::max()) {
      c.timeout_ms = std::max<std::int64_t>(
          1, std::chrono::duration_cast<std::chrono::milliseconds>(control.deadline - now).count());
      // The agent ends the step at the deadline; this side gives it a little longer to say so.
      local_deadline = control.deadline + std::chrono::seconds(10);
    }
    std::optional<StreamLine> last;
    std::optional<Error> stream_error;
    LineFn on_line = [&](std::string_view line) {
      if (line.empty()) return;
      auto l = decode_line(line);
      if (!l) {
        if (!stream_error) stream_error = l.error();
        return;
      }
      if (l->kind == StreamLine::Kind::Progress && control.progress)
        control.progress(l->done, l->total, l->text);
      if (l->kind == StreamLine::Kind::Ok || l->kind == StreamLine::Kind::Failed) last = *l;
    };
    auto h = exchange("POST", "/v1/run-step", encode(c).dump(), false, on_line, control.cancel,
                      local_deadline);
    if (!h) {
      if (h.error().code() == Errc::Unreachable)
        return fail(Errc::Unreachable, h.error().message() +
                                           " (during the step; it is checked on the device "
                                           "before it runs again)");
      return fail(std::move(h.error()));
    }
    if (h->status != 200) {
      std::optional<NeedFirmware> need;
      Error e = agent_error(*h, &need);
      if (h->status == 409 && !pushed_again) {
        pushed_again = true;
        std::lock_guard lock(config_mu_);
        pushed_ = false;
        continue;
      }
      return fail(std::move(e));
    }
    if (stream_error) return fail(std::move(*stream_error).context(where()));
    if (!last)
      return fail(Errc::Unreachable,
                  where() + ": the step's stream ended without a result (the agent went away)");
    if (last->kind == StreamLine::Kind::Ok) return {};
    if (last->need_firmware &&
        uploaded.insert({last->need_firmware->family, last->need_firmware->release}).second) {
      if (auto s = upload_firmware({last->need_firmware->family, last->need_firmware->release}); !s)
        return fail(std::move(s.error()));
      continue;  // steps are idempotent: run it again now that the files are there
    }
    Error e = last->error.value_or(Error(Errc::Internal, "failed"));
    return fail(std::move(e));
  }
}

Result<AgentStatus> RemoteAgent::status() {
  auto h = exchange("GET", "/v1/status", "", true);
  if (!h) return fail(std::move(h.error()));
  if (h->status != 200) return fail(agent_error(*h, nullptr));
  auto s = decode_status(h->body);
  if (!s) return fail(std::move(s.error()).context(where()));
  return s;
}

Result<json> RemoteAgent::events(std::uint64_t after, int wait_s) {
  auto h = exchange("GET",
                    "/v1/events?after=" + std::to_string(after) + "&wait=" + std::to_string(wait_s),
                    "", true);
  if (!h) return fail(std::move(h.error()));
  if (h->status != 200) return fail(agent_error(*h, nullptr));
  auto j = json::parse(h->body, nullptr, false);
  if (!j.is_object()) return fail(Errc::Internal, where() + ": events that are not JSON");
  return j;
}

}  // namespace labctl::agents::rpc
