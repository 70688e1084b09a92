// An optical drive as the plugin talks to it: the SCSI commands of scsi.h sent through a
// Transport, their answers parsed, CHECK CONDITIONs turned into errors that say what the drive
// said (sense key, ASC/ASCQ by name) and classed for the engine (retry or not), and UNIT
// ATTENTIONs (a reset, a new disc, new microcode) noted and the command sent again.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "plugins/optical_drive/scsi.h"
#include "plugins/optical_drive/transport.h"

namespace labctl::optical_drive {

// Who a drive says it is. `serial` is "" when the drive has no unit serial number page.
struct Identity {
  std::string vendor, product, revision, serial;
  std::uint8_t device_type = 0;
  std::string path;  // where it was read
  std::string inquiry_hex;

  // Same vendor, product and serial number: the same drive (the revision may differ).
  bool same_drive(const Identity& other) const;
  std::string describe() const;  // "MATSHITA BD-MLT UJ240AS 1.01 (serial HM123)"
  nlohmann::json to_json() const;
  static Result<Identity> from_json(const nlohmann::json& j);
};

// What TEST UNIT READY says.
struct Readiness {
  enum class State { Ready, NoMedium, BecomingReady, Busy, Other };
  State state = State::Other;
  bool tray_open = false;
  std::optional<scsi::Sense> sense;
  std::string text;  // "ready (a disc is loaded)", "no disc (tray closed)", ...
};
std::string_view state_name(Readiness::State s);  // "ready", "no-medium", ...

// A CHECK CONDITION (or another status) as an error: the message names the command and the sense
// in words, the class decides whether the engine may retry. NOT READY while becoming ready or
// busy, UNIT ATTENTION, ABORTED COMMAND and BUSY are retryable (Timeout / Unreachable); ILLEGAL
// REQUEST is NotSupported (unknown command) or PreconditionFailed (refused), MEDIUM NOT PRESENT
// PreconditionFailed, HARDWARE and MEDIUM ERROR Internal.
Error status_error(std::string_view command, const Response& r);

class Drive {
 public:
  explicit Drive(Transport& transport,
                 std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000))
      : t_(transport), timeout_(timeout) {}

  Transport& transport() { return t_; }
  // Unit attentions seen so far, in words ("UNIT ATTENTION: MICROCODE HAS BEEN CHANGED (3F/01)").
  const std::vector<std::string>& notes() const { return notes_; }

  Result<scsi::InquiryData> inquiry(std::string* raw_hex = nullptr);
  // The unit serial number (VPD page 0x80); "" when the drive does not have the page.
  Result<std::string> serial();
  Result<Identity> identify();
  Result<Readiness> test_unit_ready();
  Result<scsi::Configuration> configuration();
  // One WRITE BUFFER. The data goes out as given; `timeout` bounds this command.
  Status write_buffer(std::uint8_t mode, std::uint32_t offset, std::span<const std::uint8_t> data,
                      std::chrono::milliseconds timeout);

 private:
  // Sends a command; a UNIT ATTENTION is noted and the command sent again (up to 4 times).
  Result<Response> run(const Command& c, std::string_view what);
  Transport& t_;
  std::chrono::milliseconds timeout_;
  std::vector<std::string> notes_;
};

}  // namespace labctl::optical_drive
