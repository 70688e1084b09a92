#include "plugins/supermicro_bmc/web_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/text.h"

namespace labctl::supermicro_bmc {

namespace {

// Anything a BMC answers that is bigger than this is not one of its pages.
constexpr std::size_t kMaxBody = 4u << 20;

struct Body {
  std::string data;
  bool too_big = false;
};

std::size_t collect(char* ptr, std::size_t size, std::size_t n, void* user) {
  auto* b = static_cast<Body*>(user);
  const std::size_t len = size * n;
  if (b->data.size() + len > kMaxBody) {
    b->too_big = true;
    return 0;
  }
  b->data.append(ptr, len);
  return len;
}

CURL* handle(void* p) {
  return static_cast<CURL*>(p);
}

}  // namespace

std::string WebEndpoint::base() const {
  return scheme + "://" + host + ":" + std::to_string(port);
}

struct WebSession::Transfer {
  curl_slist* headers = nullptr;
  curl_mime* mime = nullptr;
  Body body;
  const std::function<bool()>* cancelled = nullptr;
  std::function<void(std::uint64_t, std::uint64_t)> progress;
  bool aborted = false;
  ~Transfer() {
    if (headers) curl_slist_free_all(headers);
    if (mime) curl_mime_free(mime);
  }
};

namespace {

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t ultotal, curl_off_t ulnow) {
  auto* t = static_cast<WebSession::Transfer*>(user);
  if (t->cancelled && *t->cancelled && (*t->cancelled)()) {
    t->aborted = true;
    return 1;
  }
  if (t->progress && ultotal > 0)
    t->progress(static_cast<std::uint64_t>(ulnow), static_cast<std::uint64_t>(ultotal));
  return 0;
}

}  // namespace

WebSession::WebSession(WebEndpoint endpoint) : endpoint_(std::move(endpoint)) {
  curl_ = curl_easy_init();
  if (!curl_) return;
  CURL* h = handle(curl_);
  // The cookie engine, in memory: the session cookie lives as long as this object.
  curl_easy_setopt(h, CURLOPT_COOKIEFILE, "");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  if (!endpoint_.verify_tls) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

WebSession::~WebSession() {
  if (curl_) curl_easy_cleanup(handle(curl_));
}

void WebSession::add_secret(std::string s) {
  if (!s.empty()) secrets_.push_back(std::move(s));
}

std::vector<std::pair<std::string, std::string>> WebSession::cookies() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (!curl_) return out;
  curl_slist* list = nullptr;
  if (curl_easy_getinfo(handle(curl_), CURLINFO_COOKIELIST, &list) != CURLE_OK) return out;
  // Netscape format: domain, tailmatch, path, secure, expires, name, value (tab-separated).
  for (curl_slist* c = list; c; c = c->next) {
    auto fields = text::split(c->data, '\t');
    if (fields.size() >= 7) out.emplace_back(fields[5], fields[6]);
  }
  curl_slist_free_all(list);
  return out;
}

bool WebSession::has_cookie(const std::string& name) const {
  auto all = cookies();
  return std::any_of(all.begin(), all.end(),
                     [&](const auto& c) { return c.first == name && !c.second.empty(); });
}

void WebSession::forget_cookies() {
  if (curl_) curl_easy_setopt(handle(curl_), CURLOPT_COOKIELIST, "ALL");
}

std::string WebSession::redact(std::string text) const {
  std::vector<std::string> hide = secrets_;
  for (auto& c : cookies())
    if (c.second.size() >= 4) hide.push_back(c.second);
  for (const auto& s : hide)
    for (auto at = text.find(s); at != std::string::npos; at = text.find(s, at + 3))
      text.replace(at, s.size(), "***");
  return text;
}

namespace {
// The handshake failed because the peer closed or reset the connection (the kernel said so, or
// OpenSSL saw the stream end), rather than over what the peer said.
bool connection_dropped(CURL* h, const std::string& detail) {
  long os_errno = 0;
  curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
  if (os_errno == ECONNRESET || os_errno == EPIPE || os_errno == ECONNABORTED) return true;
  return detail.find("Connection reset") != std::string::npos ||
         detail.find("unexpected eof") != std::string::npos ||
         detail.find("SSL_ERROR_SYSCALL") != std::string::npos;
}
}  // namespace

