#include "agents/rpc/server.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <httplib.h>
#include <yaml-cpp/yaml.h>

#include "agents/agent.h"
#include "agents/rpc/pki.h"
#include "agents/rpc/protocol.h"
#include "agents/services.h"
#include "common/digest.h"
#include "common/text.h"
#include "inventory/loader.h"

namespace labctl::agents::rpc {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kJson = "application/json";
constexpr std::size_t kMaxEvents = 10'000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string iso_now() {
  const auto ms = now_ms();
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

Result<std::pair<std::string, int>> parse_listen(const std::string& s) {
  std::string host;
  std::string port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return fail(Errc::InvalidInput, "listen '" + s + "': expected [ADDRESS]:PORT");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon)
      return fail(Errc::InvalidInput, "listen '" + s + "': expected HOST:PORT");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  int p = -1;
  try {
    std::size_t used = 0;
    p = std::stoi(port, &used);
    if (used != port.size()) p = -1;
  } catch (const std::exception&) {
    p = -1;
  }
  if (host.empty() || p < 0 || p > 65535)
    return fail(Errc::InvalidInput, "listen '" + s + "': the port must be 0..65535");
  return std::make_pair(host, p);
}

Status write_atomic(const fs::path& path, const std::string& data) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out) return fail(Errc::Internal, tmp.string() + ": cannot write");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return fail(Errc::Internal, path.string() + ": " + ec.message());
  return {};
}

std::optional<std::string> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Set by a handler around a plugin call: the firmware the call found missing on this agent.
thread_local std::optional<NeedFirmware>* t_need_firmware = nullptr;

// The SSL_CTX ex_data slot holding the pinned controller fingerprint (a std::string*).
int pin_index() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

// After OpenSSL's own chain check (CA, validity, clientAuth purpose): the leaf must be the pinned
// controller certificate when the configuration names one.
int verify_peer(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok != 1) return 0;
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return 0;
  const auto* pin =
      static_cast<const std::string*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), pin_index()));
  if (pin == nullptr || pin->empty()) return 1;
  X509* leaf = X509_STORE_CTX_get_current_cert(store);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (leaf == nullptr || X509_digest(leaf, EVP_sha256(), md, &n) != 1) return 0;
  if (hex_lower(std::span<const unsigned char>(md, n)) != *pin) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return 1;
}

std::string peer_name(const httplib::Request& req) {
  if (req.ssl == nullptr) return "";
  X509* c = SSL_get1_peer_certificate(req.ssl);
  if (c == nullptr) return "";
  char buf[256] = "";
  X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, buf, sizeof buf);
  X509_free(c);
  return buf;
}

void send_error(httplib::Response& res, const Error& e, int status = 0,
                const std::optional<NeedFirmware>& need = std::nullopt) {
  res.status = status ? status : http_status(e.code());
  res.set_content(encode_error(e, need).dump(-1, ' ', false, json::error_handler_t::replace),
                  kJson);
}

void send_json(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), kJson);
}

struct Bucket {
  double tokens = 0;
  std::chrono::steady_clock::time_point last;
};

}  // namespace

