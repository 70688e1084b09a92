#include "controller/firmware_fetch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <curl/curl.h>

#include "common/text.h"
#include "controller/firmware_store.h"

namespace labctl::controller::firmware {

namespace fs = std::filesystem;

namespace {

// One HTTP transfer appending to the partial file.
struct Transfer {
  int fd = -1;
  std::uint64_t offset = 0;  // bytes in the file when the transfer started (the Range start)
  std::uint64_t written = 0;
  std::uint64_t max = 0;
  bool started = false;
  bool restarted = false;  // the server ignored Range: the file started over
  bool discard = false;    // an error page: not firmware
  std::string content_range;
  std::string abort_reason;
  CURL* curl = nullptr;
  const FetchOptions* options = nullptr;
  std::uint64_t total = 0;  // expected size, when known
};

// "bytes 100-199/200" -> 100; nullopt when it is not a byte range.
std::optional<std::uint64_t> range_start(const std::string& v) {
  const std::string t = text::lower(std::string(text::trim(v)));
  if (!t.starts_with("bytes ")) return std::nullopt;
  const std::string rest = t.substr(6);
  const auto dash = rest.find('-');
  if (dash == std::string::npos || dash == 0) return std::nullopt;
  try {
    std::size_t used = 0;
    const auto n = std::stoull(rest.substr(0, dash), &used);
    if (used != dash) return std::nullopt;
    return n;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string line(data, size * n);
  // A new status line (a redirect's target answering) forgets the last response's headers.
  if (line.starts_with("HTTP/")) t->content_range.clear();
  const auto colon = line.find(':');
  if (colon != std::string::npos && text::iequals(line.substr(0, colon), "content-range"))
    t->content_range = std::string(text::trim(line.substr(colon + 1)));
  return size * n;
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t bytes = size * n;
  if (!t->started) {
    t->started = true;
    long code = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 300) {
      t->discard = true;  // an error page is not firmware
    } else if (t->offset > 0 && code == 200) {
      // The server sends the whole file again: start the partial file over.
      if (::ftruncate(t->fd, 0) != 0 || ::lseek(t->fd, 0, SEEK_SET) != 0) {
        t->abort_reason = std::string("cannot start the file over: ") + std::strerror(errno);
        return 0;
      }
      t->offset = 0;
      t->restarted = true;
    } else if (t->offset > 0 && code == 206) {
      const auto start = range_start(t->content_range);
      if (!start || *start != t->offset) {
        t->abort_reason = "the server answered Range " + std::to_string(t->offset) +
                          "- with Content-Range '" + t->content_range + "'";
        return 0;
      }
    }
  }
  if (t->discard) return bytes;
  if (t->offset + t->written + bytes > t->max) {
    t->abort_reason = "more than " + std::to_string(t->max) + " bytes";
    return 0;
  }
  if (!write_all(t->fd, data, bytes)) {
    t->abort_reason = std::string("cannot write the partial file: ") + std::strerror(errno);
    return 0;
  }
  t->written += bytes;
  if (t->options->progress) t->options->progress(t->offset + t->written, t->total);
  return bytes;
}

bool http_url(const std::string& url) {
  const std::string l = text::lower(url);
  return l.starts_with("http://") || l.starts_with("https://");
}

std::uint64_t size_of(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

enum class Outcome { Complete, Retry, NextMirror };

// One attempt at one mirror; appends to `part`.
Outcome attempt(const std::string& url, const fs::path& part, std::uint64_t total,
                const FetchOptions& o, FetchAttempt& a) {
  Transfer t;
  t.offset = size_of(part);
  a.url = url;
  a.resumed_from = t.offset;
  t.fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (t.fd < 0) {
    a.result = std::string("cannot open ") + part.string() + ": " + std::strerror(errno);
    return Outcome::NextMirror;
  }
  t.max = o.max_size;
  t.options = &o;
  t.total = total;
  CURL* h = curl_easy_init();
  t.curl = h;
  if (!h) {
    ::close(t.fd);
    a.result = "curl_easy_init failed";
    return Outcome::NextMirror;
  }
  char err[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(o.stall.count()));
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(o.max_size));
  curl_easy_setopt(h, CURLOPT_USERAGENT, "labctl/0.1 (firmware fetch)");
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  // CURLOPT_RANGE rather than RESUME_FROM: libcurl then leaves a 200 answer (a server that
  // ignores ranges) to on_body, which starts the file over, instead of failing the transfer.
  const std::string range = std::to_string(t.offset) + "-";
  if (t.offset > 0) curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());
  const CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  ::fsync(t.fd);
  ::close(t.fd);
  a.http_status = code;
  a.received = t.written;
  const std::string why = err[0] ? std::string(err) : std::string(curl_easy_strerror(rc));
  if (t.restarted) a.result = "restarted (the server ignored Range): ";
  if (!t.abort_reason.empty()) {
    a.result += "stopped: " + t.abort_reason;
    // A bad range answer or an oversized file: this mirror's file is not to be trusted.
    std::error_code ec;
    fs::remove(part, ec);
    return Outcome::NextMirror;
  }
  if (code == 416 && t.offset > 0) {
    // Nothing left to send: the partial file may be complete; the checksum decides.
    a.result += "HTTP 416 (range not satisfiable): the partial file may be complete";
    return Outcome::Complete;
  }
  if (code >= 400) {
    a.result += "HTTP " + std::to_string(code);
    // Server errors may pass; a missing file does not come back.
    return code >= 500 ? Outcome::Retry : Outcome::NextMirror;
  }
  if (rc != CURLE_OK) {
    a.result += "interrupted after " + std::to_string(t.written) + " bytes: " + why;
    if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT ||
        rc == CURLE_FILESIZE_EXCEEDED || rc == CURLE_TOO_MANY_REDIRECTS)
      return Outcome::NextMirror;
    return Outcome::Retry;
  }
  if (code >= 300) {
    a.result += "HTTP " + std::to_string(code);
    return Outcome::NextMirror;
  }
  a.result += "complete (" + std::to_string(t.written) + " bytes received)";
  return Outcome::Complete;
}

}  // namespace