Result<HttpAnswer> WebSession::perform(const std::string& what, Transfer& t,
                                       std::chrono::milliseconds timeout) {
  CURL* h = handle(curl_);
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t.body);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::max<std::int64_t>(timeout.count(), 1)));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::clamp<std::int64_t>(timeout.count(), 1, 10'000)));
  // Older ATEN firmware wants a Referer from its own origin; and no "Expect: 100-continue",
  // which Supermicro's own upload scripts turn off.
  const std::string referer = "Referer: " + endpoint_.base() + "/";
  t.headers = curl_slist_append(t.headers, referer.c_str());
  t.headers = curl_slist_append(t.headers, "Expect:");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, t.headers);
  t.cancelled = &cancelled_;
  const CURLcode rc = curl_easy_perform(h);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  const std::string where = what + " (" + endpoint_.base() + ")";
  std::string detail = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
  detail = redact(detail);
  if (rc == CURLE_OK) {
    HttpAnswer a;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
    a.body = std::move(t.body.data);
    return a;
  }
  switch (rc) {
    case CURLE_ABORTED_BY_CALLBACK:
      return fail(Errc::Cancelled, where + ": abandoned (cancelled)");
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
      return fail(Errc::Unreachable, where + ": " + detail);
    case CURLE_OPERATION_TIMEDOUT:
      return fail(Errc::Timeout, where + ": no answer within " + std::to_string(timeout.count()) +
                                     " ms (" + detail + ")");
    case CURLE_WRITE_ERROR:
      if (t.body.too_big)
        return fail(Errc::InvalidInput, where + ": the answer is over 4 MiB, not a BMC page");
      return fail(Errc::Internal, where + ": " + detail);
    case CURLE_SSL_CONNECT_ERROR:
      // A BMC that is restarting drops its connections, also in the middle of a handshake:
      // that is a BMC going away, not a certificate to accept.
      if (connection_dropped(h, detail))
        return fail(
            Errc::Unreachable,
            where + ": the connection was closed during the TLS handshake (" + detail + ")");
      [[fallthrough]];
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
      return fail(Errc::PreconditionFailed,
                  where + ": TLS: " + detail +
                      " (a BMC's own certificate is self-signed: set web.accept-self-signed: true "
                      "in the inventory to accept it, or use web.scheme: http)");
    default:
      return fail(Errc::Unreachable, where + ": " + detail);
  }
}

Result<HttpAnswer> WebSession::get(const std::string& path, std::chrono::milliseconds timeout,
                                   const HttpHeaders& headers) {
  if (!curl_) return fail(Errc::Internal, "curl_easy_init failed");
  CURL* h = handle(curl_);
  const std::string url = endpoint_.base() + path;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  Transfer t;
  for (const auto& [k, v] : headers)
    t.headers = curl_slist_append(t.headers, (k + ": " + v).c_str());
  return perform("GET " + path, t, timeout);
}

Result<HttpAnswer> WebSession::post_form(const std::string& path, const std::string& body,
                                         std::chrono::milliseconds timeout,
                                         const HttpHeaders& headers) {
  if (!curl_) return fail(Errc::Internal, "curl_easy_init failed");
  CURL* h = handle(curl_);
  const std::string url = endpoint_.base() + path;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body.c_str());
  Transfer t;
  t.headers = curl_slist_append(t.headers,
                                "Content-Type: application/x-www-form-urlencoded; charset=UTF-8");
  for (const auto& [k, v] : headers)
    t.headers = curl_slist_append(t.headers, (k + ": " + v).c_str());
  return perform("POST " + path, t, timeout);
}

Result<HttpAnswer> WebSession::post_multipart(
    const std::string& path, const HttpHeaders& fields, const FilePart& file,
    std::chrono::milliseconds timeout, const HttpHeaders& headers,
    std::function<void(std::uint64_t, std::uint64_t)> progress) {
  if (!curl_) return fail(Errc::Internal, "curl_easy_init failed");
  CURL* h = handle(curl_);
  const std::string url = endpoint_.base() + path;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  Transfer t;
  t.progress = std::move(progress);
  t.mime = curl_mime_init(h);
  for (const auto& [name, value] : fields) {
    curl_mimepart* part = curl_mime_addpart(t.mime);
    curl_mime_name(part, name.c_str());
    curl_mime_data(part, value.data(), value.size());
  }
  curl_mimepart* part = curl_mime_addpart(t.mime);
  curl_mime_name(part, file.field.c_str());
  curl_mime_filename(part, file.filename.c_str());
  curl_mime_type(part, file.content_type.c_str());
  curl_mime_data(part, reinterpret_cast<const char*>(file.data.data()), file.data.size());
  curl_easy_setopt(h, CURLOPT_MIMEPOST, t.mime);
  for (const auto& [k, v] : headers)
    t.headers = curl_slist_append(t.headers, (k + ": " + v).c_str());
  auto r = perform("POST " + path, t, timeout);
  curl_easy_setopt(h, CURLOPT_MIMEPOST, nullptr);
  if (!r && r.error().code() != Errc::Cancelled) {
    curl_off_t sent = 0;
    curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &sent);
    return fail(Error(r.error().code(), r.error().message() + "; " + std::to_string(sent) +
                                            " bytes of the request were sent (the image is " +
                                            std::to_string(file.data.size()) + " bytes)"));
  }
  return r;
}

}  // namespace labctl::supermicro_bmc
