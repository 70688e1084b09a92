// An emulated slim BD drive at the SCSI command level: the test double of the optical drive
// plugin (libvirt's test:/// in spirit). It answers INQUIRY (standard data, VPD pages 0x00 and
// 0x80), TEST UNIT READY, REQUEST SENSE, GET CONFIGURATION and WRITE BUFFER with the semantics the
// plugin relies on, failures included:
//
// - WRITE BUFFER mode 5 takes the whole image in one command (offset 0), mode 7 and 0x0E take it
//   in chunks at increasing offsets (each chunk must start where the last one ended, or at 0 to
//   start over). The image is checked when it is complete (its own length field says when): an
//   image for another product or with a bad CRC is refused with ILLEGAL REQUEST, INVALID FIELD IN
//   PARAMETER LIST. Mode 5 and 7 then save and activate it; 0x0E saves it for a later 0x0F
//   ("activate deferred microcode", COMMAND SEQUENCE ERROR without one) or the next power-on.
// - Activation is a reboot: for `reboot` every command, INQUIRY included, is answered NOT READY,
//   LOGICAL UNIT IS IN PROCESS OF BECOMING READY (with progress); then the first command other
//   than INQUIRY or REQUEST SENSE gets UNIT ATTENTION, MICROCODE HAS BEEN CHANGED, and INQUIRY
//   reports the new revision. The old revision is reported until the reboot is over.
// - A disc in the tray: TEST UNIT READY is GOOD and GET CONFIGURATION's current profile names the
//   disc; without one TEST UNIT READY is NOT READY, MEDIUM NOT PRESENT (tray open or closed).
//   Power-on (a new emulator) and a disc change queue the standard UNIT ATTENTIONs.
// - What survives a power cycle (the installed and the deferred revision, counters) is `state()`,
//   which the emulator process writes to a file; a partly received image does not.
// - Faults (`Fault`): a CHECK CONDITION with any sense, a command that never completes (timeout),
//   or the drive vanishing, before or after a command took effect, on the nth matching command.
//
// The microcode format here is the emulator's own (`build_test_microcode`): the UJ240AS's image
// format is not public, and nothing in the plugin depends on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "plugins/optical_drive/scsi.h"
#include "plugins/optical_drive/transport.h"

namespace labctl::optical_drive {

using Clock = std::chrono::steady_clock;

struct Fault {
  std::string on = "any";  // "any", "inquiry", "test-unit-ready", "request-sense",
                           // "get-configuration", "write-buffer"
  int mode = -1;           // write-buffer: only this mode (-1: any)
  int nth = 1;             // the first matching command it hits (1-based, counted per process)
  int times = 1;           // how many matching commands in a row, from the nth
  std::string action;      // "check-condition", "timeout", "vanish"
  std::uint8_t key = 0, asc = 0, ascq = 0;  // check-condition
  int hang_ms = 0;     // timeout: how long the emulator sits on the command before dropping it
  bool after = false;  // vanish: the command takes effect first, then the drive is gone
  int seen = 0;        // matching commands so far

  static Result<Fault> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

struct EmulatorConfig {
  std::string vendor = "MATSHITA";
  std::string product = "BD-MLT UJ240AS";
  std::string revision = "1.01";      // installed when there is no saved state
  std::string serial = "HM12345678";  // "" : no unit serial number page
  std::string medium = "none";        // none, cd, dvd, bd
  bool tray_open = false;
  std::chrono::milliseconds reboot{1500};
  std::uint32_t capacity = 4u << 20;  // the largest image the buffer holds
  std::set<std::uint8_t> modes = {scsi::kModeDownloadSave, scsi::kModeDownloadOffsetsSave,
                                  scsi::kModeDownloadOffsetsDefer, scsi::kModeActivateDeferred};
  bool descriptor_sense = false;       // answer CHECK CONDITION with descriptor-format sense
  std::optional<scsi::Bytes> inquiry;  // standard INQUIRY data to answer verbatim
  std::vector<Fault> faults;

