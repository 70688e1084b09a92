// libFuzzer target: the optical drive plugin's parsers (plugins/optical_drive/scsi.h) -- INQUIRY
// data, the unit serial number page, GET CONFIGURATION, fixed and descriptor sense, WRITE BUFFER
// CDBs -- the drive emulator's wire frames (emulator_wire.h), its microcode format and config, and
// the emulated drive itself fed a stream of commands (emulator.h).
//
// The first byte picks what the rest is. Invariants checked: nothing is read past the input (ASan),
// a failure always says why, parsed lengths stay inside the input, the emulator answers every
// command with GOOD or a CHECK CONDITION whose sense parses, and never more data than allocated.
#include <cstddef>
#include <cstdint>
#include <span>

#include <nlohmann/json.hpp>

#include "plugins/optical_drive/emulator.h"
#include "plugins/optical_drive/emulator_wire.h"
#include "plugins/optical_drive/scsi.h"

namespace od = labctl::optical_drive;
namespace s = labctl::optical_drive::scsi;

namespace {

template <typename R>
void must_explain(const R& r) {
  if (!r && r.error().message().empty()) __builtin_trap();
}

void parsers(std::span<const std::uint8_t> d) {
  auto q = s::parse_inquiry(d);
  must_explain(q);
  if (q) {
    if (q->vendor.size() > 8 || q->product.size() > 16 || q->revision.size() > 4) __builtin_trap();
    (void)s::to_json(*q).dump();
    // What build_inquiry makes of it parses back to the same identification.
    auto again = s::parse_inquiry(s::build_inquiry(*q));
    if (!again || again->vendor != q->vendor || again->product != q->product ||
        again->revision != q->revision)
      __builtin_trap();
  }
  auto serial = s::parse_unit_serial(d);
  must_explain(serial);
  if (serial && serial->size() > d.size()) __builtin_trap();
  auto c = s::parse_configuration(d);
  must_explain(c);
  if (c) {
    std::size_t total = 8;
    for (const auto& f : c->features)
      total += 4 + f.data.size();
    if (total > d.size()) __builtin_trap();
    (void)c->profiles();
    (void)s::profile_name(c->current_profile);
  }
  auto sense = s::parse_sense(d);
  must_explain(sense);
  if (sense) {
    if (sense->key > 15) __builtin_trap();
    (void)s::describe(*sense);
    (void)s::to_json(*sense).dump();
  }
  auto w = s::parse_write_buffer_cdb(d);
  must_explain(w);
  if (w) {
    if (w->mode > 0x1F || w->offset > s::kMax24 || w->length > s::kMax24) __builtin_trap();
    auto cdb = s::write_buffer_cdb(w->mode, w->buffer_id, w->offset, w->length);
    if (!cdb) __builtin_trap();
  }
}

void frames(std::span<const std::uint8_t> d) {
  auto req = od::wire::decode_request(d);
  must_explain(req);
  if (req && req->kind == od::wire::Kind::Command) {
    if (req->cdb.empty() || req->cdb.size() > 16) __builtin_trap();
    const auto again = od::wire::encode(*req);
    auto back = od::wire::decode_request(std::span(again).subspan(4));
    if (!back || back->cdb != req->cdb || back->data_out != req->data_out) __builtin_trap();
  }
  auto rep = od::wire::decode_reply(d);
  must_explain(rep);
  if (rep && rep->kind == od::wire::Kind::Command && rep->sense.size() > 255) __builtin_trap();
}

// The input as commands: [cdb length][cdb][direction][allocation u16][data-out length u16][data].
void drive(std::span<const std::uint8_t> d) {
  od::EmulatorConfig cfg;
  cfg.capacity = 4096;
  cfg.reboot = std::chrono::milliseconds(0);
  od::DriveEmulator emu(cfg);
  auto now = od::Clock::time_point{};
  std::size_t at = 0;
  for (int n = 0; n < 64 && at < d.size(); ++n) {
    const std::size_t cl = d[at++] % 17;
    if (at + cl + 5 > d.size()) break;
    std::vector<std::uint8_t> cdb(d.begin() + static_cast<long>(at),
                                  d.begin() + static_cast<long>(at + cl));
    at += cl;
    const auto dir = static_cast<od::Direction>(d[at++] % 3);
    const std::size_t alloc = static_cast<std::size_t>(d[at] << 8 | d[at + 1]);
    std::size_t out = static_cast<std::size_t>(d[at + 2] << 8 | d[at + 3]);
    at += 4;
    out = std::min(out, d.size() - at);
    std::span<const std::uint8_t> data_out(d.data() + at, dir == od::Direction::Out ? out : 0);
    if (dir == od::Direction::Out) at += out;
    od::Command c{cdb, dir, data_out, dir == od::Direction::In ? alloc : 0,
                  std::chrono::milliseconds(1000)};
    now += std::chrono::milliseconds(1);
    auto o = emu.handle(c, now);
    if (o.effect != od::Effect::Reply) __builtin_trap();  // no faults configured
    const auto& r = o.response;
    if (r.status != s::kGood && r.status != s::kCheckCondition) __builtin_trap();
    if (r.status == s::kCheckCondition && !s::parse_sense(r.sense)) __builtin_trap();
    if (r.data.size() > c.data_in_length) __builtin_trap();
  }
  (void)emu.state().dump();
}

void texts(std::span<const std::uint8_t> d) {
  must_explain(od::parse_test_microcode(d));
  const auto j = nlohmann::json::parse(d.begin(), d.end(), nullptr, false);
  if (j.is_discarded()) return;
  auto cfg = od::EmulatorConfig::from_json(j);
  must_explain(cfg);
  must_explain(od::Fault::from_json(j));
  if (cfg) {
    od::DriveEmulator emu(*cfg);
    (void)emu.control(j);
  }
  // The same text as a saved state (a state file) and as a request on a drive that has one.
  od::DriveEmulator restored(od::EmulatorConfig{}, j);
  (void)restored.control(j);
  (void)restored.state().dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::uint8_t> rest(data + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      parsers(rest);
      break;
    case 1:
      frames(rest);
      break;
    case 2:
      drive(rest);
      break;
    default:
      texts(rest);
      break;
  }
  return 0;
}
