#include "plugins/optical_drive/plugin.h"

#include <fstream>
#include <set>

#include "common/text.h"
#include "inventory/upgrade_path.h"
#include "plugins/optical_drive/flash.h"
#include "plugins/optical_drive/scsi.h"
#include "plugins/sim/sim_state.h"

namespace labctl::optical_drive {

using sdk::json;
using Ms = std::chrono::milliseconds;
namespace key = inventory::key;

namespace {

// What the inventory says about how to reach a drive.
struct Settings {
  std::string path;
  Ms command{10'000}, write{120'000}, reboot{120'000}, poll{500};
  std::string serial;
};

Settings settings_of(const sdk::Device& d) {
  Settings s;
  s.path = d.params.value("device", std::string());
  s.command = Ms(d.params.value("command-timeout", std::int64_t{10'000}));
  s.write = Ms(d.params.value("write-timeout", std::int64_t{120'000}));
  s.reboot = Ms(d.params.value("reboot-timeout", std::int64_t{120'000}));
  s.poll = Ms(d.params.value("poll-interval", std::int64_t{500}));
  s.serial = d.params.value("serial", std::string());
  return s;
}

Result<std::unique_ptr<Transport>> open_drive(const sdk::Device& d) {
  const std::string path = d.params.value("device", std::string());
  auto t = open_transport(path);
  if (!t) return fail(std::move(t.error()).context(d.name));
  return t;
}

bool consent_of(const sdk::Device& d) {
  return d.params.value("accept-brick-risk", false);
}

// The catalog family of a drive: the inventory's model, else a model of the catalog that the
// INQUIRY product string names ("BD-MLT UJ240AS" -> UJ240AS), for drives outside an inventory.
const inventory::Family* family_for(const inventory::Catalog* cat, const sdk::Device& d,
                                    const std::string& product, const std::string& name = "") {
  if (!cat) return nullptr;
  if (!name.empty()) return cat->family(name);
  if (!d.model.empty()) return cat->family_for_model(d.model);
  for (const auto& word : text::split(product, ' '))
    if (!word.empty())
      if (const auto* f = cat->family_for_model(word)) return f;
  return nullptr;
}

// The model the drive must be: the inventory's, else the catalog model its product names.
std::string expected_model(const inventory::Family* fam, const sdk::Device& d,
                           const std::string& product) {
  if (!d.model.empty()) return d.model;
  if (fam)
    for (const auto& m : fam->models)
      if (text::lower(product).find(text::lower(m)) != std::string::npos) return m;
  return "";
}

bool product_matches(const std::string& model, const std::string& product) {
  return model.empty() || text::lower(product).find(text::lower(model)) != std::string::npos;
}

bool same_revision(const inventory::Family* fam, const std::string& a, const std::string& b) {
  if (fam) {
    auto va = inventory::parse_version(fam->scheme, a);
    auto vb = inventory::parse_version(fam->scheme, b);
    if (va && vb) return inventory::same_version(*va, *vb);
  }
  return text::trim(a) == text::trim(b);
}

std::string vendor_wanted(const inventory::Family* fam) {
  return fam && fam->quirks.is_object() ? fam->quirks.value("inquiry-vendor", std::string()) : "";
}

// Why `id` is not the drive the device entry describes; "" when it is.
std::string identity_problem(const Identity& id, const inventory::Family* fam, const sdk::Device& d,
                             const Settings& s) {
  if (id.device_type != scsi::kTypeOptical)
    return id.path + " is a " + scsi::device_type_name(id.device_type) +
           " (peripheral device type " + std::to_string(id.device_type) +
           "), not an optical drive (type 5)";
  const std::string vendor = vendor_wanted(fam);
  if (!vendor.empty() && !text::iequals(id.vendor, vendor))
    return "INQUIRY vendor is '" + id.vendor + "', the catalog's " + fam->name + " drives say '" +
           vendor + "'";
  const std::string model = expected_model(fam, d, id.product);
  if (!product_matches(model, id.product))
    return "INQUIRY product is '" + id.product + "', not a " + model;
  if (!s.serial.empty() && id.serial != s.serial)
    return "serial number is '" + id.serial + "', the inventory says '" + s.serial + "'";
  return "";
}

std::filesystem::path identity_file(sdk::DeviceContext& ctx, const sdk::Device& d) {
  std::string name = d.name;
  for (auto& c : name)
    if (c == '/') c = '_';
  return ctx.plugin_state_dir() / (name + ".identity.json");
}

json readiness_json(const Readiness& r) {
  json j = {{"state", state_name(r.state)}, {"text", r.text}, {"tray_open", r.tray_open}};
  if (r.sense) j["sense"] = scsi::to_json(*r.sense);
  return j;
}

// What the drive says about itself, for probe and identify.
struct Report {
  Identity id;
  Readiness ready;
  std::optional<scsi::Configuration> config;
  std::string config_error;
  std::vector<std::string> notes;
};

Result<Report> read_drive(const sdk::Device& d, const Settings& s) {
  auto t = open_drive(d);
  if (!t) return fail(t.error());
  Drive drive(**t, s.command);
  Report r;
  auto id = drive.identify();
  if (!id) return fail(std::move(id.error()).context(d.name));
  r.id = *id;
  auto ready = drive.test_unit_ready();
  if (!ready) return fail(std::move(ready.error()).context(d.name));
  r.ready = *ready;
  if (auto c = drive.configuration())
    r.config = *c;
  else
    r.config_error = c.error().message();
  r.notes = drive.notes();
  return r;
}

// A drive read for a verb: its settings, what it said, and its catalog family.
struct Seen {
  Settings settings;
  Report report;
  const inventory::Family* family = nullptr;
};

Result<Seen> look(sdk::DeviceContext& ctx, const sdk::Device& d) {
  Seen seen;
  seen.settings = settings_of(d);
  auto r = read_drive(d, seen.settings);
  if (!r) return fail(r.error());
  seen.report = std::move(*r);
  seen.family = family_for(ctx.catalog(), d, seen.report.id.product);
  return seen;
}

json profile_json(const Report& r) {
  if (!r.config) return {{"error", r.config_error}};
  return {{"current", r.config->current_profile},
          {"name", scsi::profile_name(r.config->current_profile)},
          {"class", std::string(scsi::profile_class(r.config->current_profile))}};
}

sdk::Step make_step(const std::string& action, const std::string& to, std::string title,
                    std::string reason, bool writes, int weight, const json& args) {
  sdk::Step s;
  s.key = action + "@" + to;
  s.action = action;
  s.title = std::move(title);
  s.reason = std::move(reason);
  s.writes = writes;
  s.weight = weight;
  s.args = args;
  return s;
}

// The six steps of one hop. `args` carries what every step needs (family, from, to, mode, ...).
std::vector<sdk::Step> hop_sequence(const sdk::HopInfo& hop, const json& args,
                                    const FlashOptions& o, const ImageSpec& spec,
                                    const Settings& s) {
  const std::string to = hop.to.text, from = hop.from.text;
  const std::string of =
      " (hop " + std::to_string(hop.index) + "/" + std::to_string(hop.count) + ")";
  std::vector<sdk::Step> out;
  out.push_back(make_step("verify-image", to,
                          "verify the " + to + " image (" + spec.file +
                              (spec.extract ? ", extracted" : "") + ": sha256, size, format)" + of,
                          "", false, 1, args));
  out.push_back(make_step("identify", to, "identify the drive (expect revision " + from + ")" + of,
                          "", false, 1, args));
  out.push_back(
      make_step("check-idle", to, "check the drive is idle with no disc" + of, "", false, 1, args));
  out.push_back(make_step("write", to,
                          "write firmware " + to + " (WRITE BUFFER mode " +
                              (o.mode == scsi::kModeDownloadOffsetsDefer ? std::string("0x0E")
                                                                         : std::to_string(o.mode)) +
                              ")" + of,
                          hop.reason, true, 10, args));
  out.push_back(make_step("wait-online", to,
                          (o.activate ? std::string("wait for the drive to come back")
                                      : "wait for a power cycle to activate " + to) +
                              of,
                          "", false, 3, args));
  out.back().timeout = s.reboot + Ms(30'000);
  out.push_back(make_step("verify", to, "verify firmware " + to + " (INQUIRY revision)" + of, "",
                          false, 1, args));
  for (auto& st : out) {
    st.hop = hop.index;
    st.hops = hop.count;
  }
  return out;
}

std::string consent_message(const sdk::Device& d) {
  return "flashing a drive can brick it: give --accept-brick-risk (labctl drive " + d.name +
         " flash FILE --accept-brick-risk) or set 'accept-brick-risk: true' on " + d.name +
         " in the inventory";
}

// The family, release and versions a step works on.
struct StepTarget {
  const inventory::Family* family = nullptr;
  const inventory::Release* release = nullptr;
  std::string from, to;
};

Result<StepTarget> step_target(sdk::DeviceContext& ctx, const sdk::Device& d, const sdk::Step& st) {
  StepTarget t;
  t.from = st.args.value("from", std::string());
  t.to = st.args.value("to", std::string());
  const inventory::Catalog* cat = ctx.catalog();
  if (!cat) return fail(Errc::PreconditionFailed, d.name + ": no firmware catalog");
  const std::string fam = st.args.value("family", std::string());
  t.family = fam.empty() ? cat->family_for_model(d.model) : cat->family(fam);
  if (!t.family)
    return fail(Errc::PreconditionFailed,
                d.name + ": no catalog family for " + (fam.empty() ? d.model : fam));
  t.release = t.family->find(t.to);
  if (!t.release)
    return fail(Errc::PreconditionFailed,
                d.name + ": the catalog has no release " + t.to + " of " + t.family->name);
  return t;
}

// The image of a release, read from the firmware store and checked.
Result<std::vector<std::uint8_t>> verified_image(sdk::DeviceContext& ctx, const StepTarget& t,
                                                 ImageSpec* spec_out = nullptr) {
  const std::string file = ctx.catalog() ? ctx.catalog()->file : std::string("catalog");
  auto spec = image_spec(*t.release, file);
  if (!spec) return fail(spec.error());
  auto files = ctx.firmware_images(*t.family, *t.release);
  if (!files) return fail(std::move(files.error()).context("firmware " + t.to));
  auto img = load_image(*spec, *files);
  if (!img) return fail(std::move(img.error()).context("firmware " + t.to));
  if (spec_out) *spec_out = *spec;
  return img;
}

// The identify and audit verbs, from what the drive said.
Result<sdk::VerbResult> identify_report(const sdk::Device& d, const Seen& seen);
Result<sdk::VerbResult> audit_report(sdk::DeviceContext& ctx, const sdk::Device& d,
                                     const Seen& seen);

}  // namespace

OpticalDrivePlugin::OpticalDrivePlugin() {
  schema_.type = "optical-drive";
  schema_.summary = "CD/DVD/BD drive (Panasonic UJ240AS) through SCSI pass-through";
  schema_.capabilities = {"firmware"};
  schema_.model_required = true;
  schema_.keys.push_back(key::string("device").req().range(1, 4096).describe(
      "/dev/sgN, /dev/srN or a stable link to one (/dev/disk/by-id/...); "
      "emulator:/path/to/socket for the drive emulator (the test double)"));
  schema_.keys.push_back(key::boolean("accept-brick-risk")
                             .defaults(false)
                             .describe("consent to flash this drive: a failed flash can brick it"));
  schema_.keys.push_back(key::string("serial").range(1, 64).describe(
      "the drive's unit serial number; identify refuses a drive with another one"));
  schema_.keys.push_back(key::duration("command-timeout")
                             .defaults(std::int64_t{10'000})
                             .describe("limit for one SCSI command other than a download"));
  schema_.keys.push_back(key::duration("write-timeout")
                             .defaults(std::int64_t{120'000})
                             .describe("limit for one WRITE BUFFER command"));
  schema_.keys.push_back(key::duration("reboot-timeout")
                             .defaults(std::int64_t{120'000})
                             .describe("how long the drive may take to come back after a flash"));
  schema_.keys.push_back(key::duration("poll-interval")
                             .defaults(std::int64_t{500})
                             .describe("how often to ask a rebooting drive whether it is back"));
}

void OpticalDrivePlugin::check_device(const sdk::Device& d, const sdk::Inventory&,
                                      inventory::DeviceReport& report) const {
  const std::string path = d.params.value("device", std::string());
  if (path.starts_with(kEmulatorPrefix)) {
    if (path.size() == kEmulatorPrefix.size() || path[kEmulatorPrefix.size()] != '/')
      report.error("/device", "'" + path +
                                  "': the emulator's socket must be an absolute path "
                                  "(emulator:/path/to/socket)");
  } else if (!path.starts_with("/dev/")) {
    report.error("/device", "'" + path +
                                "' is not a device node: /dev/sgN, /dev/srN, "
                                "/dev/disk/by-id/..., or emulator:/path/to/socket");
  }
  if (d.params.value("poll-interval", std::int64_t{500}) <= 0)
    report.error("/poll-interval", "must be more than 0");
}

Result<std::vector<sdk::Step>> OpticalDrivePlugin::hop_steps(const sdk::Device& d,
                                                             const sdk::HopInfo& hop) const {
  if (!consent_of(d)) return fail(Errc::PreconditionFailed, consent_message(d));
  if (!hop.release)
    return fail(Errc::Internal, d.name + ": hop to " + hop.to.text + " without a release");
  auto opts = flash_options(*hop.release, "catalog");
  if (!opts) return fail(opts.error());
  auto spec = image_spec(*hop.release, "catalog");
  if (!spec) return fail(spec.error());
  json args = {{"from", hop.from.text},
               {"to", hop.to.text},
               {"device", d.params.value("device", std::string())},
               {"mode", opts->mode},
               {"chunk", opts->chunk},
               {"activate", opts->activate},
               {"image", spec->file},
               {kConsentArg, true}};
  return hop_sequence(hop, args, *opts, *spec, settings_of(d));
}

Result<sdk::Observation> OpticalDrivePlugin::probe(sdk::DeviceContext& ctx, const sdk::Device& d) {
  const Settings s = settings_of(d);
  auto r = read_drive(d, s);
  if (!r) return fail(r.error());
  const auto* fam = family_for(ctx.catalog(), d, r->id.product);
  sdk::Observation o;
  o.model = d.model.empty() ? expected_model(fam, d, r->id.product) : d.model;
  if (o.model.empty()) o.model = r->id.product;
  o.serial = r->id.serial;
  o.version = r->id.revision;
  o.facts = {{"vendor", r->id.vendor},           {"product", r->id.product},
             {"revision", r->id.revision},       {"device", s.path},
             {"device_type", r->id.device_type}, {"profile", profile_json(*r)},
             {"family", fam ? fam->name : ""}};
  o.health = {{"readiness", readiness_json(r->ready)}, {"unit_attentions", r->notes}};
  if (auto why = identity_problem(r->id, fam, d, s); !why.empty())
    o.findings.push_back(
        {"critical", "wrong-device", s.path + " answers as " + r->id.describe() + ": " + why});
  if (r->ready.state == Readiness::State::Ready && !d.firmware.target.empty() &&
      !same_revision(fam, r->id.revision, d.firmware.target))
    o.findings.push_back({"info", "disc-loaded",
                          "a disc is in the drive (" + profile_json(*r).value("name", "") +
                              "): a flash waits until it is ejected"});
  return o;
}

Result<bool> OpticalDrivePlugin::step_done(sdk::DeviceContext& ctx, const sdk::Device& d,
                                           const sdk::Step& st) {
  static const std::set<std::string> actions = {"verify-image", "identify",    "check-idle",
                                                "write",        "wait-online", "verify"};
  if (!actions.count(st.action))
    return fail(Errc::NotSupported, d.name + ": no executor for step '" + st.action + "'");
  auto t = step_target(ctx, d, st);
  if (!t) return fail(t.error());
  auto tr = open_drive(d);
  if (!tr) return fail(tr.error());
  Drive drive(**tr, settings_of(d).command);
  auto id = drive.identify();
  if (!id) return fail(id.error());
  // The hop is behind this drive once it runs the hop's version, as the same drive as identified.
  if (!same_revision(t->family, id->revision, t->to)) return false;
  if (auto rec = sim::load_state(identity_file(ctx, d)); rec && !rec->empty()) {
    auto before = Identity::from_json(*rec);
    if (before && !before->same_drive(*id)) return false;
  }
  return true;
}

Status OpticalDrivePlugin::run_step(sdk::DeviceContext& ctx, const sdk::Device& d,
                                    const sdk::Step& st) {
  const Settings s = settings_of(d);
  auto t = step_target(ctx, d, st);
  if (!t) return fail(t.error());
  const std::string to = t->to, from = t->from;
  const auto record = identity_file(ctx, d);

  if (st.action == "verify-image") {
    ImageSpec spec;
    auto img = verified_image(ctx, *t, &spec);
    if (!img) return fail(img.error());
    ctx.log("image " + to + ": " + std::to_string(img->size()) + " bytes, sha256 " +
            sha256_hex(*img) + (spec.extract ? " (extracted from " + spec.file + ")" : ""));
    return {};
  }

  if (st.action == "wait-online") {
    // Until the drive answers TEST UNIT READY with something other than "becoming ready": it may
    // vanish (re-enumerate), answer NOT READY for a while, then report its unit attentions. With
    // deferred activation (0x0E without 0x0F) only a power cycle activates the new microcode:
    // then wait for the drive to report the new revision.
    const bool power_cycle = !st.args.value("activate", true);
    if (power_cycle)
      ctx.log("power-cycle the drive now (shut the PC down and start it again): it activates " +
              to + " at power-on");
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + s.reboot;
    std::string last = "no answer yet";
    for (int round = 0; round < 100'000; ++round) {
      if (auto tr = open_drive(d)) {
        Drive drive(**tr, s.command);
        auto ready = drive.test_unit_ready();
        for (const auto& n : drive.notes())
          ctx.log("the drive reports " + n);
        if (ready && power_cycle &&
            (ready->state == Readiness::State::Ready ||
             ready->state == Readiness::State::NoMedium)) {
          auto q = drive.inquiry();
          if (!q || !same_revision(t->family, q->revision, to)) {
            last = q ? "still runs " + q->revision + ", waiting for a power cycle"
                     : q.error().message();
            ready = fail(Errc::Timeout, last);
          }
        }
        if (ready && (ready->state == Readiness::State::Ready ||
                      ready->state == Readiness::State::NoMedium)) {
          ctx.log("the drive is back after " +
                  std::to_string(
                      std::chrono::duration_cast<Ms>(std::chrono::steady_clock::now() - start)
                          .count()) +
                  " ms (" + ready->text + ")");
          return {};
        }
        last = ready ? ready->text : ready.error().message();
        if (ready && ready->sense && ready->sense->progress)
          ctx.progress(*ready->sense->progress, 65536, "drive restarting");
      } else {
        last = tr.error().message();
      }
      if (std::chrono::steady_clock::now() + s.poll > deadline) break;
      if (!ctx.sleep_for(s.poll)) return fail(Errc::Cancelled, "wait for the drive cancelled");
    }
    return fail(Errc::Timeout, d.name + ": the drive did not come back within " +
                                   std::to_string(s.reboot.count()) + " ms (last: " + last + ")");
  }

  auto tr = open_drive(d);
  if (!tr) return fail(tr.error());
  Drive drive(**tr, s.command);
  auto id = drive.identify();
  if (!id) return fail(std::move(id.error()).context(d.name));

  if (st.action == "identify") {
    if (auto why = identity_problem(*id, t->family, d, s); !why.empty())
      return fail(Errc::PreconditionFailed, d.name + ": " + why + "; refusing to flash it");
    if (!same_revision(t->family, id->revision, from))
      return fail(Errc::PreconditionFailed, d.name + ": the drive runs " + id->revision +
                                                ", this hop is from " + from + " to " + to +
                                                " (plan again: labctl plan)");
    if (auto saved = sim::save_state(record, id->to_json()); !saved)
      return fail(std::move(saved.error()).context(d.name + ": identity record"));
    ctx.log("identified " + id->describe() + " at " + id->path);
    return {};
  }

  if (st.action == "check-idle" || st.action == "write") {
    // The drive must be the one identified (same vendor, product and serial, on this path), still
    // at the hop's `from`, idle, and without a disc.
    auto rec = sim::load_state(record);
    if (!rec) return fail(std::move(rec.error()).context(d.name + ": identity record"));
    if (rec->empty())
      return fail(Errc::PreconditionFailed,
                  d.name + ": no identity record: the identify step has to run first");
    auto before = Identity::from_json(*rec);
    if (!before) return fail(std::move(before.error()).context(d.name));
    if (!before->same_drive(*id) || before->path != id->path)
      return fail(Errc::PreconditionFailed, d.name + ": " + id->path + " now answers as " +
                                                id->describe() + ", but identify saw " +
                                                before->describe() + " at " + before->path +
                                                "; refusing to write to a different device");
    if (!same_revision(t->family, id->revision, from))
      return fail(Errc::PreconditionFailed,
                  d.name + ": the drive runs " + id->revision + ", this hop is from " + from);
    auto ready = drive.test_unit_ready();
    if (!ready) return fail(std::move(ready.error()).context(d.name));
    if (ready->state == Readiness::State::Ready)
      return fail(
          Errc::PreconditionFailed,
          d.name + ": a disc is in the drive; eject it before flashing (" + ready->text + ")");
    if (ready->state != Readiness::State::NoMedium)
      return fail(Errc::Timeout, d.name + ": the drive is not idle: " + ready->text);
    auto config = drive.configuration();
    if (!config) return fail(std::move(config.error()).context(d.name));
    if (config->current_profile != 0)
      return fail(Errc::PreconditionFailed, d.name + ": the drive reports a current profile (" +
                                                scsi::profile_name(config->current_profile) +
                                                "): a disc is loaded");
    if (st.action == "check-idle") {
      ctx.log("idle: " + ready->text);
      return {};
    }
    // write
    const bool consent = consent_of(d) || st.args.value(kConsentArg, false);
    if (!consent) return fail(Errc::PreconditionFailed, consent_message(d));
    auto opts = flash_options(*t->release, ctx.catalog()->file);
    if (!opts) return fail(opts.error());
    auto img = verified_image(ctx, *t);
    if (!img) return fail(img.error());
    ctx.log("writing " + to + " (" + std::to_string(img->size()) + " bytes, WRITE BUFFER mode " +
            mode_name(opts->mode) + ") to " + id->describe());
    WriteHooks hooks;
    hooks.progress = [&](std::uint64_t done, std::uint64_t total) {
      ctx.progress(done, total, "WRITE BUFFER");
    };
    hooks.cancelled = [&] { return ctx.cancelled(); };
    if (auto w = write_image(drive, *opts, *img, s.write, hooks); !w)
      return fail(std::move(w.error()).context(
          d.name + ": firmware " + to + " not written (the drive keeps " + from +
          " unless it took the image before failing; the next step "
          "checks)"));
    ctx.log("the drive accepted the image");
    return {};
  }

  if (st.action == "verify") {
    if (auto why = identity_problem(*id, t->family, d, s); !why.empty())
      return fail(Errc::VerifyMismatch, d.name + ": after the flash, " + why);
    if (auto rec = sim::load_state(record); rec && !rec->empty())
      if (auto before = Identity::from_json(*rec); before && !before->same_drive(*id))
        return fail(Errc::VerifyMismatch, d.name + ": after the flash the drive answers as " +
                                              id->describe() + ", before it was " +
                                              before->describe());
    if (!same_revision(t->family, id->revision, to))
      return fail(Errc::VerifyMismatch, d.name + ": INQUIRY reports revision " + id->revision +
                                            " after the flash, expected " + to +
                                            ": the drive did not take the new firmware");
    ctx.log("verified: " + id->describe());
    return {};
  }
  return fail(Errc::NotSupported, d.name + ": no executor for step '" + st.action + "'");
}

std::vector<sdk::VerbSpec> OpticalDrivePlugin::verbs() const {
  return {
      {"identify",
       "INQUIRY (vendor, product, revision), serial, disc and tray state, current profile",
       {},
       false},
      {"audit",
       "model, firmware revision, drift against the inventory's target, the planned path",
       {},
       false},
      {"flash",
       "write FILE (a verified catalog image from the store) with --accept-brick-risk",
       {{"file", "the image or vendor updater, as imported into the store", true, {}}},
       true},
  };
}

Result<sdk::VerbResult> OpticalDrivePlugin::run_verb(sdk::DeviceContext& ctx, const sdk::Device& d,
                                                     const std::string& verb, const json& args) {
  if (verb == "identify" || verb == "audit") {
    auto seen = look(ctx, d);
    if (!seen) return fail(seen.error());
    return verb == "identify" ? identify_report(d, *seen) : audit_report(ctx, d, *seen);
  }
  if (verb == "flash") return flash_verb(ctx, d, args);
  return Plugin::run_verb(ctx, d, verb, args);
}

namespace {

Result<sdk::VerbResult> identify_report(const sdk::Device& d, const Seen& seen) {
  const Settings& s = seen.settings;
  const Report* r = &seen.report;
  const auto* fam = seen.family;
  sdk::VerbResult out;
  out.data = r->id.to_json();
  out.data["device_type_name"] = scsi::device_type_name(r->id.device_type);
  out.data["readiness"] = readiness_json(r->ready);
  out.data["profile"] = profile_json(*r);
  out.data["unit_attentions"] = r->notes;
  out.data["family"] = fam ? fam->name : "";
  const std::string why = identity_problem(r->id, fam, d, s);
  out.data["problem"] = why;
  out.text = d.name + ": " + r->id.describe() + "\n" + "  device   " + s.path + " (" +
             scsi::device_type_name(r->id.device_type) + ")\n" + "  state    " + r->ready.text +
             "\n" + "  profile  " +
             (r->config ? scsi::profile_name(r->config->current_profile) + " (" +
                              std::string(scsi::profile_class(r->config->current_profile)) + ")"
                        : "unknown: " + r->config_error) +
             "\n";
  if (fam) out.text += "  catalog  " + fam->name + "\n";
  for (const auto& n : r->notes)
    out.text += "  noted    " + n + "\n";
  if (!why.empty()) out.text += "  PROBLEM  " + why + "\n";
  return out;
}

Result<sdk::VerbResult> audit_report(sdk::DeviceContext& ctx, const sdk::Device& d,
                                     const Seen& seen) {
  const Settings& s = seen.settings;
  const Report* r = &seen.report;
  const auto* fam = seen.family;
  sdk::VerbResult out;
  json j = {{"device", d.name},
            {"path", s.path},
            {"vendor", r->id.vendor},
            {"product", r->id.product},
            {"model", expected_model(fam, d, r->id.product)},
            {"installed", r->id.revision},
            {"serial", r->id.serial},
            {"family", fam ? fam->name : ""},
            {"target", d.firmware.target},
            {"consent", consent_of(d)},
            {"readiness", readiness_json(r->ready)},
            {"problem", identity_problem(r->id, fam, d, s)}};
  out.text = d.name + ": " + r->id.describe() + "\n";
  if (!j["problem"].get<std::string>().empty())
    out.text += "  PROBLEM  " + j["problem"].get<std::string>() + "\n";
  if (!fam) {
    j["drift"] = nullptr;
    j["path_error"] = "no catalog family for '" + r->id.product + "'";
    out.text += "  catalog  no family names this drive: no target, no path\n";
    out.data = j;
    return out;
  }
  // The target: the inventory's, else the newest release of the family (what the catalog knows).
  std::string target = d.firmware.target;
  if (target.empty() && !fam->releases.empty()) target = fam->releases.back().version.text;
  j["target"] = target;
  j["target_source"] = d.firmware.target.empty() ? "catalog (newest release)" : "inventory";
  const bool drift = !same_revision(fam, r->id.revision, target);
  j["drift"] = drift;
  out.text += "  firmware " + r->id.revision + ", target " + target + " (" +
              j["target_source"].get<std::string>() + ")" + (drift ? ": DRIFT" : ": up to date") +
              "\n";
  json hops = json::array();
  auto installed = inventory::parse_version(fam->scheme, r->id.revision);
  auto want = inventory::parse_version(fam->scheme, target);
  if (!installed || !want) {
    j["path_error"] = (!installed ? installed.error() : want.error()).message();
    out.text += "  path     " + j["path_error"].get<std::string>() + "\n";
  } else {
    inventory::DeviceState state{*installed, {}};
    auto path = inventory::find_upgrade_path(*fam, state, *want,
                                             {.allow_downgrade = d.firmware.allow_downgrade});
    if (!path) {
      j["path_error"] = path.error().message();
      out.text += "  path     none: " + path.error().message() + "\n";
    } else {
      int i = 0;
      for (const auto& hop : *path) {
        ++i;
        json h = {{"from", hop.from.text}, {"to", hop.to.text}, {"reason", hop.reason}};
        std::string ready = "image ready";
        if (auto spec = image_spec(*hop.release, ctx.catalog()->file); !spec) {
          ready = spec.error().message();
        } else if (auto opts = flash_options(*hop.release, ctx.catalog()->file); !opts) {
          ready = opts.error().message();
        } else {
          h["mode"] = opts->mode;
          h["image"] = spec->file;
          auto files = ctx.firmware_images(*fam, *hop.release);
          if (!files) {
            ready = files.error().message();
          } else if (auto img = load_image(*spec, *files); !img) {
            ready = img.error().message();
          } else {
            h["image_sha256"] = sha256_hex(*img);
            h["image_size"] = img->size();
          }
        }
        h["installable"] = ready == "image ready";
        h["status"] = ready;
        hops.push_back(h);
        out.text += "  hop " + std::to_string(i) + "/" + std::to_string(path->size()) + "  " +
                    hop.from.text + " -> " + hop.to.text + ": " + hop.reason + "\n           " +
                    ready + "\n";
      }
      if (path->empty()) out.text += "  path     nothing to do\n";
    }
  }
  j["hops"] = hops;
  if (drift && !consent_of(d))
    out.text += "  consent  not given: apply will not flash it (accept-brick-risk)\n";
  out.data = j;
  return out;
}

}  // namespace

Result<sdk::VerbResult> OpticalDrivePlugin::flash_verb(sdk::DeviceContext& ctx,
                                                       const sdk::Device& d, const json& args) {
  const std::string file = args.value("file", std::string());
  const bool consent = consent_of(d) || args.value(kConsentArg, false);
  if (!consent) return fail(Errc::PreconditionFailed, consent_message(d) + "; nothing was sent");
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(Errc::NotFound, file + ": cannot read it");
  std::vector<std::uint8_t> bytes;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    bytes.insert(bytes.end(), buf, buf + in.gcount());
    if (bytes.size() > (64u << 20))
      return fail(Errc::InvalidInput, file + ": over 64 MiB, not drive firmware");
  }
  const std::string sha = sha256_hex(bytes);
  const Settings s = settings_of(d);
  // Who the drive is and what it runs decide the family and the hop.
  Identity id;
  {
    auto tr = open_drive(d);
    if (!tr) return fail(tr.error());
    Drive drive(**tr, s.command);
    auto got = drive.identify();
    if (!got) return fail(std::move(got.error()).context(d.name));
    id = *got;
  }
  const auto* fam = family_for(ctx.catalog(), d, id.product);
  if (!fam)
    return fail(Errc::PreconditionFailed,
                d.name + ": no catalog family for " + (d.model.empty() ? id.product : d.model) +
                    ": labctl only writes images the catalog describes; nothing was sent");
  // FILE must be a file of a release of this family, byte for byte as the store pinned it.
  const inventory::Release* rel = nullptr;
  std::vector<std::string> looked;
  for (const auto& r : fam->releases) {
    if (r.files.empty()) continue;
    auto files = ctx.firmware_images(*fam, r);
    if (!files) {
      looked.push_back(r.version.text + ": " + files.error().message());
      continue;
    }
    for (const auto& f : *files)
      if (f.sha256 == sha) rel = &r;
    if (rel) break;
  }
  if (!rel)
    return fail(Errc::PreconditionFailed,
                file + " (sha256 " + sha + ") is not a verified file of any " + fam->name +
                    " release in the firmware store; import it first (labctl firmware import " +
                    file + ") under a name the catalog lists. Nothing was sent." +
                    (looked.empty() ? "" : " Releases: " + text::join_list(looked, "; ")));
  auto installed = inventory::parse_version(fam->scheme, id.revision);
  if (!installed)
    return fail(Errc::PreconditionFailed, d.name + ": the drive reports revision '" + id.revision +
                                              "': " + installed.error().message());
  // The catalog's rules apply to a hand-picked image too: 1.01 -> 1.12 is refused.
  inventory::DeviceState state{*installed, {}};
  for (const auto& rule : rel->requires_)
    if (!rule.holds(state))
      return fail(Errc::PreconditionFailed,
                  d.name + ": " + rel->version.display() + " requires " + rule.describe() +
                      " and the drive runs " + id.revision +
                      (rule.reason.empty() ? "" : " (" + rule.reason + ")") +
                      "; flash the release in between first (labctl drive " + d.name +
                      " audit shows the path). Nothing was sent.");
  sdk::HopInfo hop{rel, *installed, rel->version, 1, 1, "requested on the command line"};
  sdk::VerbResult out;
  json steps = json::array();
  if (same_revision(fam, id.revision, rel->version.text)) {
    out.data = {{"device", d.name},
                {"from", id.revision},
                {"to", rel->version.text},
                {"status", "up-to-date"},
                {"steps", steps}};
    out.text = d.name + ": already runs " + id.revision + "; nothing to do\n";
    return out;
  }
  auto opts = flash_options(*rel, ctx.catalog()->file);
  if (!opts) return fail(opts.error());
  auto spec = image_spec(*rel, ctx.catalog()->file);
  if (!spec) return fail(spec.error());
  json step_args = {{"family", fam->name},        {"from", id.revision}, {"to", rel->version.text},
                    {"device", s.path},           {"mode", opts->mode},  {"chunk", opts->chunk},
                    {"activate", opts->activate}, {"image", spec->file}, {kConsentArg, true}};
  out.text =
      d.name + ": " + id.describe() + ", flashing " + rel->version.text + " from " + file + "\n";
  std::string status = "done";
  Error failure(Errc::Internal, "");
  for (const auto& st : hop_sequence(hop, step_args, *opts, *spec, s)) {
    json rec = {{"key", st.key}, {"title", st.title}};
    auto done = step_done(ctx, d, st);
    if (done && *done && st.action != "verify") {
      rec["status"] = "already-done";
      steps.push_back(rec);
      out.text += "  already done  " + st.title + "\n";
      continue;
    }
    auto r = run_step(ctx, d, st);
    if (!r) {
      rec["status"] = "failed";
      rec["error"] = {{"code", std::string(errc_name(r.error().code()))},
                      {"message", r.error().message()}};
      steps.push_back(rec);
      out.text += "  FAILED        " + st.title + ": " + r.error().message() + "\n";
      status = "failed";
      failure = r.error();
      break;
    }
    rec["status"] = "done";
    steps.push_back(rec);
    out.text += "  done          " + st.title + "\n";
  }
  if (status == "failed") return fail(Error(failure.code(), out.text + failure.message()));
  out.data = {
      {"device", d.name},        {"file", file},     {"sha256", sha}, {"from", hop.from.text},
      {"to", rel->version.text}, {"status", status}, {"steps", steps}};
  out.text += d.name + ": now runs " + rel->version.text + "\n";
  return out;
}

}  // namespace labctl::optical_drive
