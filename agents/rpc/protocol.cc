#include "agents/rpc/protocol.h"

#include "common/digest.h"
#include "common/json_number.h"

#include <charconv>
#include <limits>

namespace labctl::agents::rpc {

namespace {

// Reads the fields of one JSON object strictly; the first problem is kept and named.
class Fields {
 public:
  Fields(const json& j, std::string what) : j_(j), what_(std::move(what)) {}

  std::string str(const char* key, bool required = true, std::size_t max = 1u << 20) {
    const json* v = find(key, required);
    if (v == nullptr) return {};
    if (!v->is_string()) return bad(key, "must be a string"), std::string();
    const auto& s = v->get_ref<const std::string&>();
    if (s.size() > max) return bad(key, "is longer than " + std::to_string(max) + " bytes"), "";
    return s;
  }
  // A whole number in [lo, hi]; JSON floats and out-of-range values are refused, never cast.
  std::int64_t integer(const char* key, std::int64_t lo, std::int64_t hi, bool required,
                       std::int64_t fallback = 0) {
    const json* v = find(key, required);
    if (v == nullptr) return fallback;
    const auto w = json_number::whole<std::int64_t>(*v);
    if (!w) {
      if (v->is_number_unsigned()) return bad(key, "is out of range"), fallback;
      return bad(key, "must be a whole number"), fallback;
    }
    const std::int64_t x = *w;
    if (x < lo || x > hi)
      return bad(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi)),
             fallback;
    return x;
  }
  std::uint64_t uinteger(const char* key, bool required) {
    const json* v = find(key, required);
    if (v == nullptr) return 0;
    if (const auto w = json_number::whole<std::uint64_t>(*v)) return *w;
    return bad(key, "must be a whole number >= 0"), 0;
  }
  bool boolean(const char* key, bool required, bool fallback) {
    const json* v = find(key, required);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) return bad(key, "must be true or false"), fallback;
    return v->get<bool>();
  }
  const json* object(const char* key, bool required) {
    const json* v = find(key, required);
    if (v != nullptr && !v->is_object()) return bad(key, "must be an object"), nullptr;
    return v;
  }
  const json* array(const char* key, bool required, std::size_t max) {
    const json* v = find(key, required);
    if (v == nullptr) return nullptr;
    if (!v->is_array()) return bad(key, "must be an array"), nullptr;
    if (v->size() > max)
      return bad(key, "has more than " + std::to_string(max) + " items"), nullptr;
    return v;
  }
  std::vector<std::string> strings(const char* key, bool required, std::size_t max) {
    std::vector<std::string> out;
    const json* a = array(key, required, max);
    if (a == nullptr) return out;
    for (const auto& x : *a) {
      if (!x.is_string()) return bad(key, "must hold strings only"), std::vector<std::string>{};
      out.push_back(x.get<std::string>());
    }
    return out;
  }

  void bad(std::string_view key, const std::string& why) {
    if (!error_) error_ = what_ + ": '" + std::string(key) + "' " + why;
  }
  Status status() const {
    if (error_) return fail(Errc::InvalidInput, *error_);
    return {};
  }

 private:
  const json* find(const char* key, bool required) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (required) bad(key, "is missing");
      return nullptr;
    }
    return &*it;
  }

  const json& j_;
  std::string what_;
  std::optional<std::string> error_;
};

Result<json> parse_object(std::string_view body, const std::string& what, std::size_t max) {
  if (body.size() > max)
    return fail(Errc::InvalidInput, what + ": " + std::to_string(body.size()) +
                                        " bytes, over the limit of " + std::to_string(max));
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail(Errc::InvalidInput, what + ": not valid JSON");
  if (!j.is_object()) return fail(Errc::InvalidInput, what + ": must be a JSON object");
  return j;
}

constexpr std::size_t kMaxName = 255;

// A device or verb name as the inventory allows them (no control characters, bounded).
void check_name(Fields& f, const char* key, const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return f.bad(key, "contains a control character");
}

