#include "inventory/secrets.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace labctl::inventory {

namespace {

void strip_newline(std::string& s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (!s.empty() && s.back() == '\r') s.pop_back();
}

Result<std::string> read_file_secret(const SecretRef& ref, const SecretOptions& opt) {
  int fd = ::open(ref.ref.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return fail(Errc::PreconditionFailed, "secret " + ref.describe() + ": " + std::strerror(errno));
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return fail(Errc::PreconditionFailed, "secret " + ref.describe() + ": " + std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > opt.max_bytes) {
      ::close(fd);
      return fail(Errc::InvalidInput, "secret " + ref.describe() + ": larger than " +
                                          std::to_string(opt.max_bytes) + " bytes");
    }
  }
  ::close(fd);
  strip_newline(out);
  return out;
}

Result<std::string> run_command_secret(const SecretRef& ref, const SecretOptions& opt) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    return fail(Errc::Internal, "secret " + ref.describe() + ": pipe: " + std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> argv;
  for (const auto& a : ref.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  if (rc != 0) {
    ::close(pipefd[0]);
    return fail(Errc::PreconditionFailed,
                "secret " + ref.describe() + ": cannot run: " + std::strerror(rc));
  }
  std::string out;
  bool timed_out = false, too_big = false;
  auto deadline = std::chrono::steady_clock::now() + opt.command_timeout;
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{pipefd[0], POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) {
      timed_out = true;
      break;
    }
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > opt.max_bytes) {
      too_big = true;
      break;
    }
  }
  ::close(pipefd[0]);
  if (timed_out || too_big) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return fail(Errc::Timeout, "secret " + ref.describe() + ": no answer within " +
                                   std::to_string(opt.command_timeout.count()) + " ms");
  if (too_big)
    return fail(Errc::InvalidInput, "secret " + ref.describe() + ": output larger than " +
                                        std::to_string(opt.max_bytes) + " bytes");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return fail(Errc::PreconditionFailed,
                "secret " + ref.describe() + ": command failed (status " +
                    std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  strip_newline(out);
  return out;
}

}  // namespace

Result<std::string> resolve_secret(const SecretRef& ref, const SecretOptions& options) {
  switch (ref.source) {
    case SecretRef::Source::Literal:
      return ref.literal;
    case SecretRef::Source::Env: {
      const char* v = std::getenv(ref.ref.c_str());
      if (!v)
        return fail(Errc::PreconditionFailed, "secret " + ref.describe() + ": variable is not set");
      return std::string(v);
    }
    case SecretRef::Source::File:
      return read_file_secret(ref, options);
    case SecretRef::Source::Command:
      return run_command_secret(ref, options);
  }
  return fail(Errc::Internal, "secret: unknown source");
}

std::vector<std::string> secret_findings(const SecretRef& ref) {
  std::vector<std::string> out;
  if (ref.source == SecretRef::Source::Literal) {
    out.push_back(
        "literal secret in the inventory; use {env: NAME}, {file: PATH} or {command: [...]}");
  } else if (ref.source == SecretRef::Source::File) {
    struct stat st {};
    if (::stat(ref.ref.c_str(), &st) != 0) {
      out.push_back("secret file " + ref.ref + " cannot be read: " + std::strerror(errno));
    } else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      out.push_back("secret file " + ref.ref + " has mode " + mode +
                    ": readable by group or others; chmod 600 it");
    }
  }
  return out;
}

}  // namespace labctl::inventory
