// An owned file descriptor, closed when it goes out of scope; and the error for a failed system
// call (errno's text after what was attempted).
#pragma once

#include <string_view>

#include "common/error.h"

namespace labctl {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Internal, "WHAT: strerror(errno)". Call it right after the failed call (errno is read then).
Error sys_error(std::string_view what);

}  // namespace labctl