Result<AgentConfig> load_agent_config(const fs::path& path, const std::string& listen) {
  AgentConfig c;
  c.file = path;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    return fail(Errc::InvalidInput, path.string() + ": " + e.what());
  }
  if (!root.IsMap()) return fail(Errc::InvalidInput, path.string() + ": not a YAML mapping");
  const fs::path base = path.parent_path();
  auto at = [&](const YAML::Node& n) {
    return path.string() + ":" + std::to_string(n.Mark().line + 1) + ":" +
           std::to_string(n.Mark().column + 1);
  };
  static const std::vector<std::string> kKeys = {"name", "listen",     "cert",      "key",
                                                 "ca",   "controller", "state-dir", "max-body",
                                                 "rate", "threads",    "dhcp-port", "tftp-port"};
  std::string listen_text = listen;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>("");
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end())
      return fail(Errc::InvalidInput, at(kv.first) + ": unknown key '" + key + "'");
    if (!kv.second.IsScalar())
      return fail(Errc::InvalidInput, at(kv.second) + ": '" + key + "' must be a scalar");
    const std::string v = kv.second.Scalar();
    auto rel = [&](const std::string& p) {
      return fs::path(p).is_absolute() ? fs::path(p) : base / p;
    };
    auto number = [&](double lo, double hi) -> Result<double> {
      try {
        std::size_t used = 0;
        const double d = std::stod(v, &used);
        if (used == v.size() && d >= lo && d <= hi) return d;
      } catch (const std::exception&) {
      }
      char range[64];
      std::snprintf(range, sizeof range, "[%g, %g]", lo, hi);
      return fail(Errc::InvalidInput,
                  at(kv.second) + ": '" + key + "' must be a number in " + range);
    };
    if (key == "name") {
      c.name = v;
    } else if (key == "listen") {
      if (listen.empty()) listen_text = v;
    } else if (key == "cert") {
      c.cert = rel(v);
    } else if (key == "key") {
      c.key = rel(v);
    } else if (key == "ca") {
      c.ca = rel(v);
    } else if (key == "controller") {
      c.controller = rel(v);
    } else if (key == "state-dir") {
      c.state_dir = rel(v);
    } else if (key == "max-body") {
      auto n = text::parse_size(v);
      if (!n || *n < 1024 || *n > kMaxConfigBody)
        return fail(Errc::InvalidInput, at(kv.second) + ": max-body must be a size from 1KiB to " +
                                            std::to_string(kMaxConfigBody) + " bytes");
      c.max_body = static_cast<std::size_t>(*n);
    } else if (key == "rate") {
      auto n = number(1, 1e6);
      if (!n) return fail(n.error());
      c.rate = *n;
    } else if (key == "threads") {
      auto n = number(4, 1024);
      if (!n) return fail(n.error());
      c.threads = static_cast<int>(*n);
    } else if (key == "dhcp-port" || key == "tftp-port") {
      auto n = number(0, 65535);
      if (!n) return fail(n.error());
      (key == "dhcp-port" ? c.dhcp_port : c.tftp_port) = static_cast<int>(*n);
    }
  }
  for (const char* k : {"name", "cert", "key", "ca", "state-dir"}) {
    const bool missing = std::string(k) == "name"   ? c.name.empty()
                         : std::string(k) == "cert" ? c.cert.empty()
                         : std::string(k) == "key"  ? c.key.empty()
                         : std::string(k) == "ca"   ? c.ca.empty()
                                                    : c.state_dir.empty();
    if (missing) return fail(Errc::InvalidInput, path.string() + ": '" + k + "' is missing");
  }
  if (listen_text.empty()) listen_text = "0.0.0.0:7443";
  auto l = parse_listen(listen_text);
  if (!l) return fail(std::move(l.error()).context(path.string()));
  c.listen_host = l->first;
  c.listen_port = l->second;
  return c;
}

class AgentServer::Impl {
 public:
  Impl(AgentConfig c, const plugins::Registry& r, LogFn l)
      : cfg(std::move(c)), registry(r), log_fn(std::move(l)) {}

  AgentConfig cfg;
  const plugins::Registry& registry;
  LogFn log_fn;
  std::string pin;  // the controller certificate's fingerprint, "" when not pinned
  std::unique_ptr<httplib::SSLServer> http;
  std::thread listener;
  int bound_port = 0;
  std::atomic<bool> cancel_all{false};
  std::int64_t started_ms = now_ms();
  std::atomic<std::int64_t> running_steps{0};

  struct Loaded {
    std::string id;
    inventory::Inventory inv;
    std::unique_ptr<LocalAgent> agent;
  };
  std::mutex config_mu;  // one push at a time
  mutable std::shared_mutex loaded_mu;
  std::shared_ptr<Loaded> loaded;
  std::unique_ptr<NetServices> services;  // under config_mu
  std::vector<std::string> tftp_segments, dhcp_segments;
  std::string services_error;

  std::mutex fw_mu;
  std::map<std::pair<std::string, std::string>, FirmwareManifest> manifests;

  std::mutex ev_mu;
  std::condition_variable ev_cv;
  std::deque<std::pair<std::uint64_t, json>> events;
  std::uint64_t ev_seq = 0;

  std::mutex rl_mu;
  std::unordered_map<std::string, Bucket> buckets;