Result<sdk::Step> decode_step(const json& j) {
  if (!j.is_object()) return fail(Errc::InvalidInput, "step: must be an object");
  Fields f(j, "step");
  f.str("key");
  f.str("action");
  f.str("title", false);
  f.str("reason", false);
  f.object("args", false);
  f.integer("weight", 0, 1'000'000, false);
  f.boolean("writes", false, true);
  f.integer("hop", 0, 1000, false);
  f.integer("hops", 0, 1000, false);
  f.integer("timeout_ms", 0, std::int64_t{1} << 40, false);
  if (auto s = f.status(); !s) return fail(std::move(s.error()));
  return sdk::Step::from_json(j);
}

Result<FirmwareManifest> manifest_from(const json& j, const std::string& what) {
  Fields f(j, what);
  FirmwareManifest m;
  m.family = f.str("family", true, kMaxName);
  m.release = f.str("release", true, kMaxName);
  if (const json* files = f.array("files", true, 4096))
    for (const auto& x : *files) {
      if (!x.is_object()) {
        f.bad("files", "must hold objects");
        break;
      }
      Fields g(x, what + " file");
      FirmwareFile file;
      file.name = g.str("name", true, kMaxName);
      file.sha256 = g.str("sha256", true, 64);
      file.size = g.uinteger("size", true);
      if (file.name.empty() || file.name.find('/') != std::string::npos || file.name == "." ||
          file.name == "..")
        g.bad("name", "must be a plain file name");
      if (!is_sha256_hex(file.sha256)) g.bad("sha256", "must be 64 lower-case hex digits");
      if (auto s = g.status(); !s) return fail(std::move(s.error()));
      m.files.push_back(std::move(file));
    }
  if (auto s = f.status(); !s) return fail(std::move(s.error()));
  return m;
}

}  // namespace

json encode(const ConfigPush& p) {
  return {{"inventory-name", p.inventory_name}, {"inventory", p.inventory}, {"catalog", p.catalog}};
}
json encode(const ConfigAck& a) {
  return {{"config", a.config},
          {"devices", a.devices},
          {"tftp-segments", a.tftp_segments},
          {"dhcp-segments", a.dhcp_segments},
          {"services-error", a.services_error}};
}
json encode(const DeviceCall& c) {
  return {{"config", c.config}, {"device", c.device}};
}
json encode(const StepCall& c) {
  return {{"config", c.config},
          {"device", c.device},
          {"step", c.step.to_json()},
          {"timeout-ms", c.timeout_ms}};
}
json encode(const VerbCall& c) {
  return {{"config", c.config}, {"device", c.device}, {"verb", c.verb}, {"args", c.args}};
}
json encode(const FirmwareManifest& m) {
  json files = json::array();
  for (const auto& f : m.files)
    files.push_back({{"name", f.name}, {"sha256", f.sha256}, {"size", f.size}});
  return {{"family", m.family}, {"release", m.release}, {"files", files}};
}
json encode(const AgentStatus& s) {
  return {{"api", s.api},
          {"agent", s.agent},
          {"version", s.version},
          {"config", s.config},
          {"started-ms", s.started_ms},
          {"running-steps", s.running_steps},
          {"events", s.events},
          {"tftp-segments", s.tftp_segments},
          {"dhcp-segments", s.dhcp_segments},
          {"services-error", s.services_error}};
}

