#include "plugins/optical_drive/drive.h"

namespace labctl::optical_drive {

using nlohmann::json;
namespace s = scsi;

bool Identity::same_drive(const Identity& o) const {
  return vendor == o.vendor && product == o.product && serial == o.serial;
}

std::string Identity::describe() const {
  return vendor + " " + product + " " + revision +
         (serial.empty() ? std::string(" (no serial number page)") : " (serial " + serial + ")");
}

json Identity::to_json() const {
  return {{"vendor", vendor},          {"product", product},         {"revision", revision},
          {"serial", serial},          {"device_type", device_type}, {"path", path},
          {"inquiry_hex", inquiry_hex}};
}

Result<Identity> Identity::from_json(const json& j) {
  if (!j.is_object()) return fail(Errc::InvalidInput, "identity record: not a JSON object");
  Identity id;
  try {
    id.vendor = j.at("vendor").get<std::string>();
    id.product = j.at("product").get<std::string>();
    id.revision = j.at("revision").get<std::string>();
    id.serial = j.value("serial", std::string());
    id.device_type = j.value("device_type", std::uint8_t{0});
    id.path = j.value("path", std::string());
    id.inquiry_hex = j.value("inquiry_hex", std::string());
  } catch (const json::exception& e) {
    return fail(Errc::InvalidInput, std::string("identity record: ") + e.what());
  }
  return id;
}

std::string_view state_name(Readiness::State st) {
  switch (st) {
    case Readiness::State::Ready:
      return "ready";
    case Readiness::State::NoMedium:
      return "no-medium";
    case Readiness::State::BecomingReady:
      return "becoming-ready";
    case Readiness::State::Busy:
      return "busy";
    case Readiness::State::Other:
      break;
  }
  return "other";
}

Error status_error(std::string_view command, const Response& r) {
  const std::string what(command);
  if (r.status == s::kBusy) return Error(Errc::Timeout, what + ": the drive is BUSY");
  if (r.status != s::kCheckCondition)
    return Error(Errc::Internal, what + ": status " + s::status_name(r.status));
  if (r.sense.empty()) return Error(Errc::Internal, what + ": CHECK CONDITION without sense data");
  auto sense = s::parse_sense(r.sense);
  if (!sense)
    return Error(Errc::Internal, what + ": CHECK CONDITION with unreadable sense (" +
                                     sense.error().message() + ")");
  const std::string msg = what + ": " + s::describe(*sense);
  switch (sense->key) {
    case s::kNotReady:
      if (sense->asc == 0x3A) return Error(Errc::PreconditionFailed, msg);
      return Error(sense->asc == 0x04 ? Errc::Timeout : Errc::PreconditionFailed, msg);
    case s::kIllegalRequest:
      return Error(sense->asc == 0x20 ? Errc::NotSupported : Errc::PreconditionFailed, msg);
    case s::kUnitAttention:
      return Error(Errc::Unreachable, msg);
    case s::kAbortedCommand:
      return Error(Errc::Timeout, msg);
    default:
      return Error(Errc::Internal, msg);
  }
}

Result<Response> Drive::run(const Command& c, std::string_view what) {
  for (int attempt = 0;; ++attempt) {
    auto r = t_.execute(c);
    if (!r) return fail(std::move(r.error()).context(what));
    if (r->status != s::kCheckCondition || attempt >= 4) return r;
    auto sense = s::parse_sense(r->sense);
    if (!sense || sense->key != s::kUnitAttention) return r;
    // The command did not run; the condition is cleared by reporting it (SAM-5).
    notes_.push_back(s::describe(*sense));
  }
}

Result<s::InquiryData> Drive::inquiry(std::string* raw_hex) {
  const auto cdb = s::inquiry_cdb(96);
  auto r = run({cdb, Direction::In, {}, 96, timeout_}, "INQUIRY");
  if (!r) return fail(r.error());
  if (r->status != s::kGood) return fail(status_error("INQUIRY", *r));
  if (raw_hex) *raw_hex = s::hex(r->data);
  auto q = s::parse_inquiry(r->data);
  if (!q) return fail(std::move(q.error()).context(t_.path()));
  return q;
}

Result<std::string> Drive::serial() {
  const auto cdb = s::inquiry_cdb(252, true, 0x80);
  auto r = run({cdb, Direction::In, {}, 252, timeout_}, "INQUIRY (unit serial number)");
  if (!r) return fail(r.error());
  if (r->status == s::kCheckCondition) {
    auto sense = s::parse_sense(r->sense);
    // Many MMC drives have no VPD pages at all.
    if (sense && sense->key == s::kIllegalRequest) return std::string();
  }
  if (r->status != s::kGood) return fail(status_error("INQUIRY (unit serial number)", *r));
  auto serial = s::parse_unit_serial(r->data);
  if (!serial) return fail(std::move(serial.error()).context(t_.path()));
  return serial;
}

Result<Identity> Drive::identify() {
  Identity id;
  id.path = t_.path();
  auto q = inquiry(&id.inquiry_hex);
  if (!q) return fail(q.error());
  auto serial = this->serial();
  if (!serial) return fail(serial.error());
  id.vendor = q->vendor;
  id.product = q->product;
  id.revision = q->revision;
  id.device_type = q->device_type;
  id.serial = *serial;
  return id;
}

Result<Readiness> Drive::test_unit_ready() {
  const auto cdb = s::test_unit_ready_cdb();
  auto r = run({cdb, Direction::None, {}, 0, timeout_}, "TEST UNIT READY");
  if (!r) return fail(r.error());
  Readiness out;
  if (r->status == s::kGood) {
    out.state = Readiness::State::Ready;
    out.text = "ready (a disc is loaded)";
    return out;
  }
  if (r->status != s::kCheckCondition) return fail(status_error("TEST UNIT READY", *r));
  auto sense = s::parse_sense(r->sense);
  if (!sense) return fail(status_error("TEST UNIT READY", *r));
  out.sense = *sense;
  out.text = s::describe(*sense);
  if (sense->key == s::kNotReady && sense->asc == 0x3A) {
    out.state = Readiness::State::NoMedium;
    out.tray_open = sense->ascq == 0x02;
    out.text = sense->ascq == 0x02   ? "no disc (tray open)"
               : sense->ascq == 0x01 ? "no disc (tray closed)"
                                     : "no disc";
  } else if (sense->key == s::kNotReady && sense->asc == 0x04) {
    out.state = sense->ascq == 0x01 ? Readiness::State::BecomingReady : Readiness::State::Busy;
  } else if (sense->key == s::kUnitAttention) {
    // Still attentions after the retries: say so and let the caller ask again.
    out.state = Readiness::State::Busy;
  }
  return out;
}

Result<s::Configuration> Drive::configuration() {
  const auto cdb = s::get_configuration_cdb(1, 0, 512);
  auto r = run({cdb, Direction::In, {}, 512, timeout_}, "GET CONFIGURATION");
  if (!r) return fail(r.error());
  if (r->status != s::kGood) return fail(status_error("GET CONFIGURATION", *r));
  auto c = s::parse_configuration(r->data);
  if (!c) return fail(std::move(c.error()).context(t_.path()));
  return c;
}

Status Drive::write_buffer(std::uint8_t mode, std::uint32_t offset,
                           std::span<const std::uint8_t> data, std::chrono::milliseconds timeout) {
  auto cdb = s::write_buffer_cdb(mode, 0, offset, static_cast<std::uint32_t>(data.size()));
  if (!cdb) return fail(cdb.error());
  if (data.size() > s::kMax24)
    return fail(Errc::InvalidInput, "WRITE BUFFER: " + std::to_string(data.size()) +
                                        " bytes in one command, over 16 MiB - 1");
  const std::string what = "WRITE BUFFER mode 0x" +
                           [&] {
                             char b[4];
                             std::snprintf(b, sizeof b, "%02X", mode);
                             return std::string(b);
                           }() +
                           " at offset " + std::to_string(offset) + " (" +
                           std::to_string(data.size()) + " bytes)";
  // No retry on a unit attention here: the caller decides whether to send microcode again.
  auto r = t_.execute({*cdb, data.empty() ? Direction::None : Direction::Out, data, 0, timeout});
  if (!r) return fail(std::move(r.error()).context(what));
  if (r->status != s::kGood) return fail(status_error(what, *r));
  return {};
}

}  // namespace labctl::optical_drive
