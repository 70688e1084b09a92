// Safe resolution of requested TFTP names below a root directory.
//
// Rules (see README.md, "Security"):
// - a name is normalised first: backslashes become '/', leading '/' are stripped (like tftpd-hpa
//   -s: "/jar11sip.sbn" is "jar11sip.sbn" below the root), empty and "." components dropped;
// - refused outright: empty names, NUL bytes, names over 255 bytes, any ".." component;
// - nothing is decoded: "%2e%2e" is a literal (and probably absent) name;
// - the file is opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) relative to the root,
//   so symlinks are followed only while they stay below it; without openat2 (ENOSYS, kernels before
//   5.6) every component is opened with O_NOFOLLOW and symlinks are refused altogether;
// - only regular files are served (no directories, devices, FIFOs);
// - when the exact name does not exist, each component is matched case-insensitively against its
//   directory (Cisco phones ask for "Jar11sip..." when the file is "jar11sip..."); among several
//   matches the byte-wise smallest name wins, so the choice is deterministic.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/unique_fd.h"

namespace labctl::tftp {

using labctl::UniqueFd;

// Normalises a requested name (see above). Errors are InvalidInput with the reason ("'..'
// component", "NUL byte", ...): the server answers them with an access violation.
Result<std::string> normalise_name(std::string_view raw);

struct ResolvedFile {
  UniqueFd fd;
  std::uint64_t size = 0;
  std::string name;            // the name actually opened, relative to the root
  bool case_fallback = false;  // name differs from the request's only in case
};

struct ResolveOptions {
  bool force_component_walk = false;     // tests: use the no-openat2 path even where it exists
  std::size_t max_dir_entries = 100000;  // case-fallback scan bound per directory
};

// A directory opened once; names are resolved relative to its descriptor, so renaming or
// replacing the path later does not move the root.
class Root {
 public:
  static Result<Root> open(const std::filesystem::path& dir, ResolveOptions options = {});

  // Opens a normalised name for reading. Errors: NotFound (answer "file not found") or
  // InvalidInput / PreconditionFailed (answer "access violation"), with a reason for the log.
  Result<ResolvedFile> open_read(std::string_view normalised) const;

  // Opens `subdir` (below the root, e.g. the write area) as a root of its own.
  Result<Root> subroot(std::string_view subdir) const;

  // Opens a relative, normalised path below the root with open(2) `flags`, never leaving the root
  // (openat2 RESOLVE_BENEATH, or the O_NOFOLLOW walk). "" opens the root itself.
  Result<UniqueFd> open_beneath(std::string_view rel, int flags) const;

  int fd() const { return fd_.get(); }
  const std::filesystem::path& path() const { return path_; }
  const ResolveOptions& options() const { return options_; }

 private:
  Result<std::string> case_insensitive_match(std::string_view normalised) const;

  UniqueFd fd_;
  std::filesystem::path path_;
  ResolveOptions options_;
};

// A file being received into the write area: written under a temporary name in the target's
// directory and renamed into place only when complete, so a failed upload leaves nothing behind.
struct WriteTarget {
  UniqueFd fd;             // the temporary file, open for writing
  UniqueFd dir;            // the directory that will hold the file
  std::string temp_name;   // in dir
  std::string final_name;  // in dir
  std::string name;        // normalised name relative to the write root, for logs
};

// The message suffix of the one error that means "the target exists" (TFTP error 6).
inline constexpr std::string_view kFileExists = "file exists";
bool is_file_exists(const Error& e);

// Creates the temporary file for `normalised` below `root` (its parent directory must exist; none
// is created). Errors: PreconditionFailed ending in kFileExists (TFTP 6) when the name exists and
// `overwrite` is off; NotFound for a missing directory; InvalidInput for names that leave the root.
Result<WriteTarget> create_for_write(const Root& root, std::string_view normalised, bool overwrite);
// Moves the finished file into place (never replacing an existing one unless `overwrite`).
Status commit_write(WriteTarget& target, bool overwrite);
// Removes the temporary file.
void abandon_write(WriteTarget& target);

// Whether openat2(2) works on this kernel (probed once).
bool have_openat2();

// Maps a resolution error to the TFTP error code to send: NotFound -> 1, anything else -> 2.
std::uint16_t tftp_error_for(const Error& e);

}  // namespace labctl::tftp
