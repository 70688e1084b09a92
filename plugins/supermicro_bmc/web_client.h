// An HTTP(S) session with a BMC's web interface, over libcurl: one connection kept alive, the
// session's cookies in memory only (never written anywhere), urlencoded forms, multipart file
// uploads through curl's mime API, a time bound on every request, and TLS verification that is
// turned off only when the inventory says the BMC has a self-signed certificate.
//
// Nothing it sends or receives is logged. Error messages name the request and what went wrong,
// never a cookie, a password or a body that might hold them (redact() for anything quoted).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace labctl::supermicro_bmc {

struct WebEndpoint {
  std::string scheme = "https";  // "https" or "http"
  std::string host;
  int port = 443;
  bool verify_tls = true;    // false: a self-signed certificate is accepted (inventory's choice)
  std::string base() const;  // "https://192.168.0.20:443"
};

struct HttpAnswer {
  long status = 0;
  std::string body;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

class WebSession {
 public:
  explicit WebSession(WebEndpoint endpoint);
  ~WebSession();
  WebSession(const WebSession&) = delete;
  WebSession& operator=(const WebSession&) = delete;

  const WebEndpoint& endpoint() const { return endpoint_; }
  // Checked between transfer chunks: a long request is abandoned (Cancelled) when it says so.
  void set_cancel(std::function<bool()> cancelled) { cancelled_ = std::move(cancelled); }
  // Strings that must never appear in a message (passwords); cookie values are added by
  // themselves.
  void add_secret(std::string s);

  Result<HttpAnswer> get(const std::string& path, std::chrono::milliseconds timeout,
                         const HttpHeaders& headers = {});
  Result<HttpAnswer> post_form(const std::string& path, const std::string& body,
                               std::chrono::milliseconds timeout, const HttpHeaders& headers = {});

  struct FilePart {
    std::string field;     // the form field name ("fw_image")
    std::string filename;  // as a browser would send it
    std::string content_type;
    std::span<const std::uint8_t> data;
  };
  // multipart/form-data: `fields` first, then the file. `progress(sent, total)` after each chunk.
  Result<HttpAnswer> post_multipart(
      const std::string& path, const HttpHeaders& fields, const FilePart& file,
      std::chrono::milliseconds timeout, const HttpHeaders& headers = {},
      std::function<void(std::uint64_t, std::uint64_t)> progress = {});

  // Whether the session holds a cookie of that name (its value stays inside).
  bool has_cookie(const std::string& name) const;
  // Drops every cookie: the next login starts a new session.
  void forget_cookies();
  // `text` with every cookie value and registered secret replaced by "***".
  std::string redact(std::string text) const;

  // One request's buffers (public for libcurl's C callbacks only).
  struct Transfer;

 private:
  Result<HttpAnswer> perform(const std::string& what, Transfer& t,
                             std::chrono::milliseconds timeout);
  std::vector<std::pair<std::string, std::string>> cookies() const;

  WebEndpoint endpoint_;
  void* curl_ = nullptr;  // CURL*
  std::function<bool()> cancelled_;
  std::vector<std::string> secrets_;
};

}  // namespace labctl::supermicro_bmc
