#include "common/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace labctl {

namespace {

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || out.size() > 65536) break;
    out.append(buf, static_cast<std::size_t>(n));
    off += n;
  }
  return out;
}

}  // namespace

Result<RunLock> RunLock::acquire(const std::filesystem::path& path, const std::string& content) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return fail(Errc::Internal, path.parent_path().string() + ": " + ec.message());
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return fail(Errc::Internal, path.string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = read_all(fd);
    ::close(fd);
    if (err == EWOULDBLOCK)
      return fail(Errc::PreconditionFailed,
                  path.string() + " is held by another process: " +
                      (holder.empty() ? std::string("(no details)") : holder));
    return fail(Errc::Internal, path.string() + ": flock: " + std::strerror(err));
  }
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, content.data(), content.size(), 0) != static_cast<ssize_t>(content.size())) {
    const int err = errno;
    ::close(fd);
    return fail(Errc::Internal, path.string() + ": " + std::strerror(err));
  }
  return RunLock(fd);
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the lock
}

std::optional<std::string> run_lock_holder(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> out;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) out = read_all(fd);
  } else {
    ::flock(fd, LOCK_UN);
  }
  ::close(fd);
  return out;
}

}  // namespace labctl
