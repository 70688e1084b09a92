#include "plugins/optical_drive/emulator_wire.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace labctl::optical_drive::wire {

namespace {

void put32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8)
    b.push_back(static_cast<std::uint8_t>(v >> s));
}

std::uint32_t get32(std::span<const std::uint8_t> d, std::size_t at) {
  return static_cast<std::uint32_t>(d[at]) << 24 | static_cast<std::uint32_t>(d[at + 1]) << 16 |
         static_cast<std::uint32_t>(d[at + 2]) << 8 | d[at + 3];
}

// Prefixes the body's length.
Bytes framed(Bytes body) {
  Bytes out;
  out.reserve(body.size() + 4);
  put32(out, static_cast<std::uint32_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Result<Kind> kind_of(std::span<const std::uint8_t> body, const char* what) {
  if (body.empty()) return fail(Errc::InvalidInput, std::string(what) + ": empty frame");
  if (body[0] != 1 && body[0] != 2)
    return fail(Errc::InvalidInput,
                std::string(what) + ": frame kind " + std::to_string(body[0]) + " is not 1 or 2");
  return static_cast<Kind>(body[0]);
}

int ms_left(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
  return static_cast<int>(std::clamp<std::int64_t>(left, 0, 3'600'000));
}

// Waits until `fd` is ready for `events`; false at the deadline.
Result<bool> wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, ms_left(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return fail(Errc::Internal, std::string("poll: ") + std::strerror(errno));
  }
}

}  // namespace

Bytes encode(const Request& r) {
  Bytes b;
  b.push_back(static_cast<std::uint8_t>(r.kind));
  if (r.kind == Kind::Control) {
    b.insert(b.end(), r.control.begin(), r.control.end());
    return framed(std::move(b));
  }
  b.push_back(static_cast<std::uint8_t>(r.direction));
  put32(b, r.data_in_length);
  put32(b, r.timeout_ms);
  b.push_back(static_cast<std::uint8_t>(r.cdb.size()));
  b.insert(b.end(), r.cdb.begin(), r.cdb.end());
  b.insert(b.end(), r.data_out.begin(), r.data_out.end());
  return framed(std::move(b));
}

Bytes encode(const Reply& r) {
  Bytes b;
  b.push_back(static_cast<std::uint8_t>(r.kind));
  if (r.kind == Kind::Control) {
    b.insert(b.end(), r.control.begin(), r.control.end());
    return framed(std::move(b));
  }
  b.push_back(r.status);
  const std::size_t n = std::min<std::size_t>(r.sense.size(), 255);
  b.push_back(static_cast<std::uint8_t>(n));
  b.insert(b.end(), r.sense.begin(), r.sense.begin() + static_cast<std::ptrdiff_t>(n));
  put32(b, r.residual);
  b.insert(b.end(), r.data.begin(), r.data.end());
  return framed(std::move(b));
}

Result<Request> decode_request(std::span<const std::uint8_t> body) {
  auto kind = kind_of(body, "request");
  if (!kind) return fail(kind.error());
  Request r;
  r.kind = *kind;
  if (r.kind == Kind::Control) {
    r.control.assign(body.begin() + 1, body.end());
    return r;
  }
  if (body.size() < 11)
    return fail(Errc::InvalidInput,
                "command request: " + std::to_string(body.size()) + " bytes, the header needs 11");
  if (body[1] > 2)
    return fail(Errc::InvalidInput,
                "command request: direction " + std::to_string(body[1]) + " is not 0, 1 or 2");
  r.direction = static_cast<Direction>(body[1]);
  r.data_in_length = get32(body, 2);
  r.timeout_ms = get32(body, 6);
  const std::size_t cdb_len = body[10];
  if (cdb_len == 0 || cdb_len > 16)
    return fail(Errc::InvalidInput,
                "command request: CDB length " + std::to_string(cdb_len) + " is not 1..16");
  if (body.size() < 11 + cdb_len)
    return fail(Errc::InvalidInput, "command request: the CDB (" + std::to_string(cdb_len) +
                                        " bytes) runs past the frame (" +
                                        std::to_string(body.size()) + " bytes)");
  if (r.data_in_length > kMaxFrame)
    return fail(Errc::InvalidInput, "command request: data-in length " +
                                        std::to_string(r.data_in_length) + " is over the limit");
  r.cdb.assign(body.begin() + 11, body.begin() + 11 + static_cast<std::ptrdiff_t>(cdb_len));
  r.data_out.assign(body.begin() + 11 + static_cast<std::ptrdiff_t>(cdb_len), body.end());
  if (r.direction != Direction::Out && !r.data_out.empty())
    return fail(Errc::InvalidInput, "command request: " + std::to_string(r.data_out.size()) +
                                        " data-out bytes on a command without data-out");
  return r;
}

