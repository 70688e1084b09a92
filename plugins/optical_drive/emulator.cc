#include "plugins/optical_drive/emulator.h"

#include "common/json_number.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <random>

namespace labctl::optical_drive {

using nlohmann::json;
namespace s = scsi;

namespace {

constexpr char kMagic[] = "LCTLMCOD";
constexpr std::size_t kHeader = 32;

// Profiles a slim BD writer reports in its Profile List, newest media first.
const std::vector<std::uint16_t> kProfiles = {0x0043, 0x0041, 0x0040, 0x002B, 0x001B,
                                              0x001A, 0x0015, 0x0014, 0x0013, 0x0012,
                                              0x0011, 0x0010, 0x000A, 0x0009, 0x0008};

std::string command_key(std::uint8_t opcode) {
  switch (opcode) {
    case s::kTestUnitReady:
      return "test-unit-ready";
    case s::kRequestSense:
      return "request-sense";
    case s::kInquiry:
      return "inquiry";
    case s::kWriteBuffer:
      return "write-buffer";
    case s::kGetConfiguration:
      return "get-configuration";
    default:
      return "other";
  }
}

std::uint32_t crc_of(s::ByteView d) {
  return static_cast<std::uint32_t>(
      ::crc32(0L, d.data(), static_cast<uInt>(std::min<std::size_t>(d.size(), UINT32_MAX))));
}

std::uint32_t be32(s::ByteView d, std::size_t at) {
  return static_cast<std::uint32_t>(d[at]) << 24 | static_cast<std::uint32_t>(d[at + 1]) << 16 |
         static_cast<std::uint32_t>(d[at + 2]) << 8 | d[at + 3];
}

void put32(s::Bytes& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

std::string field(s::ByteView d, std::size_t at, std::size_t n) {
  std::string out(d.begin() + static_cast<std::ptrdiff_t>(at),
                  d.begin() + static_cast<std::ptrdiff_t>(at + n));
  while (!out.empty() && (out.back() == ' ' || out.back() == '\0'))
    out.pop_back();
  return out;
}

}  // namespace

// ---- Faults and configuration ----

Result<Fault> Fault::from_json(const json& j) {
  if (!j.is_object()) return fail(Errc::InvalidInput, "a fault is a JSON object");
  static const std::set<std::string> ons = {"any",           "inquiry",           "test-unit-ready",
                                            "request-sense", "get-configuration", "write-buffer"};
  static const std::set<std::string> actions = {"check-condition", "timeout", "vanish"};
  static const std::set<std::string> keys = {"on",  "mode", "nth",     "times", "action", "key",
                                             "asc", "ascq", "hang-ms", "after", "op"};
  for (const auto& [k, v] : j.items())
    if (!keys.count(k)) return fail(Errc::InvalidInput, "fault: unknown key '" + k + "'");
  Fault f;
  try {
    f.on = j.value("on", std::string("any"));
    f.mode = j.value("mode", -1);
    f.nth = j.value("nth", 1);
    f.times = j.value("times", 1);
    f.action = j.value("action", std::string());
    f.key = static_cast<std::uint8_t>(j.value("key", 0) & 0x0F);
    f.asc = static_cast<std::uint8_t>(j.value("asc", 0));
    f.ascq = static_cast<std::uint8_t>(j.value("ascq", 0));
    f.hang_ms = j.value("hang-ms", 30'000);
    f.after = j.value("after", false);
  } catch (const json::exception& e) {
    return fail(Errc::InvalidInput, std::string("fault: ") + e.what());
  }
  if (!ons.count(f.on)) return fail(Errc::InvalidInput, "fault: 'on' '" + f.on + "' is unknown");
  if (!actions.count(f.action))
    return fail(
        Errc::InvalidInput,
        "fault: 'action' must be check-condition, timeout or vanish, not '" + f.action + "'");
  if (f.nth < 1 || f.times < 1)
    return fail(Errc::InvalidInput, "fault: 'nth' and 'times' are at least 1");
  if (f.hang_ms < 0 || f.hang_ms > 600'000)
    return fail(Errc::InvalidInput, "fault: 'hang-ms' is 0..600000");
  return f;
}

json Fault::to_json() const {
  return {{"on", on},           {"mode", mode},   {"nth", nth},  {"times", times},
          {"action", action},   {"key", key},     {"asc", asc},  {"ascq", ascq},
          {"hang-ms", hang_ms}, {"after", after}, {"seen", seen}};
}

Result<EmulatorConfig> EmulatorConfig::from_json(const json& j) {
  if (!j.is_object()) return fail(Errc::InvalidInput, "emulator config: not a JSON object");
  EmulatorConfig c;
  try {
    c.vendor = j.value("vendor", c.vendor);
    c.product = j.value("product", c.product);
    c.revision = j.value("revision", c.revision);
    c.serial = j.value("serial", c.serial);
    c.medium = j.value("medium", c.medium);
    c.tray_open = j.value("tray-open", c.tray_open);
    // Numbers are checked before they are converted: a float or a huge value would be undefined
    // behaviour in the conversion (the fuzzer found "modes":[5111...1]).
    auto whole = [&](const json& v, std::int64_t hi,
                     const std::string& what) -> Result<std::int64_t> {
      if (const auto x = json_number::whole_in(v, 0, hi)) return *x;
      return fail(
          Errc::InvalidInput,
          "emulator config: " + what + " must be a whole number from 0 to " + std::to_string(hi));
    };
    if (j.contains("reboot-ms")) {
      auto r = whole(j.at("reboot-ms"), 3'600'000, "reboot-ms");
      if (!r) return fail(r.error());
      c.reboot = std::chrono::milliseconds(*r);
    }
    if (j.contains("capacity")) {
      auto r = whole(j.at("capacity"), UINT32_MAX, "capacity");
      if (!r) return fail(r.error());
      c.capacity = static_cast<decltype(c.capacity)>(*r);
    }
    c.descriptor_sense = j.value("descriptor-sense", c.descriptor_sense);
    if (j.contains("modes")) {
      c.modes.clear();
      for (const auto& m : j.at("modes")) {
        auto r = whole(m, 0xFF, "a WRITE BUFFER mode");
        if (!r) return fail(r.error());
        c.modes.insert(static_cast<std::uint8_t>(*r));
      }
    }
    for (const auto& f : j.value("faults", json::array())) {
      auto fault = Fault::from_json(f);
      if (!fault) return fail(fault.error());
      c.faults.push_back(*fault);
    }
  } catch (const json::exception& e) {
    return fail(Errc::InvalidInput, std::string("emulator config: ") + e.what());
  }
  static const std::set<std::string> media = {"none", "cd", "dvd", "bd"};
  if (!media.count(c.medium))
    return fail(Errc::InvalidInput, "emulator config: medium '" + c.medium +
                                        "' is not none, cd, "
                                        "dvd or bd");
  if (c.capacity < 64 || c.capacity > s::kMax24)
    return fail(Errc::InvalidInput, "emulator config: capacity is 64..16777215");
  return c;
}

// ---- The drive ----

DriveEmulator::DriveEmulator(EmulatorConfig config, const json& saved, Clock::time_point now)
    : config_(std::move(config)) {
  revision_ = config_.revision;
  if (saved.is_object()) {
    try {
      revision_ = saved.value("revision", revision_);
      deferred_ = saved.value("deferred", std::string());
      config_.medium = saved.value("medium", config_.medium);
      config_.tray_open = saved.value("tray-open", config_.tray_open);
      counts_ = saved.value("counts", json::object());
      writes_ = saved.value("writes", json::array());
      activations_ = saved.value("activations", 0);
      refused_ = saved.value("refused", 0);
      power_ons_ = saved.value("power-ons", 0);
      bytes_received_ = saved.value("bytes-received", std::uint64_t{0});
    } catch (const json::exception& e) {
      load_error_ = std::string("saved state: ") + e.what();
    }
    if (!counts_.is_object()) counts_ = json::object();
    if (!writes_.is_array()) writes_ = json::array();
  }
  ++power_ons_;
  // Microcode saved for deferred activation becomes active at power-on (SPC-4 mode 0Eh).
  if (!deferred_.empty()) {
    revision_ = deferred_;
    deferred_.clear();
    ++activations_;
  }
  unit_attention_ = std::pair<std::uint8_t, std::uint8_t>{0x29, 0x01};
  (void)now;
}

bool DriveEmulator::take_dirty() {
  const bool d = dirty_;
  dirty_ = false;
  return d;
}

json DriveEmulator::state() const {
  return {{"revision", revision_},
          {"deferred", deferred_},
          {"medium", config_.medium},
          {"tray-open", config_.tray_open},
          {"counts", counts_},
          {"writes", writes_},
          {"activations", activations_},
          {"refused", refused_},
          {"power-ons", power_ons_},
          {"bytes-received", bytes_received_},
          {"buffered", buffer_.size()},
          {"rebooting", !booting_revision_.empty()},
          {"faults", [&] {
             json a = json::array();
             for (const auto& f : config_.faults)
               a.push_back(f.to_json());
             return a;
           }()}};
}

json DriveEmulator::control(const json& req, Clock::time_point now) {
  // A harness's request is input like any other: a wrong type is an answer, not a crash.
  try {
    return control_op(req, now);
  } catch (const json::exception& e) {
    return {{"error", std::string("bad request: ") + e.what()}};
  }
}

json DriveEmulator::control_op(const json& req, Clock::time_point now) {
  const std::string op = req.is_object() ? req.value("op", std::string()) : std::string();
  if (op == "state") {
    (void)rebooting(now);  // a finished reboot shows in the state
    return state();
  }
  if (op == "medium") {
    const std::string m = req.value("medium", std::string("none"));
    if (m != "none" && m != "cd" && m != "dvd" && m != "bd")
      return {{"error", "medium '" + m + "' is not none, cd, dvd or bd"}};
    if (m != config_.medium) unit_attention_ = std::pair<std::uint8_t, std::uint8_t>{0x28, 0x00};
    config_.medium = m;
    config_.tray_open = req.value("tray-open", false);
    dirty_ = true;
    return state();
  }
  if (op == "fault") {
    auto f = Fault::from_json(req);
    if (!f) return {{"error", f.error().message()}};
    config_.faults.push_back(*f);
    return state();
  }
  if (op == "clear-faults") {
    config_.faults.clear();
    return state();
  }
  return {{"error", "unknown op '" + op + "' (state, medium, fault, clear-faults)"}};
}

Outcome DriveEmulator::check(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                             std::optional<std::uint16_t> progress) const {
  Outcome o;
  o.response.status = s::kCheckCondition;
  o.response.sense = config_.descriptor_sense ? s::build_descriptor_sense(key, asc, ascq)
                                              : s::build_fixed_sense(key, asc, ascq, progress);
  return o;
}

Outcome DriveEmulator::good(s::Bytes data, std::size_t allocation) const {
  Outcome o;
  o.response.status = s::kGood;
  if (data.size() > allocation) data.resize(allocation);
  o.response.residual = static_cast<std::int64_t>(allocation - data.size());
  o.response.data = std::move(data);
  return o;
}

std::optional<Outcome> DriveEmulator::rebooting(Clock::time_point now) {
  if (booting_revision_.empty()) return std::nullopt;
  if (now >= reboot_until_) {
    booting_revision_.clear();
    unit_attention_ = std::pair<std::uint8_t, std::uint8_t>{0x3F, 0x01};
    return std::nullopt;
  }
  const auto total = std::max<std::int64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(reboot_until_ - reboot_start_).count(),
      1);
  const auto done =
      std::chrono::duration_cast<std::chrono::milliseconds>(now - reboot_start_).count();
  const auto progress =
      static_cast<std::uint16_t>(std::clamp<std::int64_t>(done * 65536 / total, 0, 65535));
  return check(s::kNotReady, 0x04, 0x01, progress);
}

void DriveEmulator::activate(const std::string& revision, Clock::time_point now) {
  // Saved first: a power cut during the reboot comes back with the new microcode.
  revision_ = revision;
  booting_revision_ = revision;
  reboot_start_ = now;
  reboot_until_ = now + config_.reboot;
  buffer_.clear();
  ++activations_;
  dirty_ = true;
}

std::uint16_t DriveEmulator::current_profile() const {
  if (config_.medium == "bd") return 0x0040;
  if (config_.medium == "dvd") return 0x0010;
  if (config_.medium == "cd") return 0x0008;
  return 0;
}

void DriveEmulator::log_write(const s::WriteBufferCdb& w, const std::string& result) {
  // Bounded: a test may send many chunks, the state file must stay small.
  if (writes_.size() < 4096)
    writes_.push_back(
        {{"mode", w.mode}, {"offset", w.offset}, {"length", w.length}, {"result", result}});
  dirty_ = true;
}

Outcome DriveEmulator::handle(const Command& c, Clock::time_point now) {
  const std::uint8_t opcode = c.cdb.empty() ? 0xFF : c.cdb[0];
  const std::string key = command_key(opcode);
  counts_[key] = counts_.value(key, 0) + 1;
  dirty_ = true;
  // Every matching fault counts the command; the first one whose turn it is acts.
  Fault* hit = nullptr;
  for (auto& f : config_.faults) {
    if (f.on != "any" && f.on != key) continue;
    if (f.mode >= 0 &&
        !(opcode == s::kWriteBuffer && c.cdb.size() >= 2 && (c.cdb[1] & 0x1F) == f.mode))
      continue;
    ++f.seen;
    if (!hit && f.seen >= f.nth && f.seen < f.nth + f.times) hit = &f;
  }
  if (hit) {
    if (hit->action == "check-condition") return check(hit->key, hit->asc, hit->ascq);
    if (hit->action == "timeout") {
      Outcome o;
      o.effect = Effect::Hang;
      o.hang_ms = hit->hang_ms;
      return o;
    }
    Outcome o = hit->after ? answer(c, now) : Outcome{};
    o.effect = Effect::Vanish;
    return o;
  }
  return answer(c, now);
}

Outcome DriveEmulator::answer(const Command& c, Clock::time_point now) {
  if (c.cdb.empty()) return check(s::kIllegalRequest, 0x20, 0x00);
  const std::uint8_t opcode = c.cdb[0];
  const std::size_t want = s::cdb_length(opcode);
  if (want == 0 || c.cdb.size() != want) return check(s::kIllegalRequest, 0x20, 0x00);
  if (auto busy = rebooting(now)) return *busy;
  const bool data_in = c.direction == Direction::In;

  if (opcode == s::kInquiry) {
    const std::size_t alloc =
        std::min<std::size_t>(c.cdb[3] << 8 | c.cdb[4], data_in ? c.data_in_length : 0);
    if (c.cdb[1] & 0x02) return check(s::kIllegalRequest, 0x24, 0x00);  // CmdDt: obsolete
    if (c.cdb[1] & 0x01) {
      if (c.cdb[2] == 0x00) {
        s::Bytes page = {s::kTypeOptical, 0x00, 0x00, 0x01, 0x00};
        if (!config_.serial.empty()) {
          page.push_back(0x80);
          page[3] = 2;
        }
        return good(std::move(page), alloc);
      }
      if (c.cdb[2] == 0x80 && !config_.serial.empty())
        return good(s::build_unit_serial(s::kTypeOptical, config_.serial), alloc);
      return check(s::kIllegalRequest, 0x24, 0x00);
    }
    if (c.cdb[2] != 0) return check(s::kIllegalRequest, 0x24, 0x00);
    if (config_.inquiry) return good(*config_.inquiry, alloc);
    s::InquiryData q;
    q.device_type = s::kTypeOptical;
    q.removable = true;
    q.version = 0x05;
    q.response_format = 2;
    q.vendor = config_.vendor;
    q.product = config_.product;
    q.revision = revision_;
    return good(s::build_inquiry(q, 60), alloc);
  }

  if (opcode == s::kRequestSense) {
    const std::size_t alloc = std::min<std::size_t>(c.cdb[4], data_in ? c.data_in_length : 0);
    const bool desc = (c.cdb[1] & 0x01) != 0;
    auto sense = [&](std::uint8_t k, std::uint8_t a, std::uint8_t q) {
      return good(desc ? s::build_descriptor_sense(k, a, q) : s::build_fixed_sense(k, a, q), alloc);
    };
    if (unit_attention_) {
      auto ua = *unit_attention_;
      unit_attention_.reset();
      return sense(s::kUnitAttention, ua.first, ua.second);
    }
    if (config_.medium == "none") return sense(s::kNotReady, 0x3A, config_.tray_open ? 2 : 1);
    return sense(s::kNoSense, 0x00, 0x00);
  }

  // Every other command reports a pending unit attention instead of running (SAM-5 5.14).
  if (unit_attention_) {
    auto ua = *unit_attention_;
    unit_attention_.reset();
    return check(s::kUnitAttention, ua.first, ua.second);
  }

  if (opcode == s::kTestUnitReady) {
    if (config_.medium == "none") return check(s::kNotReady, 0x3A, config_.tray_open ? 0x02 : 0x01);
    return good();
  }
  if (opcode == s::kGetConfiguration) {
    const std::size_t alloc =
        std::min<std::size_t>(c.cdb[7] << 8 | c.cdb[8], data_in ? c.data_in_length : 0);
    const std::uint8_t rt = c.cdb[1] & 0x03;
    const std::uint16_t start = static_cast<std::uint16_t>(c.cdb[2] << 8 | c.cdb[3]);
    if (rt == 3) return check(s::kIllegalRequest, 0x24, 0x00);
    if (start > 0 && rt == 2)  // one feature this emulator does not have: the header alone
      return good(s::build_configuration(current_profile(), {}, 8), alloc);
    return good(s::build_configuration(current_profile(), kProfiles, 65535), alloc);
  }
  if (opcode == s::kWriteBuffer) return write_buffer(c, now);
  return check(s::kIllegalRequest, 0x20, 0x00);
}

Outcome DriveEmulator::write_buffer(const Command& c, Clock::time_point now) {
  auto w = s::parse_write_buffer_cdb(c.cdb);
  if (!w) return check(s::kIllegalRequest, 0x24, 0x00);
  bytes_received_ += c.data_out.size();
  auto refuse = [&](std::uint8_t asc, std::uint8_t ascq, const std::string& why) {
    log_write(*w, why);
    return check(s::kIllegalRequest, asc, ascq);
  };
  if (!config_.modes.count(w->mode) || w->buffer_id != 0)
    return refuse(0x24, 0x00, "mode or buffer id not supported");
  if (w->mode == s::kModeActivateDeferred) {
    if (w->length != 0 || w->offset != 0) return refuse(0x24, 0x00, "0x0F carries no data");
    if (deferred_.empty()) return refuse(0x2C, 0x00, "no deferred microcode");
    const std::string rev = deferred_;
    deferred_.clear();
    log_write(*w, "activated " + rev);
    activate(rev, now);
    return good();
  }
  const bool data_ok = c.direction == Direction::Out && c.data_out.size() == w->length;
  if (!data_ok) return refuse(0x24, 0x00, "data-out does not match the parameter list length");
  if (w->length == 0) return refuse(0x24, 0x00, "empty parameter list");
  const bool chunked = w->mode != s::kModeDownloadSave;
  if (!chunked && w->offset != 0) return refuse(0x24, 0x00, "mode 5 takes no offset");
  if (std::uint64_t{w->offset} + w->length > config_.capacity)
    return refuse(0x24, 0x00, "past the buffer capacity");
  if (chunked) {
    if (w->offset == 0) {
      buffer_.clear();
      buffer_mode_ = w->mode;
    } else if (w->offset != buffer_.size() || buffer_mode_ != w->mode) {
      buffer_.clear();
      return refuse(0x24, 0x00, "offset is not where the last chunk ended");
    }
  } else {
    buffer_.clear();
    buffer_mode_ = w->mode;
  }
  buffer_.insert(buffer_.end(), c.data_out.begin(), c.data_out.end());
  // Complete once the image's own length has arrived (chunked modes wait for more).
  if (buffer_.size() < kHeader) {
    if (chunked) {
      log_write(*w, "buffered");
      return good();
    }
  }
  const std::uint32_t declared = buffer_.size() >= kHeader ? be32(buffer_, 28) : 0;
  if (chunked && declared > buffer_.size() && declared <= config_.capacity) {
    log_write(*w, "buffered");
    return good();
  }
  auto image = parse_test_microcode(buffer_);
  const std::string product = image ? image->product : "";
  if (!image || product != config_.product) {
    ++refused_;
    buffer_.clear();
    return refuse(
        0x26, 0x00,
        image ? "image is for '" + product + "'" : "bad image: " + image.error().message());
  }
  if (w->mode == s::kModeDownloadOffsetsDefer) {
    deferred_ = image->revision;
    buffer_.clear();
    log_write(*w, "saved " + deferred_ + " (deferred)");
    return good();
  }
  log_write(*w, "activated " + image->revision);
  activate(image->revision, now);
  return good();
}

// ---- The emulator's microcode format ----

s::Bytes build_test_microcode(std::string_view product, std::string_view revision, std::size_t size,
                              std::uint32_t seed) {
  size = std::max<std::size_t>(size, 64);
  s::Bytes b(size, 0);
  std::copy(kMagic, kMagic + 8, b.begin());
  for (std::size_t i = 0; i < 16; ++i)
    b[8 + i] = i < product.size() ? static_cast<std::uint8_t>(product[i]) : ' ';
  for (std::size_t i = 0; i < 4; ++i)
    b[24 + i] = i < revision.size() ? static_cast<std::uint8_t>(revision[i]) : ' ';
  put32(b, 28, static_cast<std::uint32_t>(size));
  std::mt19937 rng(seed);
  for (std::size_t i = kHeader; i + 4 < size; ++i)
    b[i] = static_cast<std::uint8_t>(rng());
  put32(b, size - 4, crc_of(s::ByteView(b.data(), size - 4)));
  return b;
}

Result<TestMicrocode> parse_test_microcode(s::ByteView d) {
  if (d.size() < 64)
    return fail(Errc::InvalidInput, std::to_string(d.size()) + " bytes, under the 64 minimum");
  if (!std::equal(kMagic, kMagic + 8, d.begin())) return fail(Errc::InvalidInput, "no magic");
  TestMicrocode m;
  m.product = field(d, 8, 16);
  m.revision = field(d, 24, 4);
  m.length = be32(d, 28);
  if (m.length != d.size())
    return fail(Errc::InvalidInput, "length field " + std::to_string(m.length) + ", image has " +
                                        std::to_string(d.size()) + " bytes");
  if (crc_of(d.first(d.size() - 4)) != be32(d, d.size() - 4))
    return fail(Errc::InvalidInput, "CRC mismatch");
  return m;
}

// ---- In-process transport ----

Result<Response> InProcessTransport::execute(const Command& c) {
  if (gone_) return fail(Errc::Unreachable, path_ + ": the drive is gone");
  Outcome o = emulator_->handle(c, clock());
  switch (o.effect) {
    case Effect::Reply:
      return o.response;
    case Effect::Hang:
      return fail(Errc::Timeout,
                  path_ + ": no completion within " + std::to_string(c.timeout.count()) + " ms");
    case Effect::Vanish:
      gone_ = true;
      return fail(Errc::Unreachable, path_ +
                                         ": the drive closed the connection (the drive is "
                                         "gone)");
  }
  return fail(Errc::Internal, "unreachable");
}

}  // namespace labctl::optical_drive