nlohmann::json to_json(const FetchAttempt& a) {
  return {{"url", a.url},
          {"resumed_from", a.resumed_from},
          {"http_status", a.http_status},
          {"received", a.received},
          {"result", a.result}};
}

Result<Fetched> download(const std::vector<std::string>& mirrors, const std::string& name,
                         const fs::path& dir, const std::string& expected_sha256,
                         std::optional<std::uint64_t> expected_size, const FetchOptions& o) {
  if (mirrors.empty())
    return fail(Errc::NotFound, name + ": the catalog lists no mirror for it; import it by hand");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(Errc::Internal, dir.string() + ": " + ec.message());
  fs::permissions(dir, fs::perms::owner_all, ec);
  const fs::path part = dir / (name + ".part");
  const fs::path done = dir / name;
  Fetched out;
  std::vector<std::string> report;
  Errc worst = Errc::NotFound;
  for (const auto& url : mirrors) {
    if (!http_url(url)) {
      report.push_back(url + ": not an http:// or https:// URL");
      worst = Errc::InvalidInput;
      continue;
    }
    bool progressed = true;
    for (int n = 1; n <= std::max(o.attempts, 1); ++n) {
      // A transfer cut after it brought bytes is resumed at once; one that brought nothing (a
      // server error, a refused connection) waits a little longer each time.
      if (n > 1 && !progressed) std::this_thread::sleep_for(o.backoff * (n - 1));
      FetchAttempt a;
      const Outcome r = attempt(url, part, expected_size.value_or(0), o, a);
      out.attempts.push_back(a);
      progressed = a.received > 0;
      if (r == Outcome::NextMirror) {
        report.push_back(url + ": " + a.result);
        if (a.http_status == 404 || a.http_status == 410) break;
        worst = Errc::Unreachable;
        break;
      }
      if (r == Outcome::Retry) {
        if (n == o.attempts) {
          report.push_back(url + ": " + a.result + " (gave up after " + std::to_string(n) +
                           " attempts)");
          worst = Errc::Unreachable;
        }
        continue;
      }
      // Complete: the size and checksum decide whether it is the file.
      auto sha = sha256_file(part);
      if (!sha) return fail(sha.error());
      const std::uint64_t size = size_of(part);
      std::string bad;
      if (expected_size && size != *expected_size)
        bad = std::to_string(size) + " bytes, the catalog gives " + std::to_string(*expected_size);
      else if (!expected_sha256.empty() && *sha != expected_sha256)
        bad = "sha256 " + *sha + ", expected " + expected_sha256;
      if (!bad.empty()) {
        fs::remove(part, ec);
        if (a.http_status == 416 && n < o.attempts) continue;  // a stale partial: start over
        report.push_back(url + ": " + bad + "; deleted, not imported");
        worst = Errc::VerifyMismatch;
        break;
      }
      fs::rename(part, done, ec);
      if (ec) return fail(Errc::Internal, done.string() + ": " + ec.message());
      out.file = done;
      out.sha256 = *sha;
      out.size = size;
      out.url = url;
      return out;
    }
  }
  return fail(worst, name + ": no mirror delivered it: " + text::join_list(report, "; "));
}

}  // namespace labctl::controller::firmware
