#include "plugins/sim/sim_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace labctl::sim {

namespace fs = std::filesystem;

Result<nlohmann::json> load_state(const fs::path& file) {
  std::ifstream in(file);
  if (!in) {
    if (errno == ENOENT) return nlohmann::json::object();
    return fail(Errc::Internal, "sim state " + file.string() + ": " + std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return fail(Errc::Internal, "sim state " + file.string() + ": not a JSON object");
  return j;
}

Status save_state(const fs::path& file, const nlohmann::json& state) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec)
    return fail(Errc::Internal,
                "sim state dir " + file.parent_path().string() + ": " + ec.message());
  const fs::path tmp = file.string() + ".tmp";
  const std::string data = state.dump(2) + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return fail(Errc::Internal, "sim state " + tmp.string() + ": " + std::strerror(errno));
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return fail(Errc::Internal, "sim state " + tmp.string() + ": " + std::strerror(e));
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    return fail(Errc::Internal, "sim state " + tmp.string() + ": " + std::strerror(errno));
  if (::rename(tmp.c_str(), file.c_str()) != 0)
    return fail(Errc::Internal, "sim state " + file.string() + ": " + std::strerror(errno));
  int dfd = ::open(file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace labctl::sim