Result<Reply> decode_reply(std::span<const std::uint8_t> body) {
  auto kind = kind_of(body, "reply");
  if (!kind) return fail(kind.error());
  Reply r;
  r.kind = *kind;
  if (r.kind == Kind::Control) {
    r.control.assign(body.begin() + 1, body.end());
    return r;
  }
  if (body.size() < 3)
    return fail(Errc::InvalidInput,
                "command reply: " + std::to_string(body.size()) + " bytes, the header needs 3");
  r.status = body[1];
  const std::size_t n = body[2];
  if (body.size() < 3 + n + 4)
    return fail(Errc::InvalidInput, "command reply: sense (" + std::to_string(n) +
                                        " bytes) and residual run past the frame (" +
                                        std::to_string(body.size()) + " bytes)");
  r.sense.assign(body.begin() + 3, body.begin() + 3 + static_cast<std::ptrdiff_t>(n));
  r.residual = get32(body, 3 + n);
  r.data.assign(body.begin() + 3 + static_cast<std::ptrdiff_t>(n) + 4, body.end());
  return r;
}

Status write_frame(int fd, std::span<const std::uint8_t> frame,
                   std::chrono::steady_clock::time_point deadline) {
  std::size_t done = 0;
  while (done < frame.size()) {
    auto ready = wait_for(fd, POLLOUT, deadline);
    if (!ready) return fail(ready.error());
    if (!*ready) return fail(Errc::Timeout, "sending to the drive did not finish in time");
    const ssize_t n = ::send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == EPIPE || errno == ECONNRESET)
        return fail(Errc::Unreachable, "the drive closed the connection");
      return fail(Errc::Internal, std::string("send: ") + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Result<Bytes> read_frame(int fd, std::chrono::steady_clock::time_point deadline) {
  auto read_exact = [&](std::uint8_t* out, std::size_t want, bool start) -> Status {
    std::size_t got = 0;
    while (got < want) {
      auto ready = wait_for(fd, POLLIN, deadline);
      if (!ready) return fail(ready.error());
      if (!*ready) return fail(Errc::Timeout, "no answer from the drive in time");
      const ssize_t n = ::recv(fd, out + got, want - got, 0);
      if (n == 0)
        return fail(Errc::Unreachable, start && got == 0
                                           ? "the drive closed the connection"
                                           : "the drive closed the connection mid-answer");
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        if (errno == ECONNRESET) return fail(Errc::Unreachable, "the drive reset the connection");
        return fail(Errc::Internal, std::string("recv: ") + std::strerror(errno));
      }
      got += static_cast<std::size_t>(n);
    }
    return {};
  };
  std::uint8_t len[4];
  if (auto s = read_exact(len, 4, true); !s) return fail(s.error());
  const std::uint32_t n = get32(len, 0);
  if (n > kMaxFrame)
    return fail(Errc::InvalidInput, "a frame of " + std::to_string(n) + " bytes, over the limit");
  Bytes body(n);
  if (auto s = read_exact(body.data(), n, false); !s) return fail(s.error());
  return body;
}

}  // namespace labctl::optical_drive::wire
