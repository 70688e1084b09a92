#include "plugins/supermicro_bmc/flash.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "common/digest.h"
#include "common/json_number.h"
#include "common/text.h"
#include "plugins/supermicro_bmc/aten_image.h"
#include "plugins/supermicro_bmc/device_target.h"

namespace labctl::supermicro_bmc {

using sdk::json;
namespace key = inventory::key;
using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

namespace {

// Every wait loop also stops after this many rounds, whatever its clock says.
constexpr int kMaxRounds = 100000;
// IPMI checks while a BMC restarts: a short session bound, so a silent BMC costs little.
constexpr ms kQuickIpmi{2000};
constexpr std::size_t kMaxImage = 64u << 20;

const char* kActions[] = {"verify-image", "identify",    "upload",
                          "check-upload", "start-flash", "flash-progress",
                          "wait-offline", "wait-online", "verify-version"};

json web_params(const sdk::Device& d) {
  auto it = d.params.find("web");
  return it != d.params.end() && it->is_object() ? *it : json::object();
}

WebEndpoint endpoint_of(const sdk::Device& d) {
  const json w = web_params(d);
  WebEndpoint e;
  e.scheme = w.value("scheme", std::string("https"));
  e.host = d.ip;
  e.port = static_cast<int>(w.value("port", std::int64_t{e.scheme == "http" ? 80 : 443}));
  e.verify_tls = !w.value("accept-self-signed", false);
  return e;
}

// The profile a step or plan names, with the inventory's timing overrides.
Result<FlashProfile> load_profile(const sdk::Device& d, const std::string& name,
                                  const std::string& file) {
  auto p = file.empty() ? builtin_profile(name) : load_profile_file(file);
  if (!p) return p;
  const json t = web_params(d).value("timings", json::object());
  auto set = [&](const char* k, ms& slot) {
    if (!t.contains(k)) return;
    if (const auto v = json_number::whole<std::int64_t>(t[k])) slot = ms(*v);
  };
  set("request", p->timings.request);
  set("upload", p->timings.upload);
  set("start-wait", p->timings.start_wait);
  set("poll-interval", p->timings.poll_interval);
  set("flash", p->timings.flash);
  set("offline", p->timings.offline);
  set("online", p->timings.online);
  set("session", p->timings.session);
  return p;
}

std::string unconfirmed_warning(const FlashProfile& p) {
  std::string out = "WARNING: flasher profile " + p.name +
                    " is UNCONFIRMED: its web sequence has not been seen working on a real board";
  if (!p.guesses.empty()) out += "; guessed: " + text::join_list(p.guesses, "; ");
  return out;
}

Status refuse_unconfirmed(const sdk::Device& d, const FlashProfile& p) {
  return fail(Errc::PreconditionFailed,
              d.name + ": flasher profile " + p.name +
                  " is UNCONFIRMED (its web sequence has not been captured on a real board): "
                  "labctl sends nothing with it unless you accept that -- set web: "
                  "{accept-unconfirmed-profile: true} on " +
                  d.name +
                  " (or --accept-unconfirmed-profile), or capture the board's sequence into a "
                  "profile of your own (web.profile-file)");
}

}  // namespace

Result<std::vector<std::uint8_t>> read_image_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::NotFound, path + ": cannot read it");
  std::vector<std::uint8_t> bytes;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    bytes.insert(bytes.end(), buf, buf + in.gcount());
    if (bytes.size() > kMaxImage)
      return fail(Errc::InvalidInput, path + ": over 64 MiB, not a BMC image of these boards");
  }
  return bytes;
}

namespace {

// The arguments every flash step carries.
struct Args {
  std::string to, from, profile, profile_file;
  bool preserve = true, accept = false;
  json image;