std::string encode_line(const StreamLine& l) {
  json j;
  switch (l.kind) {
    case StreamLine::Kind::Progress:
      j = {{"progress", {{"done", l.done}, {"total", l.total}, {"note", l.text}}}};
      break;
    case StreamLine::Kind::Log:
      j = {{"log", l.text}};
      break;
    case StreamLine::Kind::Keepalive:
      j = {{"keepalive", true}};
      break;
    case StreamLine::Kind::Ok:
      j = {{"ok", true}};
      break;
    case StreamLine::Kind::Failed: {
      const Error e = l.error.value_or(Error(Errc::Internal, "failed"));
      std::optional<NeedFirmware> need;
      if (l.need_firmware) need = NeedFirmware{l.need_firmware->family, l.need_firmware->release};
      j = encode_error(e, need);
      break;
    }
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<ConfigPush> decode_config_push(std::string_view body) {
  auto j = parse_object(body, "config", kMaxConfigBody);
  if (!j) return fail(std::move(j.error()));
  Fields f(*j, "config");
  ConfigPush p;
  p.inventory_name = f.str("inventory-name", true, 4096);
  p.inventory = f.str("inventory", true, kMaxConfigBody);
  p.catalog = f.str("catalog", true, kMaxConfigBody);
  if (auto s = f.status(); !s) return fail(std::move(s.error()));
  if (p.inventory_name.empty() || p.inventory_name.find('/') != std::string::npos)
    return fail(Errc::InvalidInput, "config: 'inventory-name' must be a plain file name");
  return p;
}

Result<ConfigAck> decode_config_ack(std::string_view body) {
  auto j = parse_object(body, "config answer", kMaxJsonBody);
  if (!j) return fail(std::move(j.error()));
  Fields f(*j, "config answer");
  ConfigAck a;
  a.config = f.str("config", true, 64);
  a.devices = f.strings("devices", false, 100'000);
  a.tftp_segments = f.strings("tftp-segments", false, 4096);
  a.dhcp_segments = f.strings("dhcp-segments", false, 4096);
  a.services_error = f.str("services-error", false, 64 * 1024);
  if (auto s = f.status(); !s) return fail(std::move(s.error()));
  return a;
}

Result<DeviceCall> decode_device_call(std::string_view body) {
  auto j = parse_object(body, "request", kMaxJsonBody);
  if (!j) return fail(std::move(j.error()));
  Fields f(*j, "request");
  DeviceCall c;
  c.config = f.str("config", true, 64);
  c.device = f.str("device", true, kMaxName);
  check_name(f, "device", c.device);
  if (auto s = f.status(); !s) return fail(std::move(s.error()));
  return c;
}

Result<StepCall> decode_step_call(std::string_view body) {
  auto j = parse_object(body, "request", kMaxJsonBody);
  if (!j) return fail(std::move(j.error()));
  Fields f(*j, "request");
  StepCall c;
  c.config = f.str("config", true, 64);
  c.device = f.str("device", true, kMaxName);
  check_name(f, "device", c.device);
  c.timeout_ms = f.integer("timeout-ms", 0, std::int64_t{1} << 40, false);
  const json* step = f.object("step", true);
  if (auto s = f.status(); !s) return fail(std::move(s.error()));
  auto st = decode_step(*step);
  if (!st) return fail(std::move(st.error()).context("request"));
  c.step = std::move(*st);
  return c;
}

Result<VerbCall> decode_verb_call(std::string_view body) {
  auto j = parse_object(body, "request", kMaxJsonBody);
  if (!j) return fail(std::move(j.error()));
  Fields f(*j, "request");
  VerbCall c;
  c.config = f.str("config", true, 64);
  c.device = f.str("device", true, kMaxName);
  c.verb = f.str("verb", true, kMaxName);
  check_name(f, "device", c.device);
  check_name(f, "verb", c.verb);
  if (const json* a = f.object("args", false)) c.args = *a;
  if (auto s = f.status(); !s) return fail(std::move(s.error()));
  return c;
}

Result<FirmwareManifest> decode_firmware_manifest(std::string_view body) {
  auto j = parse_object(body, "firmware manifest", kMaxJsonBody);
  if (!j) return fail(std::move(j.error()));
  return manifest_from(*j, "firmware manifest");
}

Result<AgentStatus> decode_status(std::string_view body) {
  auto j = parse_object(body, "status", kMaxJsonBody);
  if (!j) return fail(std::move(j.error()));
  Fields f(*j, "status");
  AgentStatus s;
  s.api = static_cast<int>(f.integer("api", 1, 1'000'000, true));
  s.agent = f.str("agent", true, kMaxName);
  s.version = f.str("version", false, kMaxName);
  s.config = f.str("config", false, 64);
  s.started_ms = f.integer("started-ms", 0, std::numeric_limits<std::int64_t>::max(), false);
  s.running_steps = f.integer("running-steps", 0, 1'000'000, false);
  s.events = f.uinteger("events", false);
  s.tftp_segments = f.strings("tftp-segments", false, 4096);
  s.dhcp_segments = f.strings("dhcp-segments", false, 4096);
  s.services_error = f.str("services-error", false, 64 * 1024);
  if (auto st = f.status(); !st) return fail(std::move(st.error()));
  return s;
}

Result<StreamLine> decode_line(std::string_view line) {
  auto j = parse_object(line, "step stream", kMaxStreamLine);
  if (!j) return fail(std::move(j.error()));
  StreamLine l;
  if (auto it = j->find("progress"); it != j->end()) {
    if (!it->is_object()) return fail(Errc::InvalidInput, "step stream: 'progress' not an object");
    Fields f(*it, "step stream progress");
    l.kind = StreamLine::Kind::Progress;
    l.done = f.uinteger("done", true);
    l.total = f.uinteger("total", false);
    l.text = f.str("note", false, 4096);
    if (auto s = f.status(); !s) return fail(std::move(s.error()));
    return l;
  }
  if (auto it = j->find("log"); it != j->end()) {
    if (!it->is_string()) return fail(Errc::InvalidInput, "step stream: 'log' not a string");
    l.kind = StreamLine::Kind::Log;
    l.text = it->get<std::string>();
    return l;
  }
  if (j->contains("keepalive")) return l;
  if (auto it = j->find("ok"); it != j->end()) {
    if (!it->is_boolean() || !it->get<bool>())
      return fail(Errc::InvalidInput, "step stream: 'ok' must be true");
    l.kind = StreamLine::Kind::Ok;
    return l;
  }
  if (j->contains("error")) {
    l.kind = StreamLine::Kind::Failed;
    std::optional<NeedFirmware> need;
    l.error = decode_error(line, 200, &need);
    if (need) l.need_firmware = FirmwareManifest{need->family, need->release, {}};
    return l;
  }
  return fail(Errc::InvalidInput, "step stream: a line of unknown kind");
}

json encode_error(const Error& e, const std::optional<NeedFirmware>& need) {
  json j = {{"code", std::string(errc_name(e.code()))}, {"message", e.message()}};
  if (need) j["need-firmware"] = {{"family", need->family}, {"release", need->release}};
  return {{"error", j}};
}

Error decode_error(std::string_view body, int http_status, std::optional<NeedFirmware>* need) {
  const std::string status = "HTTP " + std::to_string(http_status);
  auto j = parse_object(body.substr(0, std::min(body.size(), kMaxJsonBody)), "error", kMaxJsonBody);
  if (!j || !j->contains("error") || !(*j)["error"].is_object())
    return Error(Errc::Internal, status + " without an error document from the agent");
  const json& e = (*j)["error"];
  Fields f(e, "error");
  const std::string code = f.str("code", true, 64);
  std::string message = f.str("message", true, 64 * 1024);
  if (auto s = f.status(); !s) return Error(Errc::Internal, status + ": " + s.error().message());
  if (need) {
    need->reset();
    if (auto it = e.find("need-firmware"); it != e.end() && it->is_object()) {
      Fields g(*it, "need-firmware");
      NeedFirmware n{g.str("family", true, kMaxName), g.str("release", true, kMaxName)};
      if (g.status()) *need = std::move(n);
    }
  }
  return Error(errc_from_name(code), std::move(message));
}

int http_status(Errc c) {
  switch (c) {
    case Errc::InvalidInput:
      return 400;
    case Errc::AuthFailed:
      return 403;
    case Errc::NotFound:
      return 404;
    case Errc::PreconditionFailed:
    case Errc::VerifyMismatch:
      return 422;
    case Errc::NotSupported:
      return 501;
    case Errc::Unreachable:
      return 502;
    case Errc::Timeout:
      return 504;
    case Errc::Cancelled:
      return 499;
    case Errc::Internal:
      break;
  }
  return 500;
}

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string config_id(const ConfigPush& p) {
  // Length-prefixed parts, so moving bytes between them changes the id.
  Sha256 h;
  for (const std::string* part : {&p.inventory_name, &p.inventory, &p.catalog}) {
    h.update(std::to_string(part->size()) + ":");
    h.update(*part);
  }
  return h.hex_final();
}

std::optional<int> path_version(std::string_view path) {
  if (path.size() < 3 || path[0] != '/' || path[1] != 'v') return std::nullopt;
  const auto end = path.find('/', 2);
  const std::string_view digits =
      path.substr(2, end == std::string_view::npos ? path.size() - 2 : end - 2);
  int v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || p != digits.data() + digits.size() || digits.empty() || v <= 0)
    return std::nullopt;
  return v;
}

}  // namespace labctl::agents::rpc
