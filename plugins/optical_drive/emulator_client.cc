// The transport for `emulator:SOCKET`: each SCSI command goes as one frame to a
// labctl-drive-emulator process (emulator_wire.h) and its answer comes back the same way. A closed
// connection is the drive gone (the emulator process died, as a drive does that drops off the
// bus); the next command connects again, as a device node that came back would answer again.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "plugins/optical_drive/emulator_wire.h"
#include "plugins/optical_drive/transport.h"

namespace labctl::optical_drive {

namespace {

using Clock = std::chrono::steady_clock;

class EmulatorClient : public Transport {
 public:
  explicit EmulatorClient(std::string socket)
      : socket_(std::move(socket)), path_(std::string(kEmulatorPrefix) + socket_) {}
  ~EmulatorClient() override { disconnect(); }
  EmulatorClient(const EmulatorClient&) = delete;
  EmulatorClient& operator=(const EmulatorClient&) = delete;

  const std::string& path() const override { return path_; }

  Status connect() {
    if (fd_ >= 0) return {};
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_.size() >= sizeof addr.sun_path)
      return fail(Errc::InvalidInput, path_ + ": the socket path is longer than " +
                                          std::to_string(sizeof addr.sun_path - 1) + " bytes");
    std::memcpy(addr.sun_path, socket_.c_str(), socket_.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(Errc::Internal, std::string("socket: ") + std::strerror(errno));
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      const int err = errno;
      ::close(fd);
      return fail(Errc::Unreachable, path_ + ": no drive answers (" + std::strerror(err) + ")");
    }
    fd_ = fd;
    return {};
  }

  Result<Response> execute(const Command& c) override {
    if (c.cdb.empty() || c.cdb.size() > 16)
      return fail(Errc::InvalidInput,
                  path_ + ": a CDB of " + std::to_string(c.cdb.size()) + " bytes");
    if (c.data_out.size() > wire::kMaxFrame - 64 || c.data_in_length > wire::kMaxFrame - 64)
      return fail(Errc::InvalidInput, path_ + ": a transfer over 16 MiB");
    if (auto s = connect(); !s) return fail(s.error());
    wire::Request req;
    req.direction = c.direction;
    req.data_in_length = static_cast<std::uint32_t>(c.data_in_length);
    req.timeout_ms = static_cast<std::uint32_t>(
        std::clamp<std::int64_t>(c.timeout.count(), 0, std::numeric_limits<std::uint32_t>::max()));
    req.cdb.assign(c.cdb.begin(), c.cdb.end());
    if (c.direction == Direction::Out) req.data_out.assign(c.data_out.begin(), c.data_out.end());
    const auto deadline = Clock::now() + c.timeout;
    auto body = [&]() -> Result<wire::Bytes> {
      if (auto s = wire::write_frame(fd_, wire::encode(req), deadline); !s) return fail(s.error());
      return wire::read_frame(fd_, deadline);
    }();
    if (!body) {
      // Whatever happened to this command, the connection's state is unknown now.
      disconnect();
      Error e = std::move(body.error()).context(path_);
      if (e.code() == Errc::Timeout)
        e = Error(Errc::Timeout,
                  path_ + ": no completion within " + std::to_string(c.timeout.count()) + " ms");
      else if (e.code() == Errc::Unreachable)
        e = Error(Errc::Unreachable, e.message() + " (the drive is gone)");
      return fail(std::move(e));
    }
    auto reply = wire::decode_reply(*body);
    if (!reply) {
      disconnect();
      return fail(std::move(reply.error()).context(path_));
    }
    Response r;
    r.status = reply->status;
    r.sense = std::move(reply->sense);
    r.data = std::move(reply->data);
    r.residual = reply->residual;
    if (r.data.size() > c.data_in_length) r.data.resize(c.data_in_length);
    return r;
  }

 private:
  void disconnect() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string socket_, path_;
  int fd_ = -1;
};

}  // namespace

Result<std::unique_ptr<Transport>> open_emulator_transport(const std::string& socket) {
  if (socket.empty() || socket.front() != '/')
    return fail(Errc::InvalidInput, std::string(kEmulatorPrefix) + socket +
                                        ": the emulator's socket must be an absolute path");
  auto t = std::make_unique<EmulatorClient>(socket);
  if (auto s = t->connect(); !s) return fail(s.error());
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace labctl::optical_drive