  static Args of(const sdk::Step& s) {
    Args a;
    a.to = s.args.value("to", "");
    a.from = s.args.value("from", "");
    a.profile = s.args.value("profile", "");
    a.profile_file = s.args.value("profile_file", "");
    a.preserve = s.args.value("preserve_config", true);
    a.accept = s.args.value("accept_unconfirmed", false);
    a.image = s.args.value("image", json::object());
    return a;
  }
};

struct VerifiedImage {
  std::string name, sha256;
  std::vector<std::uint8_t> bytes;
  AtenImage image;
};

// The image re-read and re-verified: its sha256 against the pin (firmware store) or against the
// file as it was when the flash was planned, every checksum in it, and the board and version.
Result<VerifiedImage> load_image(sdk::DeviceContext& ctx, const sdk::Device& d, const Args& a) {
  VerifiedImage v;
  std::string want_sha;
  std::string path;
  if (a.image.contains("file")) {
    path = a.image.value("file", "");
    v.name = a.image.value("name", std::filesystem::path(path).filename().string());
    want_sha = a.image.value("sha256", "");
  } else {
    const inventory::Catalog* cat = ctx.catalog();
    const std::string model = a.image.value("model", d.model);
    const inventory::Family* fam = cat ? cat->family_for_model(model) : nullptr;
    if (!fam) return fail(Errc::NotFound, "no catalog family for model '" + model + "'");
    const inventory::Release* rel = fam->find(a.image.value("release", a.to));
    if (!rel)
      return fail(Errc::NotFound, "release " + a.image.value("release", a.to) +
                                      " is not in the catalog's " + fam->name);
    auto files = ctx.firmware_images(*fam, *rel);
    if (!files) return fail(files.error());
    if (files->size() != 1)
      return fail(Errc::PreconditionFailed, "release " + a.to + " has " +
                                                std::to_string(files->size()) +
                                                " files; a BMC flash takes exactly one image");
    path = (*files)[0].path.string();
    v.name = (*files)[0].name;
    want_sha = (*files)[0].sha256;
  }
  auto bytes = read_image_file(path);
  if (!bytes) return fail(bytes.error());
  v.bytes = std::move(*bytes);
  v.sha256 = sha256_hex(v.bytes);
  if (want_sha.empty() || v.sha256 != want_sha)
    return fail(Errc::VerifyMismatch, v.name + ": sha256 " + v.sha256 + " differs from " +
                                          (want_sha.empty() ? "nothing" : want_sha) +
                                          " (the image changed since it was verified)");
  auto img = parse_aten_image(v.bytes);
  if (!img) return fail(std::move(img.error()).context(v.name));
  v.image = std::move(*img);
  if (auto fit = check_image_for(v.image, d.model, a.to); !fit)
    return fail(Error(Errc::VerifyMismatch, v.name + ": " + fit.error().message()));
  return v;
}

struct Identity {
  DeviceId id;
  bool factory = false;  // answered to ADMIN/ADMIN, not to the inventory's login
};

// Get Device ID with the inventory's login, or with the factory one when that is refused (a BMC
// that came back from a reset to factory settings).
Result<Identity> identify(sdk::DeviceContext& ctx, const sdk::Device& d,
                          std::optional<ms> timeout = std::nullopt) {
  auto t = inventory_target(ctx, d);
  if (!t) return fail(t.error());
  if (timeout) t->session_timeout = *timeout;
  Identity out;
  auto s = Session::open(*t);
  if (!s && s.error().code() == Errc::AuthFailed &&
      !(t->user == kFactoryUser && t->password == kFactoryPassword)) {
    Target f = factory_target(d);
    if (timeout) f.session_timeout = *timeout;
    auto fs = Session::open(f);
    if (fs) {
      s = std::move(fs);
      out.factory = true;
    }
  }
  if (!s) return fail(s.error());
  auto id = (*s)->device_id();
  if (!id) return fail(id.error());
  out.id = *id;
  return out;
}

Result<bool> runs_version(sdk::DeviceContext& ctx, const sdk::Device& d, const std::string& v) {
  auto id = identify(ctx, d, kQuickIpmi);
  if (!id) return fail(id.error());
  return id->id.firmware() == v && !id->id.update_in_progress;
}

// labctl's note that it holds a BMC's upload lock, so that a later labctl (after a kill) knows a
// lock it finds held is its own and waits for the BMC to expire it. No secret is in it.
std::filesystem::path lock_record(sdk::DeviceContext& ctx, const sdk::Device& d) {
  return ctx.plugin_state_dir() / "web-lock" /
         (d.ip + "_" + std::to_string(endpoint_of(d).port) + ".json");
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<ms>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

sdk::Step step(const std::string& action, const std::string& to, std::string title,
               std::string reason, bool writes, int weight, ms timeout, const json& args) {
  sdk::Step s;
  s.key = action + "@" + to;
  s.action = action;
  s.title = std::move(title);
  s.reason = std::move(reason);
  s.writes = writes;
  s.weight = weight;
  s.timeout = timeout;
  s.args = args;
  s.hop = args.value("hop", 1);
  s.hops = args.value("hops", 1);
  return s;
}

}  // namespace

struct FlashRunner::DeviceWeb {
  std::string identity;  // endpoint and profile: a new session when either changes
  std::unique_ptr<WebFlasher> web;
  std::string uploaded;  // what this session uploaded (the step's image and version), "" for none
  bool checked = false;  // and the BMC read the right version from it
  bool warned = false;
  std::int64_t login_at = 0;  // wall clock, ms
};

inventory::KeySpec web_schema() {
  return key::map(
             "web",
             {
                 key::choice("scheme", {"https", "http"})
                     .defaults("https")
                     .describe("how labctl reaches the web interface to flash firmware"),
                 key::integer("port").range(1, 65535).describe("default 443 (https), 80 (http)"),
                 key::boolean("accept-self-signed")
                     .defaults(false)
                     .describe("accept the BMC's self-signed TLS certificate without verifying "
                               "it (an audit finding says so)"),
                 key::string("profile").range(1, 40).describe(
                     "flasher profile (built in: x10-x11, x8-aten-web); default: the catalog "
                     "release's flasher-profile"),
                 key::string("profile-file")
                     .range(1, 4096)
                     .describe("a flasher profile of your own (YAML, see the plugin README)"),
                 key::boolean("accept-unconfirmed-profile")
                     .defaults(false)
                     .describe("use a profile marked unconfirmed (never seen on a real board)"),
                 key::boolean("preserve-config")
                     .describe("keep the BMC's configuration when flashing; default: the "
                               "catalog release's reset-to-factory option"),
                 key::map("timings", {key::duration("request"), key::duration("upload"),
                                      key::duration("start-wait"), key::duration("poll-interval"),
                                      key::duration("flash"), key::duration("offline"),
                                      key::duration("online"), key::duration("session")})
                     .describe("override the profile's timings"),
             })
      .describe("the BMC's web interface, through which firmware is flashed");
}

void check_web_keys(const sdk::Device& d, inventory::DeviceReport& report) {
  const json w = web_params(d);
  if (w.contains("profile") && w.contains("profile-file"))
    report.error("/web/profile-file", "give web.profile or web.profile-file, not both");
  if (w.contains("profile"))
    if (auto p = builtin_profile(w.value("profile", "")); !p)
      report.error("/web/profile", p.error().message());
  if (w.contains("profile-file"))
    if (auto p = load_profile_file(w.value("profile-file", "")); !p)
      report.error("/web/profile-file", p.error().message());
}

bool is_flash_action(const std::string& action) {
  return std::find(std::begin(kActions), std::end(kActions), action) != std::end(kActions);
}

bool resets_to_factory(const std::vector<sdk::Step>& firmware_steps) {
  return std::any_of(firmware_steps.begin(), firmware_steps.end(), [](const sdk::Step& s) {
    return s.action == "start-flash" && !s.args.value("preserve_config", true);
  });
}

Result<FlashRequest> hop_request(const sdk::Device& d, const sdk::HopInfo& hop) {
  if (d.ip.empty()) return fail(Errc::PreconditionFailed, d.name + ": a flash needs the BMC's ip");
  if (hop.release == nullptr)
    return fail(Errc::NotFound, d.name + ": firmware " + hop.to.text + " is not in the catalog");
  const json w = web_params(d);
  const json opts = hop.release->options.is_object() ? hop.release->options : json::object();
  FlashRequest r;
  r.to = hop.to.text;
  r.from = hop.from.text;
  r.hop = hop.index;
  r.hops = hop.count;
  r.reason = hop.reason.empty() ? "the inventory's target is " + d.firmware.target : hop.reason;
  if (w.contains("profile-file"))
    r.profile_file = w.value("profile-file", "");
  else if (w.contains("profile"))
    r.profile = w.value("profile", "");
  else if (opts.contains("flasher-profile") && opts["flasher-profile"].is_string())
    r.profile = opts["flasher-profile"].get<std::string>();
  else
    return fail(Errc::PreconditionFailed,
                d.name + ": the catalog names no flasher profile for " + r.to +
                    " (options.flasher-profile); set web.profile (built in: " +
                    text::join_list(builtin_profile_names(), ", ") + ")");
  if (w.contains("preserve-config") && w["preserve-config"].is_boolean()) {
    r.preserve_config = w["preserve-config"].get<bool>();
    r.preserve_why = "the inventory's web.preserve-config";
  } else if (opts.value("reset-to-factory", std::string()) == "recommended") {
    r.preserve_config = false;
    r.preserve_why = "the catalog recommends a reset to factory settings for " + r.to;
  } else {
    r.preserve_why = "the configuration is kept unless the catalog or inventory say otherwise";
  }
  if (hop.release->files.size() != 1)
    return fail(Errc::PreconditionFailed,
                d.name + ": release " + r.to + " lists " +
                    std::to_string(hop.release->files.size()) +
                    " files; a BMC flash takes exactly one image (SMT_*.bin)");
  r.image = {{"model", d.model}, {"release", r.to}, {"name", hop.release->files[0].name}};
  r.accept_unconfirmed = w.value("accept-unconfirmed-profile", false);
  return r;
}

Result<std::vector<sdk::Step>> flash_steps(const sdk::Device& d, const FlashRequest& req) {
  auto p = load_profile(d, req.profile, req.profile_file);
  if (!p) return fail(std::move(p.error()).context(d.name));
  if (!p->confirmed && !req.accept_unconfirmed) return fail(refuse_unconfirmed(d, *p).error());
  const auto& t = p->timings;
  const json args = {{"to", req.to},
                     {"from", req.from},
                     {"hop", req.hop},
                     {"hops", req.hops},
                     {"profile", p->name},
                     {"profile_file", req.profile_file},
                     {"preserve_config", req.preserve_config},
                     {"accept_unconfirmed", req.accept_unconfirmed},
                     {"image", req.image}};
  const std::string v = req.to;
  const std::string of =
      req.hops > 1 ? " (hop " + std::to_string(req.hop) + "/" + std::to_string(req.hops) + ")" : "";
  const std::string via = "profile " + describe(*p);
  const std::string name = req.image.value("name", std::string("the image"));
  const ms small = t.request * 4 + ms(30'000);
  std::vector<sdk::Step> out;
  out.push_back(step("verify-image", v, "verify " + name + " for " + v + of, req.reason, false, 1,
                     small, args));
  out.push_back(step("identify", v,
                     "identify the BMC (Supermicro, running " +
                         (req.from.empty() ? std::string("any version") : req.from) + ")" + of,
                     "no image reaches a BMC that is not the one it is for", false, 1, small,
                     args));
  out.push_back(step("upload", v, "upload " + name + " through the web interface" + of,
                     "web login, upload lock, upload (" + via + ")", true, 3,
                     t.upload + t.session + small, args));
  out.push_back(step("check-upload", v, "check that the BMC reads " + v + " from the upload" + of,
                     "the BMC's own version check of the uploaded image", false, 1, small, args));
  out.push_back(step(
      "start-flash", v,
      "start flashing " + v +
          (req.preserve_config ? ", keeping the configuration" : ", reset to factory settings") +
          of,
      req.preserve_why, true, 1, t.start_wait + small, args));
  out.push_back(step("flash-progress", v, "follow the flash to 100%" + of,
                     "the BMC writes its flash; do not cut its power", false, 10,
                     t.flash + t.online + small, args));
  out.push_back(step("wait-offline", v, "wait for the BMC to restart" + of, "", false, 1,
                     t.offline + small, args));
  out.push_back(step("wait-online", v, "wait for the BMC to answer IPMI again" + of, "", false, 3,
                     t.online + small, args));
  out.push_back(step("verify-version", v, "verify that the BMC runs " + v + of,
                     "Get Device ID is the proof", false, 1, small, args));
  return out;
}

FlashRunner::FlashRunner() = default;
FlashRunner::~FlashRunner() = default;

FlashRunner::DeviceWeb& FlashRunner::web_of(const sdk::Device& d) {
  std::lock_guard lock(mu_);
  auto& slot = web_[d.name];
  if (!slot) slot = std::make_unique<DeviceWeb>();
  return *slot;
}

namespace {

// What one step works with: the device's web session (made on first use), the profile, the
// context. Logging in and uploading again when the session was lost is here.
class Work {
 public:
  Work(sdk::DeviceContext& ctx, const sdk::Device& d, FlashRunner::DeviceWeb& dw, Args a,
       FlashProfile p)
      : ctx_(ctx), d_(d), dw_(dw), a_(std::move(a)), p_(std::move(p)) {
    const WebEndpoint e = endpoint_of(d);
    const std::string identity = e.base() + " " + p_.name + " " + (e.verify_tls ? "v" : "n");
    if (!dw_.web || dw_.identity != identity) {
      dw_.web = std::make_unique<WebFlasher>(p_, e, [] { return false; });
      dw_.identity = identity;
      dw_.uploaded.clear();
      dw_.checked = false;
    }
    dw_.web->set_cancel([this] { return ctx_.cancelled(); });
  }
  ~Work() {
    dw_.web->set_cancel([] { return false; });
  }
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;

  WebFlasher& web() { return *dw_.web; }
  const FlashProfile& profile() const { return p_; }
  const Args& args() const { return a_; }

  Status login() {
    if (dw_.web->logged_in()) return {};
    if (!p_.confirmed && !dw_.warned) {
      // Said before anything goes out with this profile.
      ctx_.log(unconfirmed_warning(p_));
      dw_.warned = true;
    }
    if (!p_.confirmed && !a_.accept) return refuse_unconfirmed(d_, p_);
    auto t = inventory_target(ctx_, d_);
    if (!t) return fail(t.error());
    dw_.uploaded.clear();
    dw_.checked = false;
    auto r = dw_.web->login(t->user, t->password);
    if (!r && r.error().code() == Errc::AuthFailed &&
        !(t->user == kFactoryUser && t->password == kFactoryPassword)) {
      auto f = dw_.web->login(kFactoryUser, kFactoryPassword);
      if (f) {
        ctx_.log(
            "web login: the inventory's login is refused, the factory login ADMIN/ADMIN works");
        r = f;
      }
    }
    if (!r) return r;
    dw_.login_at = wall_ms();
    return {};
  }

  // Runs `fn`; when the web session turned out to be gone (expired, or the BMC forgot it), logs
  // in again and runs it once more.
  Status with_session(const std::function<Status()>& fn) {
    auto r = fn();
    if (r || r.error().code() != Errc::AuthFailed || !dw_.web->session_ended()) return r;
    ctx_.log("the web session ended (" + r.error().message() + "); logging in again");
    dw_.uploaded.clear();
    dw_.checked = false;
    return fn();
  }

  using ImageLoader = std::function<Result<VerifiedImage>()>;

  // The image is loaded (and verified again) only when it has to go to the BMC: an upload this
  // session made moment ago was verified then.
  Status uploaded(const ImageLoader& load) {
    if (auto r = login(); !r) return r;
    const std::string what = a_.image.dump() + "@" + a_.to;
    if (dw_.uploaded == what) return {};
    auto img = load();
    if (!img) return fail(img.error());
    if (auto r = take_lock(); !r) return r;
    ctx_.log("uploading " + img->name + " (" + std::to_string(img->bytes.size()) + " bytes) to " +
             dw_.web->endpoint().base() + p_.upload.path);
    auto r = dw_.web->upload(
        img->name, img->bytes,
        [this](std::uint64_t sent, std::uint64_t total) { ctx_.progress(sent, total, "upload"); });
    if (!r) return r;
    dw_.uploaded = what;
    dw_.checked = false;
    return {};
  }

  Status checked(const ImageLoader& load) {
    if (auto r = uploaded(load); !r) return r;
    if (dw_.checked) return {};
    auto v = dw_.web->uploaded_version();
    if (!v) return fail(v.error());
    if (v->raw.empty())
      return fail(Errc::VerifyMismatch,
                  "version check: the BMC read no version from the uploaded image (it did not "
                  "take it as firmware); nothing was started");
    if (v->version != a_.to)
      return fail(Errc::VerifyMismatch, "version check: the BMC reads version " +
                                            (v->version.empty() ? "'" + v->raw + "'" : v->version) +
                                            " from the uploaded image, but the image is " + a_.to +
                                            "; labctl will not start this flash");
    ctx_.log("the BMC reads " + v->version + " (" + v->raw + ") from the uploaded image");
    dw_.checked = true;
    return {};
  }

  // A flash running now: the progress (any session) is above 0.
  bool flashing() {
    if (!login()) return false;
    auto p = dw_.web->progress();
    return p && p->percent && *p->percent >= 1;
  }

  void drop_lock_record() {
    std::error_code ec;
    std::filesystem::remove(lock_record(ctx_, d_), ec);
  }

 private:
  Status take_lock() {
    const auto path = lock_record(ctx_, d_);
    const auto deadline = Clock::now() + p_.timings.session + 2 * p_.timings.poll_interval;
    bool said = false;
    for (int round = 0; round < kMaxRounds; ++round) {
      auto l = dw_.web->lock();
      if (!l) return fail(l.error());
      if (*l == LockState::Granted) break;
      // Held. labctl's own lock from an earlier session (a labctl that was killed) expires with
      // that session; anyone else's is theirs.
      json rec = json::object();
      if (std::ifstream in(path); in) rec = json::parse(in, nullptr, false);
      const bool ours =
          rec.is_object() && rec.value("at", std::int64_t{0}) > 0 &&
          (rec.value("pid", 0) != ::getpid() || rec.value("at", std::int64_t{0}) < dw_.login_at) &&
          wall_ms() - rec.value("at", std::int64_t{0}) <
              (p_.timings.session + 2 * p_.timings.poll_interval).count();
      if (!ours || Clock::now() >= deadline)
        return fail(Errc::PreconditionFailed,
                    "upload lock: another web session holds the BMC's firmware upload lock "
                    "(someone updating it from a browser?), so labctl uploaded nothing. Wait "
                    "until that session ends (the BMC expires idle sessions), or, when no update "
                    "is running, cold-reset the BMC: labctl bmc " +
                        d_.name + " reset-bmc cold");
      if (!said) {
        ctx_.log(
            "the upload lock is still held by labctl's own earlier web session; waiting up "
            "to " +
            std::to_string(p_.timings.session.count() / 1000) + " s for the BMC to expire it");
        said = true;
      }
      if (!ctx_.sleep_for(p_.timings.poll_interval))
        return fail(Errc::Cancelled, "upload lock: cancelled while waiting");
    }
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    std::ofstream(path) << json{{"pid", ::getpid()}, {"at", wall_ms()}}.dump() << "\n";
    return {};
  }

  sdk::DeviceContext& ctx_;
  const sdk::Device& d_;
  FlashRunner::DeviceWeb& dw_;
  Args a_;
  FlashProfile p_;
};

Status done_already(sdk::DeviceContext& ctx, const Args& a) {
  ctx.log("the BMC already runs " + a.to + ": nothing to do");
  return {};
}

Status check_identity(sdk::DeviceContext& ctx, const sdk::Device& d, const Args& a) {
  auto id = identify(ctx, d);
  if (!id) return fail(id.error());
  const DeviceId& x = id->id;
  if (x.manufacturer != kSupermicro)
    return fail(Errc::PreconditionFailed, "the BMC's manufacturer is " +
                                              std::to_string(x.manufacturer) +
                                              ", not Supermicro (10876): this image is not for it");
  if (const inventory::Catalog* cat = ctx.catalog())
    if (const auto* fam = cat->family_for_model(d.model); fam && fam->quirks.is_object()) {
      const json ids = fam->quirks.value("bmc-product-ids", json::array());
      if (ids.is_array() && !ids.empty() &&
          std::none_of(ids.begin(), ids.end(), [&](const json& v) {
            return json_number::whole<int>(v) == static_cast<int>(x.product);
          }))
        return fail(Errc::PreconditionFailed,
                    "the BMC's product id is " + std::to_string(x.product) +
                        ", not one the catalog lists for " + d.model + " (" + ids.dump() +
                        "): is this the right board?");
    }
  const std::string running = x.firmware();
  if (running == a.to) return done_already(ctx, a);
  if (x.update_in_progress)
    return fail(Errc::PreconditionFailed,
                "the BMC reports a firmware update in progress (Get Device ID): not starting "
                "another");
  if (!a.from.empty() && running != a.from)
    return fail(Errc::PreconditionFailed, "the BMC runs " + running + ", the plan expected " +
                                              a.from + ": plan again (labctl plan)");
  ctx.log("identified: Supermicro (10876), product " + std::to_string(x.product) + ", firmware " +
          running + (id->factory ? " (factory login ADMIN/ADMIN)" : ""));
  return {};
}

}  // namespace

Result<bool> FlashRunner::step_done(sdk::DeviceContext& ctx, const sdk::Device& d,
                                    const sdk::Step& step) {
  const Args a = Args::of(step);
  if (auto r = runs_version(ctx, d, a.to); r && *r) return true;
  if (step.action == "wait-online") return identify(ctx, d, kQuickIpmi).has_value();
  if (step.action != "start-flash" && step.action != "wait-offline") return false;
  auto p = load_profile(d, a.profile, a.profile_file);
  if (!p) return fail(p.error());
  if (step.action == "wait-offline") {
    WebFlasher probe(*p, endpoint_of(d), [&ctx] { return ctx.cancelled(); });
    return !probe.answers(p->timings.poll_interval + ms(1000));
  }
  Work w(ctx, d, web_of(d), a, std::move(*p));
  return w.flashing();
}

Status FlashRunner::run_step(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& step) {
  const Args a = Args::of(step);
  const std::string& act = step.action;
  auto p = load_profile(d, a.profile, a.profile_file);
  if (!p) return fail(p.error());
  if (!p->confirmed && !a.accept) return refuse_unconfirmed(d, *p);
  const auto& t = p->timings;

  if (act == "verify-image") {
    if (auto r = runs_version(ctx, d, a.to); r && *r) return done_already(ctx, a);
    auto img = load_image(ctx, d, a);
    if (!img) return fail(img.error());
    ctx.log(img->name + ": sha256 " + img->sha256 + ", " +
            std::to_string(img->image.images.size()) + " images and the footer verified, version " +
            img->image.footer.version());
    return {};
  }
  if (act == "identify") return check_identity(ctx, d, a);
  if (act == "verify-version") {
    auto id = identify(ctx, d);
    if (!id) return fail(id.error());
    if (id->id.firmware() != a.to)
      return fail(Errc::VerifyMismatch,
                  "the BMC runs " + id->id.firmware() + " after the flash, not " + a.to);
    ctx.log("the BMC runs " + a.to +
            (id->factory ? " and answers the factory login ADMIN/ADMIN (factory settings)" : ""));
    return {};
  }
  if (act == "wait-online") {
    const auto deadline = Clock::now() + t.online;
    for (int round = 0; round < kMaxRounds && Clock::now() < deadline; ++round) {
      auto id = identify(ctx, d, kQuickIpmi);
      if (id) {
        ctx.log("the BMC answers again: firmware " + id->id.firmware());
        return {};
      }
      if (id.error().code() == Errc::AuthFailed) return fail(id.error());
      if (!ctx.sleep_for(t.poll_interval)) return fail(Errc::Cancelled, "cancelled");
    }
    return fail(Errc::Timeout,
                "the BMC did not answer IPMI within " + std::to_string(t.online.count() / 1000) +
                    " s of its restart; it may need its power removed (AC) to start again. "
                    "Nothing else was sent to it");
  }

  if (auto r = runs_version(ctx, d, a.to); r && *r) return done_already(ctx, a);
  Work w(ctx, d, web_of(d), a, std::move(*p));

  const Work::ImageLoader load = [&] { return load_image(ctx, d, a); };
  if (act == "upload" || act == "check-upload")
    return w.with_session([&] { return act == "upload" ? w.uploaded(load) : w.checked(load); });
  if (act == "start-flash") {
    if (w.flashing()) {
      ctx.log("the BMC is flashing already");
      w.drop_lock_record();
      return {};
    }
    auto r = w.with_session([&]() -> Status {
      if (auto c = w.checked(load); !c) return c;
      ctx.log(std::string("starting the flash: ") +
              (a.preserve ? "the configuration is kept"
                          : "reset to factory settings (the BMC comes back with ADMIN/ADMIN)"));
      return w.web().start(a.preserve);
    });
    if (!r) return r;
    // Confirmed by the progress rising, or by the BMC going away.
    const auto deadline = Clock::now() + t.start_wait + 5 * t.poll_interval;
    for (int round = 0; round < kMaxRounds && Clock::now() < deadline; ++round) {
      auto pr = w.web().progress();
      if (pr && pr->percent && *pr->percent >= 1) {
        ctx.log("flashing: " + std::to_string(*pr->percent) + "%");
        w.drop_lock_record();
        return {};
      }
      if (!pr && pr.error().code() == Errc::AuthFailed && w.web().session_ended()) {
        if (auto l = w.login(); !l) return l;
        continue;
      }
      if (!pr && (pr.error().code() == Errc::Unreachable || pr.error().code() == Errc::Timeout)) {
        ctx.log("the BMC stopped answering right after the start (restarting to flash)");
        w.drop_lock_record();
        return {};
      }
      if (!ctx.sleep_for(t.poll_interval)) return fail(Errc::Cancelled, "cancelled");
    }
    return fail(Errc::PreconditionFailed,
                "the BMC did not start flashing: its progress stayed at 0% after the start "
                "request");
  }
  if (act == "flash-progress") {
    const auto deadline = Clock::now() + t.flash;
    int seen = -1;
    auto since = Clock::now();
    for (int round = 0; round < kMaxRounds && Clock::now() < deadline; ++round) {
      Result<ProgressAnswer> pr = fail(Errc::Unreachable, "not asked");
      if (auto l = w.login(); l)
        pr = w.web().progress();
      else
        pr = fail(l.error());
      if (pr && pr->percent) {
        if (*pr->percent != seen) since = Clock::now();
        seen = *pr->percent;
        ctx.progress(static_cast<std::uint64_t>(seen), 100, "flashing");
        if (seen >= 100) {
          ctx.log("flashing: 100%");
          return {};
        }
      } else if (!pr && pr.error().code() == Errc::AuthFailed && w.web().session_ended()) {
        continue;  // logs in again at the top
      } else if (!pr &&
                 (pr.error().code() == Errc::Unreachable || pr.error().code() == Errc::Timeout)) {
        if (seen >= 1) {
          ctx.log("the BMC stopped answering at " + std::to_string(seen) + "%: it is restarting");
          return {};
        }
        // Nothing seen in this step (labctl restarted while the BMC was away): only the BMC
        // running the new version says the flash is over.
        if (auto r = runs_version(ctx, d, a.to); r && *r) return done_already(ctx, a);
      } else if (!pr) {
        return fail(pr.error());
      } else {
        return fail(Errc::PreconditionFailed,
                    "progress: the BMC's answer holds no percentage (is '" + w.profile().name +
                        "' the right profile?)");
      }
      if (!ctx.sleep_for(t.poll_interval)) return fail(Errc::Cancelled, "cancelled");
    }
    const auto stuck = std::chrono::duration_cast<ms>(Clock::now() - since).count() / 1000;
    return fail(Errc::Timeout, "the flash did not finish within " +
                                   std::to_string(t.flash.count() / 1000) + " s" +
                                   (seen >= 0 ? ": the BMC has reported " + std::to_string(seen) +
                                                    "% for " + std::to_string(stuck) + " s"
                                              : ": no progress was read") +
                                   ". Do not cut its power while it may still be writing");
  }
  if (act == "wait-offline") {
    const auto deadline = Clock::now() + t.offline;
    auto gone = [](const Error& e) {
      return e.code() == Errc::Unreachable || e.code() == Errc::Timeout;
    };
    for (int round = 0; round < kMaxRounds && Clock::now() < deadline; ++round) {
      Result<ProgressAnswer> pr = fail(Errc::Unreachable, "web interface gone");
      if (w.web().answers(t.poll_interval + ms(1000))) {
        auto l = w.login();
        pr = l ? w.web().progress() : Result<ProgressAnswer>(fail(l.error()));
      }
      if (!pr && gone(pr.error())) {
        ctx.log("the web interface went away: the BMC is restarting");
        return {};
      }
      // A BMC that restarted between two looks has forgotten every web session: only then is it
      // worth asking IPMI what it runs.
      if (!pr && pr.error().code() == Errc::AuthFailed && w.web().session_ended()) {
        if (auto r = runs_version(ctx, d, a.to); r && *r) return done_already(ctx, a);
      } else if (!pr) {
        return fail(pr.error());
      }
      if (!ctx.sleep_for(t.poll_interval)) return fail(Errc::Cancelled, "cancelled");
    }
    return fail(Errc::Timeout, "the BMC did not restart within " +
                                   std::to_string(t.offline.count() / 1000) +
                                   " s after the flash reached 100%");
  }
  return fail(Errc::NotSupported, d.name + ": no executor for step '" + act + "'");
}

Result<sdk::VerbResult> FlashRunner::plan_verb(sdk::DeviceContext& ctx, const sdk::Device& d,
                                               const json& args) {
  const std::string file = args.value("file", "");
  const bool preserve = args.value("preserve-config", false);
  const bool reset = args.value("factory-reset", false);
  if (preserve == reset)
    return fail(Errc::InvalidInput,
                "say what happens to the BMC's configuration: --preserve-config keeps its users "
                "and network settings, --factory-reset brings it back with ADMIN/ADMIN (labctl "
                "then sets the inventory's login and LAN settings again)");
  auto bytes = read_image_file(file);
  if (!bytes) return fail(bytes.error());
  auto img = parse_aten_image(*bytes);
  if (!img) return fail(std::move(img.error()).context(file));
  const std::string version = img->footer.found ? img->footer.version() : "";
  if (auto fit = check_image_for(*img, d.model, version); !fit)
    return fail(Error(fit.error().code(), file + ": refused for " + d.name + ": " +
                                              fit.error().message() + "; nothing was sent"));
  FlashRequest req;
  req.to = version;
  req.preserve_config = preserve;
  req.preserve_why = preserve ? "--preserve-config" : "--factory-reset";
  req.reason = "labctl bmc " + d.name + " firmware flash " + file;
  const std::string abs = std::filesystem::absolute(file).lexically_normal().string();
  req.image = {{"file", abs},
               {"name", std::filesystem::path(file).filename().string()},
               {"sha256", sha256_hex(*bytes)}};
  const json w = web_params(d);
  const inventory::Family* fam = ctx.catalog() ? ctx.catalog()->family_for_model(d.model) : nullptr;
  const inventory::Release* rel = fam ? fam->find(version) : nullptr;
  if (const std::string a = args.value("profile", std::string()); !a.empty()) {
    // A path is a profile of the operator's own, a plain word a built-in one.
    if (a.find('/') != std::string::npos)
      req.profile_file = std::filesystem::absolute(a).lexically_normal().string();
    else
      req.profile = a;
  } else if (w.contains("profile-file"))
    req.profile_file = w.value("profile-file", "");
  else if (w.contains("profile"))
    req.profile = w.value("profile", "");
  else if (rel && rel->options.is_object() && rel->options.contains("flasher-profile"))
    req.profile = rel->options.value("flasher-profile", "");
  else if (text::lower(d.model).rfind("x8", 0) == 0)
    req.profile = "x8-aten-web";
  else
    return fail(
        Errc::PreconditionFailed,
        d.name + ": no flasher profile for " +
            (d.model.empty() ? std::string("a board without a model") : d.model) +
            ": give --profile (built in: " + text::join_list(builtin_profile_names(), ", ") + ")");
  req.accept_unconfirmed = args.value("accept-unconfirmed-profile", false) ||
                           w.value("accept-unconfirmed-profile", false);
  auto prof = load_profile(d, req.profile, req.profile_file);
  if (!prof) return fail(prof.error());

  sdk::VerbResult r;
  r.data = {
      {"file", abs},
      {"image", {{"version", version}, {"sha256", req.image["sha256"]}, {"size", bytes->size()}}},
      {"profile", {{"name", prof->name}, {"confirmed", prof->confirmed}, {"origin", prof->origin}}},
      {"preserve_config", preserve}};
  r.text = file + ": ATEN image " + version + ", every checksum verified\n";
  if (!prof->confirmed) r.text += unconfirmed_warning(*prof) + "\n";
  // What the BMC runs now decides whether there is anything to do; a BMC that does not answer
  // (restarting after a flash labctl was interrupted in) gets the steps, which wait for it.
  auto id = identify(ctx, d, ms(3000));
  if (id) {
    if (id->id.firmware() == version) {
      r.data["running"] = version;
      r.data["status"] = "up-to-date";
      r.text += d.name + " runs " + version + " already: nothing to do\n";
      return r;
    }
    req.from = id->id.firmware();
    r.data["running"] = req.from;
  } else if (id.error().code() == Errc::AuthFailed) {
    return fail(std::move(id.error()).context(d.name));
  } else {
    r.text += d.name + " does not answer IPMI now (" + id.error().message() +
              "); the steps wait for it\n";
  }
  auto steps = flash_steps(d, req);
  if (!steps) return fail(steps.error());
  json list = json::array();
  for (const auto& s : *steps)
    list.push_back(s.to_json());
  r.data["run_steps"] = list;
  r.text += "flashing " + d.name + (req.from.empty() ? "" : " from " + req.from) + " to " +
            version + " with profile " + describe(*prof) + ", " +
            (preserve ? "keeping the configuration" : "reset to factory settings") + "\n";
  return r;
}

}  // namespace labctl::supermicro_bmc
