// The drive emulator's wire format: one frame per SCSI command and one per answer, over a Unix
// stream socket, so the transport boundary is exactly the CDB level (emulator_client.cc on the
// labctl side, emulator_main.cc on the emulator's). Control frames (JSON) let a test harness look
// at the emulated drive and change it (insert a disc, inject a failure) while it runs.
//
// Every frame is a 4-byte big-endian body length, then the body:
//   request  command: 0x01, direction (0 none, 1 in, 2 out), data-in length (u32), timeout ms
//                     (u32), CDB length (u8, 1..16), CDB, data-out bytes (the rest)
//            control: 0x02, JSON text
//   reply    command: 0x01, status (u8), sense length (u8), sense, residual (u32), data-in bytes
//            control: 0x02, JSON text
// Integers are big-endian. A body is at most kMaxFrame bytes.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "plugins/optical_drive/transport.h"

namespace labctl::optical_drive::wire {

using Bytes = std::vector<std::uint8_t>;

// WRITE BUFFER carries at most 16 MiB - 1; a little more for the header.
inline constexpr std::uint32_t kMaxFrame = (16u << 20) + 1024;

enum class Kind : std::uint8_t { Command = 1, Control = 2 };

struct Request {
  Kind kind = Kind::Command;
  Direction direction = Direction::None;
  std::uint32_t data_in_length = 0;
  std::uint32_t timeout_ms = 0;
  Bytes cdb;
  Bytes data_out;
  std::string control;  // Kind::Control
};

struct Reply {
  Kind kind = Kind::Command;
  std::uint8_t status = 0;
  Bytes sense;
  std::uint32_t residual = 0;
  Bytes data;
  std::string control;  // Kind::Control
};

// Frames with their length prefix.
Bytes encode(const Request& r);
Bytes encode(const Reply& r);
// Bodies (without the length prefix). InvalidInput says what is wrong and where.
Result<Request> decode_request(std::span<const std::uint8_t> body);
Result<Reply> decode_reply(std::span<const std::uint8_t> body);

// Blocking frame I/O on a stream socket, each bounded by `deadline`. Errors: Unreachable when the
// peer closed the connection or reset it, Timeout at the deadline, InvalidInput for a length over
// kMaxFrame.
Status write_frame(int fd, std::span<const std::uint8_t> frame,
                   std::chrono::steady_clock::time_point deadline);
Result<Bytes> read_frame(int fd, std::chrono::steady_clock::time_point deadline);

}  // namespace labctl::optical_drive::wire