  // Keys as in the emulator's --config file (emulator_main.cc): vendor, product, revision,
  // serial, medium, tray-open, reboot-ms, capacity, modes, descriptor-sense, faults.
  static Result<EmulatorConfig> from_json(const nlohmann::json& j);
};

// What a command did, beyond its answer.
enum class Effect { Reply, Hang, Vanish };

struct Outcome {
  Response response;
  Effect effect = Effect::Reply;
  int hang_ms = 0;
};

class DriveEmulator {
 public:
  // `saved`: what state() returned before the last power cycle (empty for a factory-new drive).
  // Power-on activates an image saved for deferred activation and queues POWER ON OCCURRED.
  DriveEmulator(EmulatorConfig config, const nlohmann::json& saved = {},
                Clock::time_point now = Clock::now());

  Outcome handle(const Command& command, Clock::time_point now = Clock::now());

  // Harness requests: {"op": "state"}, {"op": "medium", "medium": "bd"|"none", "tray-open": b},
  // {"op": "fault", ...Fault}, {"op": "clear-faults"}. Returns the answer (with "error" for a bad
  // request).
  nlohmann::json control(const nlohmann::json& request, Clock::time_point now = Clock::now());

  // What survives a power cycle, plus what a test wants to see: counts per command, every WRITE
  // BUFFER (mode, offset, length, result), activations, refused images.
  nlohmann::json state() const;
  // Set when state() changed since the last call (the process then saves it).
  bool take_dirty();
  // Why the saved state could not be read ("" when it could): the drive then starts factory-new.
  const std::string& load_error() const { return load_error_; }

 private:
  nlohmann::json control_op(const nlohmann::json& request, Clock::time_point now);
  Outcome answer(const Command& c, Clock::time_point now);
  Outcome write_buffer(const Command& c, Clock::time_point now);
  Outcome check(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                std::optional<std::uint16_t> progress = std::nullopt) const;
  Outcome good(scsi::Bytes data = {}, std::size_t allocation = 0) const;
  std::optional<Outcome> rebooting(Clock::time_point now);
  void activate(const std::string& revision, Clock::time_point now);
  std::uint16_t current_profile() const;
  void log_write(const scsi::WriteBufferCdb& w, const std::string& result);

  EmulatorConfig config_;
  std::string revision_;          // installed (saved) microcode
  std::string deferred_;          // saved, waiting for 0x0F or power-on
  std::string booting_revision_;  // being activated: reported once the reboot is over
  Clock::time_point reboot_start_{}, reboot_until_{};
  std::optional<std::pair<std::uint8_t, std::uint8_t>> unit_attention_;
  scsi::Bytes buffer_;            // the image being received (volatile)
  std::uint8_t buffer_mode_ = 0;  // the mode that is filling it
  nlohmann::json counts_ = nlohmann::json::object();
  nlohmann::json writes_ = nlohmann::json::array();
  int activations_ = 0, refused_ = 0, power_ons_ = 0;
  std::uint64_t bytes_received_ = 0;
  bool dirty_ = true;
  std::string load_error_;
};

// The emulator's microcode format: "LCTLMCOD", the product (16 bytes, space padded), the revision
// (4 bytes), the total length (u32 BE), payload from `seed`, a CRC-32 (zlib) of the rest (u32 BE)
// as the last 4 bytes. `size` is at least 64.
scsi::Bytes build_test_microcode(std::string_view product, std::string_view revision,
                                 std::size_t size, std::uint32_t seed = 1);
struct TestMicrocode {
  std::string product, revision;
  std::uint32_t length = 0;
};
// Checks magic, length and CRC. InvalidInput says what is wrong.
Result<TestMicrocode> parse_test_microcode(scsi::ByteView image);

// A Transport that hands every command to an in-process DriveEmulator (unit tests): a hang is a
// Timeout at once, a vanish is Unreachable for this and every later command (a power cycle is a
// new DriveEmulator from the old one's state()). `clock` lets a test move time.
class InProcessTransport : public Transport {
 public:
  explicit InProcessTransport(DriveEmulator& emulator, std::string path = "emulator:in-process")
      : emulator_(&emulator), path_(std::move(path)) {}
  const std::string& path() const override { return path_; }
  Result<Response> execute(const Command& command) override;
  bool gone() const { return gone_; }
  std::function<Clock::time_point()> clock = [] { return Clock::now(); };

 private:
  DriveEmulator* emulator_;
  std::string path_;
  bool gone_ = false;
};

}  // namespace labctl::optical_drive
