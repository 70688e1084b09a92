// The drive emulator behind a Unix socket: what labctl-drive-emulator runs, and what the
// plugin's unit tests run on a thread. One connection at a time (a drive has one initiator here);
// every command goes to the DriveEmulator, its persistent state is saved after each change.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/error.h"
#include "plugins/optical_drive/emulator.h"

namespace labctl::optical_drive {

class EmulatorServer {
 public:
  // Listens on `socket_path` (a stale socket file there is replaced).
  static Result<std::unique_ptr<EmulatorServer>> listen(const std::string& socket_path);
  ~EmulatorServer();
  EmulatorServer(const EmulatorServer&) = delete;
  EmulatorServer& operator=(const EmulatorServer&) = delete;

  // Serves until `stop` is set (checked every 100 ms between connections) or the drive vanishes
  // (a "vanish" fault): then the socket is closed and removed at once, so nobody reaches the drive,
  // and run() returns true. `state_file` ("" for none) receives drive.state() after every change.
  bool run(DriveEmulator& drive, const std::string& state_file, const std::atomic<bool>& stop);

 private:
  EmulatorServer(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  void close_socket();
  int fd_ = -1;
  std::string path_;
};

}  // namespace labctl::optical_drive
