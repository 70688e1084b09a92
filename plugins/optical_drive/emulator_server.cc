#include "plugins/optical_drive/emulator_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <thread>

#include "plugins/optical_drive/emulator_wire.h"
#include "plugins/sim/sim_state.h"

namespace labctl::optical_drive {

using nlohmann::json;

namespace {

// A client that sends half a frame and stops is dropped after this, so it cannot hold the drive.
constexpr auto kIdleLimit = std::chrono::seconds(120);

void save(DriveEmulator& drive, const std::string& state_file) {
  if (state_file.empty() || !drive.take_dirty()) return;
  if (auto s = sim::save_state(state_file, drive.state()); !s)
    std::cerr << "labctl-drive-emulator: " << s.error().message() << "\n";
}

// Serves one connection until it closes. false: the drive vanished.
bool serve(int fd, DriveEmulator& drive, const std::string& state_file) {
  for (;;) {
    auto body = wire::read_frame(fd, Clock::now() + kIdleLimit);
    if (!body) return true;  // closed, reset, idle or garbage: drop the connection
    auto req = wire::decode_request(*body);
    if (!req) {
      std::cerr << "labctl-drive-emulator: " << req.error().message() << "\n";
      return true;
    }
    wire::Reply reply;
    if (req->kind == wire::Kind::Control) {
      const json j = json::parse(req->control, nullptr, false);
      reply.kind = wire::Kind::Control;
      reply.control = (j.is_discarded() ? json{{"error", "not JSON"}} : drive.control(j)).dump();
      save(drive, state_file);
    } else {
      Command c;
      c.cdb = req->cdb;
      c.direction = req->direction;
      c.data_out = req->data_out;
      c.data_in_length = req->data_in_length;
      c.timeout = std::chrono::milliseconds(req->timeout_ms);
      auto o = drive.handle(c);
      save(drive, state_file);
      if (o.effect == Effect::Vanish) return false;
      if (o.effect == Effect::Hang) {
        // The command is lost: the drive never completes it and the initiator times out.
        std::this_thread::sleep_for(std::chrono::milliseconds(o.hang_ms));
        return true;
      }
      reply.status = o.response.status;
      reply.sense = std::move(o.response.sense);
      reply.residual = static_cast<std::uint32_t>(std::max<std::int64_t>(o.response.residual, 0));
      reply.data = std::move(o.response.data);
    }
    if (!wire::write_frame(fd, wire::encode(reply), Clock::now() + kIdleLimit)) return true;
  }
}

}  // namespace

Result<std::unique_ptr<EmulatorServer>> EmulatorServer::listen(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return fail(Errc::InvalidInput, path + ": socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Errc::Internal, std::string("socket: ") + std::strerror(errno));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    return fail(Errc::Internal, path + ": " + std::strerror(err));
  }
  return std::unique_ptr<EmulatorServer>(new EmulatorServer(fd, path));
}

EmulatorServer::~EmulatorServer() {
  close_socket();
}

void EmulatorServer::close_socket() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(path_.c_str());
  fd_ = -1;
}

bool EmulatorServer::run(DriveEmulator& drive, const std::string& state_file,
                         const std::atomic<bool>& stop) {
  save(drive, state_file);
  while (!stop.load() && fd_ >= 0) {
    pollfd p{fd_, POLLIN, 0};
    const int n = ::poll(&p, 1, 100);
    if (n <= 0) continue;
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const bool alive = serve(fd, drive, state_file);
    ::close(fd);
    if (!alive) {
      // The drive dropped off the bus: nobody reaches it until a new emulator (a power cycle).
      close_socket();
      return true;
    }
  }
  return false;
}

}  // namespace labctl::optical_drive
