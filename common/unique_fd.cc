#include "common/unique_fd.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace labctl {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

UniqueFd::~UniqueFd() {
  reset();
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Error sys_error(std::string_view what) {
  return Error(Errc::Internal, std::string(what) + ": " + std::strerror(errno));
}

}  // namespace labctl
