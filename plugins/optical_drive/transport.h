// How the optical drive plugin reaches a drive: one SCSI command at a time, at the CDB level.
//
// Two implementations: the real one over libsgutils2's pass-through API on /dev/sg* and /dev/sr*
// (sg_transport.cc), and the drive emulator's (emulator_client.cc), which carries the same CDBs
// over a Unix socket to a `labctl-drive-emulator` process (the test double, like libvirt's
// test:///). Which one a path selects is decided by open_transport().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"

namespace labctl::optical_drive {

enum class Direction { None, In, Out };

struct Command {
  std::span<const std::uint8_t> cdb;
  Direction direction = Direction::None;
  std::span<const std::uint8_t> data_out;  // Direction::Out
  std::size_t data_in_length = 0;          // Direction::In: the allocation length
  std::chrono::milliseconds timeout{10'000};
};

// What the device answered. A transport failure (device gone, timeout) is an Error instead.
struct Response {
  std::uint8_t status = 0;          // SCSI status (scsi::kGood, kCheckCondition, ...)
  std::vector<std::uint8_t> sense;  // with CHECK CONDITION
  std::vector<std::uint8_t> data;   // data-in actually transferred
  std::int64_t residual = 0;        // bytes requested but not transferred
};

class Transport {
 public:
  virtual ~Transport() = default;
  // The path as given ("/dev/sg1", "emulator:/run/drive.sock").
  virtual const std::string& path() const = 0;
  // Errors: Unreachable (the device is gone or cannot be reached: ENODEV, a closed emulator
  // connection), Timeout (no completion within the command's timeout), InvalidInput (a command
  // the transport cannot carry), Internal.
  virtual Result<Response> execute(const Command& command) = 0;
};

// The prefix that selects the drive emulator: "emulator:/path/to/socket".
inline constexpr std::string_view kEmulatorPrefix = "emulator:";

// Opens a drive: "emulator:SOCKET" for the emulator, anything else is a device node for SCSI
// pass-through (opened O_RDWR | O_NONBLOCK, as sg3_utils does).
Result<std::unique_ptr<Transport>> open_transport(const std::string& path);

// The real pass-through, for a device node.
Result<std::unique_ptr<Transport>> open_sg_transport(const std::string& path);
// The emulator client, for its socket path (without the prefix).
Result<std::unique_ptr<Transport>> open_emulator_transport(const std::string& path);

}  // namespace labctl::optical_drive
