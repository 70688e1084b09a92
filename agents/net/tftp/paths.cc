#include "agents/net/tftp/paths.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "agents/net/tftp/codec.h"
#include "common/text.h"

namespace labctl::tftp {

namespace {

std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

Error errno_error(int err, std::string_view what) {
  switch (err) {
    case ENOENT:
      return Error(Errc::NotFound, std::string(what) + ": no such file");
    case ENOTDIR:
      return Error(Errc::NotFound, std::string(what) + ": a path component is not a directory");
    case EXDEV:
      return Error(Errc::InvalidInput, std::string(what) + ": resolves outside the root");
    case ELOOP:
      return Error(Errc::InvalidInput,
                   std::string(what) + ": symbolic link refused (loop, or not followed here)");
    case EACCES:
    case EPERM:
      return Error(Errc::PreconditionFailed, std::string(what) + ": permission denied");
    case ENAMETOOLONG:
      return Error(Errc::InvalidInput, std::string(what) + ": name too long");
    case EISDIR:
      return Error(Errc::PreconditionFailed, std::string(what) + ": is a directory");
    default:
      return Error(Errc::Internal, std::string(what) + ": " + std::strerror(err));
  }
}

long sys_openat2(int dirfd, const char* path, int flags, std::uint64_t resolve, mode_t mode) {
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(flags);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = resolve;
  long r;
  do {
    r = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  } while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace

bool have_openat2() {
  static const bool ok = [] {
    const long r = sys_openat2(AT_FDCWD, "/", O_PATH | O_CLOEXEC, 0, 0);
    if (r >= 0) {
      ::close(static_cast<int>(r));
      return true;
    }
    return errno != ENOSYS;
  }();
  return ok;
}

Result<std::string> normalise_name(std::string_view raw) {
  if (raw.empty()) return fail(Errc::InvalidInput, "empty name");
  if (raw.size() > kMaxFilename)
    return fail(Errc::InvalidInput, "name of " + std::to_string(raw.size()) +
                                        " bytes is longer than " + std::to_string(kMaxFilename));
  if (raw.find('\0') != std::string_view::npos) return fail(Errc::InvalidInput, "NUL byte in name");
  std::string s(raw);
  for (auto& c : s)
    if (c == '\\') c = '/';
  std::string out;
  for (auto c : components(s)) {
    if (c == ".") continue;
    if (c == "..") return fail(Errc::InvalidInput, "'..' component in name");
    if (!out.empty()) out.push_back('/');
    out.append(c);
  }
  if (out.empty()) return fail(Errc::InvalidInput, "name does not name a file");
  return out;
}

std::uint16_t tftp_error_for(const Error& e) {
  return e.code() == Errc::NotFound ? static_cast<std::uint16_t>(ErrorCode::FileNotFound)
                                    : static_cast<std::uint16_t>(ErrorCode::AccessViolation);
}

Result<Root> Root::open(const std::filesystem::path& dir, ResolveOptions options) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(errno_error(errno, "root " + dir.string()));
  Root r;
  r.fd_.reset(fd);
  r.path_ = dir;
  r.options_ = options;
  return r;
}

Result<Root> Root::subroot(std::string_view subdir) const {
  auto norm = normalise_name(subdir);
  if (!norm) return fail(std::move(norm.error()).context("write area"));
  auto fd = open_beneath(*norm, O_RDONLY | O_DIRECTORY);
  if (!fd) return fail(std::move(fd.error()).context("write area"));
  Root r;
  r.fd_ = std::move(*fd);
  r.path_ = path_ / *norm;
  r.options_ = options_;
  return r;
}

Result<UniqueFd> Root::open_beneath(std::string_view rel, int flags) const {
  flags |= O_CLOEXEC | O_NOCTTY;
  const std::string path = rel.empty() ? std::string(".") : std::string(rel);
  if (!options_.force_component_walk && have_openat2()) {
    const long r =
        sys_openat2(fd_.get(), path.c_str(), flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, 0644);
    if (r < 0) return fail(errno_error(errno, path));
    return UniqueFd(static_cast<int>(r));
  }
  // No openat2: walk one component at a time and follow no symlink at all.
  auto parts = components(path);
  // A new open file description (not dup): directory scans must not share the root's offset.
  UniqueFd cur(::openat(fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return fail(errno_error(errno, path));
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string part(parts[i]);
    if (part == "..") return fail(Errc::InvalidInput, path + ": '..' component");
    if (part == ".") continue;
    const bool last = i + 1 == parts.size();
    const int f = last ? (flags | O_NOFOLLOW) : (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int next;
    do {
      next = ::openat(cur.get(), part.c_str(), f, 0644);
    } while (next < 0 && errno == EINTR);
    if (next < 0) {
      const int err = errno;
      // O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR: name the real reason.
      struct stat st {};
      if ((err == ENOTDIR || err == ELOOP) &&
          ::fstatat(cur.get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        return fail(Errc::InvalidInput, path + ": symbolic link refused (not followed here)");
      return fail(errno_error(err, path));
    }
    cur.reset(next);
  }
  return cur;
}

Result<std::string> Root::case_insensitive_match(std::string_view normalised) const {
  std::string actual;
  auto parts = components(normalised);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto dirfd = open_beneath(actual, O_RDONLY | O_DIRECTORY);
    if (!dirfd) return fail(dirfd.error());
    const std::string want(parts[i]);
    struct stat st {};
    std::string chosen;
    if (::fstatat(dirfd->get(), want.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      chosen = want;
    } else {
      DIR* dir = ::fdopendir(dirfd->release());
      if (dir == nullptr) return fail(errno_error(errno, actual.empty() ? "." : actual));
      ::rewinddir(dir);
      std::size_t scanned = 0;
      while (dirent* e = ::readdir(dir)) {
        if (++scanned > options_.max_dir_entries) break;
        std::string_view n(e->d_name);
        if (n == "." || n == "..") continue;
        if (!text::iequals(n, want)) continue;
        // Deterministic among names that differ only in case: the byte-wise smallest.
        if (chosen.empty() || n < chosen) chosen = std::string(n);
      }
      ::closedir(dir);
      if (chosen.empty())
        return fail(Errc::NotFound, std::string(normalised) + ": no such file (in any case)");
    }
    if (!actual.empty()) actual.push_back('/');
    actual += chosen;
  }
  return actual;
}

Result<ResolvedFile> Root::open_read(std::string_view normalised) const {
  const int flags = O_RDONLY | O_NONBLOCK;  // O_NONBLOCK: opening a FIFO must not block
  ResolvedFile out;
  out.name = std::string(normalised);
  auto fd = open_beneath(normalised, flags);
  if (!fd && fd.error().code() == Errc::NotFound) {
    auto match = case_insensitive_match(normalised);
    // Still absent: the exact name's error. Found but refused (an escape): that refusal.
    if (!match) return fail(match.error().code() == Errc::NotFound ? fd.error() : match.error());
    auto again = open_beneath(*match, flags);
    if (!again) return fail(again.error());
    out.case_fallback = *match != normalised;
    out.name = std::move(*match);
    fd = std::move(again);
  }
  if (!fd) return fail(fd.error());
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return fail(errno_error(errno, out.name));
  if (!S_ISREG(st.st_mode))
    return fail(Errc::PreconditionFailed, out.name + ": not a regular file");
  out.fd = std::move(*fd);
  out.size = static_cast<std::uint64_t>(st.st_size);
  return out;
}

bool is_file_exists(const Error& e) {
  return e.code() == Errc::PreconditionFailed && e.message().ends_with(kFileExists);
}

Result<WriteTarget> create_for_write(const Root& root, std::string_view normalised,
                                     bool overwrite) {
  WriteTarget t;
  t.name = std::string(normalised);
  const auto slash = normalised.rfind('/');
  const std::string_view parent =
      slash == std::string_view::npos ? std::string_view() : normalised.substr(0, slash);
  t.final_name =
      std::string(slash == std::string_view::npos ? normalised : normalised.substr(slash + 1));
  auto dir = root.open_beneath(parent, O_RDONLY | O_DIRECTORY);
  if (!dir) return fail(dir.error());
  t.dir = std::move(*dir);
  struct stat st {};
  if (::fstatat(t.dir.get(), t.final_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISREG(st.st_mode))
      return fail(Errc::InvalidInput, t.name + ": exists and is not a regular file");
    if (!overwrite) return fail(Errc::PreconditionFailed, t.name + ": " + std::string(kFileExists));
  }
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 16; ++attempt) {
    t.temp_name = ".labctl-tftp-" + std::to_string(::getpid()) + "-" +
                  std::to_string(counter.fetch_add(1)) + ".part";
    const int fd = ::openat(t.dir.get(), t.temp_name.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) {
      t.fd.reset(fd);
      return t;
    }
    if (errno != EEXIST) return fail(errno_error(errno, t.name));
  }
  return fail(Errc::Internal, t.name + ": no free temporary name");
}

Status commit_write(WriteTarget& t, bool overwrite) {
  if (::fsync(t.fd.get()) != 0) return fail(errno_error(errno, t.name));
  t.fd.reset();
  int r = ::renameat2(t.dir.get(), t.temp_name.c_str(), t.dir.get(), t.final_name.c_str(),
                      overwrite ? 0u : static_cast<unsigned>(RENAME_NOREPLACE));
  if (r != 0 && errno == EINVAL && !overwrite) {
    // A file system without RENAME_NOREPLACE: link(2) also refuses to replace.
    r = ::linkat(t.dir.get(), t.temp_name.c_str(), t.dir.get(), t.final_name.c_str(), 0);
    if (r == 0) ::unlinkat(t.dir.get(), t.temp_name.c_str(), 0);
  }
  if (r != 0) {
    const int err = errno;
    ::unlinkat(t.dir.get(), t.temp_name.c_str(), 0);
    t.temp_name.clear();
    if (err == EEXIST)
      return fail(Errc::PreconditionFailed, t.name + ": " + std::string(kFileExists));
    return fail(errno_error(err, t.name));
  }
  t.temp_name.clear();
  return {};
}

void abandon_write(WriteTarget& t) {
  t.fd.reset();
  if (t.dir && !t.temp_name.empty()) ::unlinkat(t.dir.get(), t.temp_name.c_str(), 0);
  t.temp_name.clear();
}

}  // namespace labctl::tftp
