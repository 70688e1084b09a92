// Downloading catalog firmware from its mirrors (`labctl firmware fetch`), through libcurl.
//
// A download goes into `<dir>/<name>.part` and survives an interrupted transfer or an interrupted
// labctl: the next attempt (in the same run, or a later one) asks for the rest with an HTTP Range
// request and appends what a 206 answer brings; a server that ignores Range (200) starts the file
// over. The complete file must have the size and sha256 expected (the catalog's, or the store's
// pin); a file that does not is deleted, never imported, and the next mirror is tried. Only
// http:// and https:// URLs, redirects included; every attempt is bounded in time and count.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace labctl::controller::firmware {

struct FetchOptions {
  int attempts = 4;  // per mirror, each resuming where the last one stopped
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::seconds stall{30};          // a transfer slower than 1 byte/s this long is cut
  std::chrono::milliseconds backoff{250};  // before attempt n after one that brought nothing
  std::uint64_t max_size = 512ull << 20;
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
};

struct FetchAttempt {
  std::string url;
  std::uint64_t resumed_from = 0;  // bytes already in the partial file when it started
  long http_status = 0;
  std::uint64_t received = 0;
  std::string result;  // "complete", "interrupted: ...", "restarted: ...", "HTTP 404", ...
};

struct Fetched {
  std::filesystem::path file;  // the checked download, named as the catalog names it
  std::string sha256;
  std::uint64_t size = 0;
  std::string url;  // the mirror it came from
  std::vector<FetchAttempt> attempts;
};

// Downloads `name` from the first mirror that delivers it with `expected_sha256` (lower-case hex;
// "" when nothing is pinned yet) and `expected_size` (when known) into `dir`. Errors: NotFound
// (every mirror answered 404 or the like), VerifyMismatch (a mirror delivered other bytes),
// Unreachable / Timeout (no mirror could be reached or finished), InvalidInput (a URL that is not
// http or https); the message lists what each mirror did.
Result<Fetched> download(const std::vector<std::string>& mirrors, const std::string& name,
                         const std::filesystem::path& dir, const std::string& expected_sha256,
                         std::optional<std::uint64_t> expected_size, const FetchOptions& options);

nlohmann::json to_json(const FetchAttempt& a);

}  // namespace labctl::controller::firmware