  void log(const std::string& level, const std::string& event, json fields = json::object()) {
    if (!log_fn) return;
    json j = {{"ts", iso_now()}, {"level", level}, {"agent", cfg.name}, {"event", event}};
    j.update(fields);
    log_fn(j.dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void add_event(const std::string& service, const std::string& segment, json e) {
    {
      std::lock_guard lock(ev_mu);
      ++ev_seq;
      events.emplace_back(ev_seq, json{{"seq", ev_seq},
                                       {"service", service},
                                       {"segment", segment},
                                       {"event", std::move(e)}});
      while (events.size() > kMaxEvents)
        events.pop_front();
    }
    ev_cv.notify_all();
  }

  fs::path config_dir() const { return cfg.state_dir / "config"; }
  fs::path blob_dir() const { return cfg.state_dir / "blobs"; }

  std::shared_ptr<Loaded> current() const {
    std::shared_lock lock(loaded_mu);
    return loaded;
  }

  // The files of a release the controller sent a manifest for, each re-hashed now.
  Result<std::vector<sdk::FirmwareImage>> firmware(const inventory::Family& family,
                                                   const inventory::Release& release) {
    std::optional<FirmwareManifest> m;
    {
      std::lock_guard lock(fw_mu);
      auto it = manifests.find({family.name, release.version.text});
      if (it != manifests.end()) m = it->second;
    }
    auto need = [&](const std::string& why) {
      if (t_need_firmware) *t_need_firmware = NeedFirmware{family.name, release.version.text};
      return fail(Errc::NotFound, "firmware " + family.name + " " + release.version.text +
                                      " is not on agent '" + cfg.name + "': " + why);
    };
    if (!m) return need("no manifest from the controller yet");
    std::vector<sdk::FirmwareImage> out;
    for (const auto& f : m->files) {
      const fs::path p = blob_dir() / f.sha256;
      std::uint64_t size = 0;
      const std::string got = sha256_file_hex(p, &size);
      if (got.empty()) return need(f.name + " was never uploaded");
      if (got != f.sha256 || size != f.size) {
        std::error_code ec;
        fs::remove(p, ec);  // a damaged cache entry: upload it again
        return need(f.name + " failed its checksum here and was removed");
      }
      out.push_back({f.name, f.sha256, f.size, p});
    }
    return out;
  }

  // Loads a pushed configuration (or the one kept from before a restart) and restarts the
  // services for it. The previous configuration stays in use when this one does not load.
  Result<ConfigAck> apply_config(const ConfigPush& push, bool from_disk) {
    std::lock_guard lock(config_mu);
    const std::string id = config_id(push);
    std::error_code ec;
    fs::create_directories(config_dir(), ec);
    const fs::path inv_path = config_dir() / push.inventory_name;
    const fs::path cat_path = config_dir() / "catalog.yaml";
    if (!from_disk) {
      // Written before loading: the loader reads files (relative paths resolve here).
      if (auto s = write_atomic(cat_path, push.catalog); !s) return fail(s.error());
      if (auto s = write_atomic(inv_path, push.inventory); !s) return fail(s.error());
    }
    inventory::LoadOptions lo;
    lo.catalog = cat_path;
    auto r = inventory::load_inventory(inv_path, registry, lo);
    if (!r.inventory) {
      std::string msg;
      for (const auto& d : r.diags.sorted())
        if (d.severity == inventory::Severity::Error) msg += d.format() + "\n";
      return fail(Errc::InvalidInput, "the pushed inventory does not load here:\n" + msg);
    }
    auto next = std::make_shared<Loaded>();
    next->id = id;
    next->inv = std::move(*r.inventory);
    LocalAgentOptions o;
    o.state_dir = cfg.state_dir;
    o.catalog = next->inv.catalog.get();
    o.cancel = &cancel_all;
    o.firmware = [this](const inventory::Family& f, const inventory::Release& rel) {
      return firmware(f, rel);
    };
    // Another device's verb (a hypervisor powering its host through the host's BMC): served
    // here when that device is this agent's too; the controller reaches the others.
    o.device_verb = [this, l = next.get()](const std::string& name, const std::string& verb,
                                           const json& args) -> Result<sdk::VerbResult> {
      const auto* d = l->inv.device(name);
      if (d == nullptr)
        return fail(Errc::NotFound, "no device '" + name + "' in the configuration");
      if (d->agent != cfg.name)
        return fail(Errc::NotSupported, "device '" + name + "' is served by agent '" + d->agent +
                                            "', not by '" + cfg.name +
                                            "': put both devices on one agent");
      return l->agent->run_verb(*d, verb, args);
    };
    next->agent = std::make_unique<LocalAgent>(registry, std::move(o));

    // The services follow the configuration: the old ones stop (their ports and the state
    // directory's serve lock are needed), the new ones start for this agent's segments.
    if (services) {
      services->stop();
      services.reset();
    }
    {
      std::unique_lock w(loaded_mu);
      loaded = next;
    }
    ServicesOptions so;
    so.agent = cfg.name;
    so.state_dir = cfg.state_dir;
    so.dhcp_port = cfg.dhcp_port;
    so.tftp_port = cfg.tftp_port;
    so.inventory_label = push.inventory_name + " (from the controller)";
    so.on_tftp_event = [this](const std::string& seg, const tftp::Event& e) {
      add_event("tftp", seg, tftp::event_to_json(e));
    };
    so.on_dhcp_event = [this](const dhcp::Event& e) {
      json j = dhcp::event_to_json(e);
      const std::string segment = j.value("segment", "");
      add_event("dhcp", segment, std::move(j));
    };
    so.say = [this](const std::string& line) { log("info", "services", {{"message", line}}); };
    std::string serr;
    std::vector<std::string> tftp_segs, dhcp_segs;
    auto s = NetServices::start(next->inv, registry, so);
    if (s) {
      services = std::move(*s);
      tftp_segs = services->tftp_segments();
      dhcp_segs = services->dhcp_segments();
    } else if (s.error().code() != Errc::NotFound) {  // NotFound: no segment is ours
      serr = s.error().message();
      log("error", "services", {{"message", serr}});
    }
    {
      std::unique_lock w(loaded_mu);
      tftp_segments = tftp_segs;
      dhcp_segments = dhcp_segs;
      services_error = serr;
    }
    if (!from_disk) (void)write_atomic(config_dir() / "current", push.inventory_name + "\n");
    ConfigAck ack;
    ack.config = id;
    for (const auto& d : next->inv.devices)
      if (d.agent == cfg.name) ack.devices.push_back(d.name);
    ack.tftp_segments = tftp_segs;
    ack.dhcp_segments = dhcp_segs;
    ack.services_error = serr;
    log("info", "config", {{"config", id}, {"devices", ack.devices.size()}});
    return ack;
  }

  // The configuration kept from before a restart, so phones keep being served.
  void load_kept_config() {
    auto name = read_file(config_dir() / "current");
    if (!name) return;
    ConfigPush p;
    p.inventory_name = text::trim(*name);
    auto inv = read_file(config_dir() / p.inventory_name);
    auto cat = read_file(config_dir() / "catalog.yaml");
    if (p.inventory_name.empty() || !inv || !cat) return;
    p.inventory = *inv;
    p.catalog = *cat;
    auto r = apply_config(p, true);
    if (!r) log("warning", "config", {{"message", "kept configuration: " + r.error().message()}});
  }

  bool allow(const std::string& addr) {
    std::lock_guard lock(rl_mu);
    const auto now = std::chrono::steady_clock::now();
    auto [it, fresh] = buckets.try_emplace(addr);
    Bucket& b = it->second;
    if (fresh) {
      b.tokens = 2 * cfg.rate;
      b.last = now;
    }
    const double dt = std::chrono::duration<double>(now - b.last).count();
    b.last = now;
    b.tokens = std::min(2 * cfg.rate, b.tokens + dt * cfg.rate);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    if (buckets.size() > 4096) buckets.clear();  // bounded: forgets, never refuses wrongly long
    return true;
  }

  // The loaded configuration and device for a call, or the error to answer with.
  Result<std::pair<std::shared_ptr<Loaded>, const inventory::Device*>> device_for(
      const std::string& config, const std::string& name, int* status) {
    auto l = current();
    if (!l || l->id != config) {
      *status = 409;
      return fail(Errc::PreconditionFailed,
                  std::string("config-mismatch: ") +
                      (l ? "this agent has another configuration" : "no configuration yet"));
    }
    const auto* d = l->inv.device(name);
    if (d == nullptr) {
      *status = 404;
      return fail(Errc::NotFound, "no device '" + name + "' in the configuration");
    }
    if (d->agent != cfg.name) {
      *status = 421;  // misdirected
      return fail(Errc::PreconditionFailed, "device '" + name + "' belongs to agent '" + d->agent +
                                                "', not to '" + cfg.name + "'");
    }
    return std::make_pair(l, d);
  }

  bool body_ok(const httplib::Request& req, httplib::Response& res) {
    if (req.body.size() <= cfg.max_body) return true;
    send_error(
        res,
        Error(Errc::InvalidInput, "request body of " + std::to_string(req.body.size()) +
                                      " bytes, over the limit of " + std::to_string(cfg.max_body)),
        413);
    return false;
  }

  // A call naming a device: decoded, the device found, `fn` run with the need-firmware slot set,
  // its JSON (or error) answered.
  template <typename Decode, typename Fn>
  void device_call(const httplib::Request& req, httplib::Response& res, Decode decode, Fn fn) {
    if (!body_ok(req, res)) return;
    auto c = decode(req.body);
    if (!c) return send_error(res, c.error());
    int status = 0;
    auto d = device_for(c->config, c->device, &status);
    if (!d) return send_error(res, d.error(), status);
    std::optional<NeedFirmware> need;
    t_need_firmware = &need;
    Result<json> r = fn(*c, *d->first->agent, *d->second);
    t_need_firmware = nullptr;
    if (!r) return send_error(res, r.error(), 0, need);
    send_json(res, *r);
  }

  void routes();
  void run_step(const httplib::Request& req, httplib::Response& res);
  void put_blob(const httplib::Request& req, httplib::Response& res,
                const httplib::ContentReader& reader);
};

void AgentServer::Impl::routes() {
  auto& s = *http;
  s.new_task_queue = [n = cfg.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
  s.set_payload_max_length(kMaxBlobBody);
  s.set_read_timeout(30, 0);
  s.set_write_timeout(30, 0);
  // Short: an idle keep-alive connection holds a worker, and stop() waits for the workers.
  s.set_keep_alive_timeout(3);
  s.set_keep_alive_max_count(100000);
  // An answer leaves in more than one write (headers, then body, through TLS records): with
  // Nagle's algorithm on, the second waits for the client's delayed ACK, about 40 ms per call.
  s.set_tcp_nodelay(true);
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    log(res.status >= 500   ? "error"
        : res.status >= 400 ? "warning"
                            : "info",
        "request",
        {{"peer", req.remote_addr},
         {"client", peer_name(req)},
         {"method", req.method},
         {"path", req.path},
         {"status", res.status}});
  });
  // Before routing: the rate limit and the API version.
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Labctl-Api", std::to_string(kApiVersion));
    if (!allow(req.remote_addr)) {
      send_error(res, Error(Errc::Unreachable, "too many requests; slow down"), 429);
      res.set_header("Retry-After", "1");
      // Answered before the request's body was read: the connection cannot carry another
      // request, or the unread body would be taken for one.
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    const auto v = path_version(req.path);
    if (!v || *v != kApiVersion) res.set_header("Connection", "close");  // the body is unread
    if (!v) {
      send_error(res, Error(Errc::NotFound, "not an agent API path (they start with /v1/)"), 404);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (*v != kApiVersion) {
      send_error(res,
                 Error(Errc::NotSupported, "API version " + std::to_string(*v) +
                                               " is not served here; this agent speaks v" +
                                               std::to_string(kApiVersion)),
                 404);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const int st = res.status;
    send_error(res,
               Error(st == 413   ? Errc::InvalidInput
                     : st == 404 ? Errc::NotFound
                                 : Errc::Internal,
                     st == 413   ? "request body over the limit"
                     : st == 404 ? "no such API call"
                                 : "HTTP " + std::to_string(st)),
               st);
  });

  s.Get("/v1/status", [this](const httplib::Request&, httplib::Response& res) {
    AgentStatus st;
    st.agent = cfg.name;
    st.version = LABCTL_VERSION;
    st.started_ms = started_ms;
    st.running_steps = running_steps.load();
    {
      std::lock_guard lock(ev_mu);
      st.events = ev_seq;
    }
    {
      std::shared_lock lock(loaded_mu);
      if (loaded) st.config = loaded->id;
      st.tftp_segments = tftp_segments;
      st.dhcp_segments = dhcp_segments;
      st.services_error = services_error;
    }
    send_json(res, encode(st));
  });

  s.Put("/v1/config", [this](const httplib::Request& req, httplib::Response& res) {
    auto p = decode_config_push(req.body);
    if (!p) return send_error(res, p.error());
    auto ack = apply_config(*p, false);
    if (!ack) return send_error(res, ack.error(), 422);
    send_json(res, encode(*ack));
  });

  s.Post("/v1/probe", [this](const httplib::Request& req, httplib::Response& res) {
    device_call(req, res, decode_device_call,
                [](const DeviceCall&, Agent& a, const inventory::Device& d) -> Result<json> {
                  auto o = a.probe(d);
                  if (!o) return fail(std::move(o.error()));
                  return json{{"observation", o->to_json()}};
                });
  });
  s.Post("/v1/step-done", [this](const httplib::Request& req, httplib::Response& res) {
    device_call(req, res, decode_step_call,
                [](const StepCall& c, Agent& a, const inventory::Device& d) -> Result<json> {
                  auto r = a.step_done(d, c.step);
                  if (!r) return fail(std::move(r.error()));
                  return json{{"done", *r}};
                });
  });
  s.Post("/v1/verb", [this](const httplib::Request& req, httplib::Response& res) {
    device_call(req, res, decode_verb_call,
                [](const VerbCall& c, Agent& a, const inventory::Device& d) -> Result<json> {
                  auto r = a.run_verb(d, c.verb, c.args);
                  if (!r) return fail(std::move(r.error()));
                  return json{{"data", r->data}, {"text", r->text}};
                });
  });

  s.Post("/v1/run-step",
         [this](const httplib::Request& req, httplib::Response& res) { run_step(req, res); });

  s.Post("/v1/firmware", [this](const httplib::Request& req, httplib::Response& res) {
    if (!body_ok(req, res)) return;
    auto m = decode_firmware_manifest(req.body);
    if (!m) return send_error(res, m.error());
    json missing = json::array();
    for (const auto& f : m->files) {
      std::uint64_t size = 0;
      const std::string got = sha256_file_hex(blob_dir() / f.sha256, &size);
      if (got != f.sha256 || size != f.size) missing.push_back(f.sha256);
    }
    {
      std::lock_guard lock(fw_mu);
      manifests[{m->family, m->release}] = *m;
    }
    send_json(res, {{"missing", missing}});
  });

  s.Put(R"(/v1/blobs/([0-9a-f]{64}))",
        [this](const httplib::Request& req, httplib::Response& res,
               const httplib::ContentReader& reader) { put_blob(req, res, reader); });

  s.Get("/v1/events", [this](const httplib::Request& req, httplib::Response& res) {
    std::uint64_t after = 0;
    long wait_s = 0;
    try {
      if (req.has_param("after")) after = std::stoull(req.get_param_value("after"));
      if (req.has_param("wait"))
        wait_s = std::clamp(std::stol(req.get_param_value("wait")), 0L, 30L);
    } catch (const std::exception&) {
      return send_error(res, Error(Errc::InvalidInput, "after and wait must be whole numbers"));
    }
    std::unique_lock lock(ev_mu);
    ev_cv.wait_for(lock, std::chrono::seconds(wait_s),
                   [&] { return ev_seq > after || cancel_all.load(); });
    json out = json::array();
    for (const auto& [seq, e] : events)
      if (seq > after && out.size() < 1000) out.push_back(e);
    const std::uint64_t next =
        out.empty() ? std::max(after, ev_seq) : out.back()["seq"].get<std::uint64_t>();
    lock.unlock();
    send_json(res, {{"events", out}, {"next", next}});
  });
}

// The step runs inside the response's content provider, on this request's worker thread; its
// progress goes out as JSON lines as it happens, with a keepalive line every 2 s so both sides
// notice a dead peer. A client that goes away cancels the step (its waits end at once).
void AgentServer::Impl::run_step(const httplib::Request& req, httplib::Response& res) {
  if (!body_ok(req, res)) return;
  auto c = decode_step_call(req.body);
  if (!c) return send_error(res, c.error());
  int status = 0;
  auto d = device_for(c->config, c->device, &status);
  if (!d) return send_error(res, d.error(), status);
  auto call = std::make_shared<StepCall>(std::move(*c));
  auto target =
      std::make_shared<std::pair<std::shared_ptr<Loaded>, const inventory::Device*>>(std::move(*d));
  res.set_chunked_content_provider(
      "application/x-ndjson", [this, call, target](std::size_t, httplib::DataSink& sink) {
        std::mutex write_mu;
        std::atomic<bool> gone{false};
        std::atomic<bool> cancel{false};
        auto write = [&](const StreamLine& l) {
          const std::string line = encode_line(l);
          std::lock_guard lock(write_mu);
          if (gone.load()) return;
          if (!sink.write(line.data(), line.size())) {
            gone = true;
            cancel = true;
          }
        };
        std::atomic<bool> finished{false};
        std::mutex tick_mu;
        std::condition_variable tick_cv;
        std::thread ticker([&] {
          std::unique_lock lock(tick_mu);
          while (!finished.load()) {
            if (tick_cv.wait_for(lock, std::chrono::seconds(2), [&] { return finished.load(); }))
              break;
            write(StreamLine{});
            if (cancel_all.load()) cancel = true;
          }
        });
        StepControl control;
        control.cancel = &cancel;
        if (call->timeout_ms > 0)
          control.deadline =
              std::chrono::steady_clock::now() + std::chrono::milliseconds(call->timeout_ms);
        control.progress = [&](std::uint64_t done, std::uint64_t total, std::string_view note) {
          StreamLine l;
          l.kind = StreamLine::Kind::Progress;
          l.done = done;
          l.total = total;
          l.text = std::string(note);
          write(l);
        };
        ++running_steps;
        log("info", "step-start", {{"device", call->device}, {"step", call->step.key}});
        const auto t0 = std::chrono::steady_clock::now();
        std::optional<NeedFirmware> need;
        t_need_firmware = &need;
        auto r = target->first->agent->run_step(*target->second, call->step, control);
        t_need_firmware = nullptr;
        --running_steps;
        {
          std::lock_guard lock(tick_mu);
          finished = true;
        }
        tick_cv.notify_all();
        ticker.join();
        StreamLine last;
        if (r) {
          last.kind = StreamLine::Kind::Ok;
        } else {
          last.kind = StreamLine::Kind::Failed;
          last.error = r.error();
          if (need) last.need_firmware = FirmwareManifest{need->family, need->release, {}};
        }
        write(last);
        log(r ? "info" : "warning", "step-end",
            {{"device", call->device},
             {"step", call->step.key},
             {"ok", r.has_value()},
             {"error", r ? "" : std::string(errc_name(r.error().code()))},
             {"client-gone", gone.load()},
             {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - t0)
                        .count()}});
        if (!gone.load()) sink.done();
        return true;
      });
}

void AgentServer::Impl::put_blob(const httplib::Request& req, httplib::Response& res,
                                 const httplib::ContentReader& reader) {
  const std::string sha = req.matches[1];
  std::error_code ec;
  fs::create_directories(blob_dir(), ec);
  const fs::path tmp = blob_dir() / (sha + ".part." + std::to_string(::gettid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return send_error(res, Error(Errc::Internal, tmp.string() + ": " + std::strerror(errno)));
  Sha256 digest;
  std::uint64_t total = 0;
  bool io_ok = true;
  const bool read_ok = reader([&](const char* data, std::size_t n) {
    total += n;
    if (total > kMaxBlobBody) return false;
    digest.update(data, n);
    std::size_t off = 0;
    while (off < n) {
      const ssize_t w = ::write(fd, data + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        io_ok = false;
        return false;
      }
      off += static_cast<std::size_t>(w);
    }
    return true;
  });
  const std::string got = digest.hex_final();
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  auto drop = [&] { fs::remove(tmp, ec); };
  if (!read_ok || !io_ok || !synced) {
    drop();
    return send_error(res, Error(io_ok ? Errc::InvalidInput : Errc::Internal,
                                 io_ok ? "upload cut short or over the limit"
                                       : "cannot write the blob on the agent"));
  }
  if (got != sha) {
    drop();
    return send_error(
        res, Error(Errc::VerifyMismatch, "the upload's sha256 is " + got + ", not " + sha));
  }
  fs::rename(tmp, blob_dir() / sha, ec);
  if (ec) {
    drop();
    return send_error(res, Error(Errc::Internal, "cannot store the blob: " + ec.message()));
  }
  send_json(res, {{"sha256", sha}, {"size", total}}, 201);
}

AgentServer::AgentServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<AgentServer>> AgentServer::start(AgentConfig config,
                                                        const plugins::Registry& registry,
                                                        LogFn log) {
  auto impl = std::make_unique<Impl>(std::move(config), registry, std::move(log));
  auto& cfg = impl->cfg;
  for (const auto* p : {&cfg.cert, &cfg.key, &cfg.ca})
    if (!fs::exists(*p)) return fail(Errc::NotFound, p->string() + ": no such file");
  if (!cfg.controller.empty()) {
    auto fp = certificate_fingerprint(cfg.controller);
    if (!fp) return fail(std::move(fp.error()).context("controller certificate"));
    impl->pin = *fp;
  }
  std::error_code ec;
  fs::create_directories(cfg.state_dir, ec);
  if (ec) return fail(Errc::Internal, cfg.state_dir.string() + ": " + ec.message());

  std::string tls_error;
  Impl* self = impl.get();
  impl->http = std::make_unique<httplib::SSLServer>([self, &tls_error](SSL_CTX& ctx) {
    const auto& c = self->cfg;
    auto bad = [&](const std::string& what) {
      const unsigned long e = ERR_get_error();
      char buf[256] = "";
      if (e) ERR_error_string_n(e, buf, sizeof buf);
      ERR_clear_error();
      tls_error = what + (buf[0] ? std::string(": ") + buf : std::string());
      return false;
    };
    // TLS 1.2 only, with ECDHE and AEAD ciphers: under TLS 1.3 the server checks the client's
    // certificate after the client has finished its handshake and sent its request, so a refusal
    // reaches the client as a reset or a late alert, indistinguishable from an agent going away.
    // Under 1.2 it fails the handshake itself, and the controller can say why.
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(&ctx, TLS1_2_VERSION);
    if (SSL_CTX_set_cipher_list(&ctx,
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
                                "ECDHE-ECDSA-AES128-GCM-SHA256") != 1)
      return bad("no usable TLS cipher");
    if (SSL_CTX_use_certificate_chain_file(&ctx, c.cert.c_str()) != 1)
      return bad(c.cert.string() + ": not a usable certificate");
    if (SSL_CTX_use_PrivateKey_file(&ctx, c.key.c_str(), SSL_FILETYPE_PEM) != 1)
      return bad(c.key.string() + ": not a usable private key");
    if (SSL_CTX_check_private_key(&ctx) != 1)
      return bad(c.key.string() + " is not the key of " + c.cert.string());
    if (SSL_CTX_load_verify_locations(&ctx, c.ca.c_str(), nullptr) != 1)
      return bad(c.ca.string() + ": not a usable CA file");
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(c.ca.c_str()))
      SSL_CTX_set_client_CA_list(&ctx, names);
    // A client must present a certificate, for client authentication (extended key usage
    // clientAuth: an agent's serverAuth-only certificate cannot pose as the controller), and
    // the pinned one when the configuration names it. The handshake fails otherwise, before a
    // byte of any request is read.
    SSL_CTX_set_purpose(&ctx, X509_PURPOSE_SSL_CLIENT);
    // A client resuming a TLS session (libcurl does on every new connection) needs a session id
    // context when client certificates are verified; without one OpenSSL answers with an
    // internal-error alert.
    static const unsigned char kSessionContext[] = "labctl-agent";
    SSL_CTX_set_session_id_context(&ctx, kSessionContext, sizeof kSessionContext - 1);
    SSL_CTX_set_ex_data(&ctx, pin_index(), &self->pin);
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_peer);
    return true;
  });
  if (!impl->http->is_valid())
    return fail(Errc::InvalidInput, "TLS setup: " + (tls_error.empty() ? "failed" : tls_error));
  impl->routes();
  if (cfg.listen_port == 0) {
    impl->bound_port = impl->http->bind_to_any_port(cfg.listen_host);
    if (impl->bound_port <= 0)
      return fail(Errc::Internal, "cannot bind " + cfg.listen_host + ": " + std::strerror(errno));
  } else {
    if (!impl->http->bind_to_port(cfg.listen_host, cfg.listen_port))
      return fail(Errc::Internal, "cannot bind " + cfg.listen_host + ":" +
                                      std::to_string(cfg.listen_port) + ": " +
                                      std::strerror(errno));
    impl->bound_port = cfg.listen_port;
  }
  impl->load_kept_config();
  impl->listener = std::thread([self] { self->http->listen_after_bind(); });
  impl->log(
      "info", "listening",
      {{"address", cfg.listen_host}, {"port", impl->bound_port}, {"pinned", !impl->pin.empty()}});
  return std::unique_ptr<AgentServer>(new AgentServer(std::move(impl)));
}

int AgentServer::port() const {
  return impl_->bound_port;
}

void AgentServer::stop() {
  if (!impl_ || !impl_->http) return;
  impl_->cancel_all = true;
  impl_->ev_cv.notify_all();
  impl_->http->stop();
  if (impl_->listener.joinable()) impl_->listener.join();
  std::lock_guard lock(impl_->config_mu);
  if (impl_->services) impl_->services->stop();
  impl_->log("info", "stopped");
}

AgentServer::~AgentServer() {
  stop();
}

}  // namespace labctl::agents::rpc
