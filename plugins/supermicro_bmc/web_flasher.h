// One web session with a BMC that follows a flasher profile: login, the upload lock, the upload,
// the BMC's version check of what was uploaded, the start of the flash and its progress. Each
// call is one request of the sequence and says exactly what the BMC answered; deciding what to do
// next (waiting for a lock, logging in again, giving up) is the caller's (flash.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/error.h"
#include "plugins/supermicro_bmc/web_client.h"
#include "plugins/supermicro_bmc/web_profile.h"

namespace labctl::supermicro_bmc {

class WebFlasher {
 public:
  WebFlasher(FlashProfile profile, WebEndpoint endpoint, std::function<bool()> cancelled);

  const FlashProfile& profile() const { return profile_; }
  const WebEndpoint& endpoint() const { return session_->endpoint(); }
  bool logged_in() const { return logged_in_; }
  // The last request found the session gone (the BMC answered with its login page).
  bool session_ended() const { return ended_; }
  // What a long request checks to be abandoned; the caller's context changes per step.
  void set_cancel(std::function<bool()> cancelled) { session_->set_cancel(std::move(cancelled)); }

  // A new session (cookies of an old one are dropped). AuthFailed when the BMC refuses the login.
  Status login(const std::string& user, const std::string& password);
  // Best effort; the session is forgotten either way.
  void logout();

  // The firmware upload lock: Granted, or Held by another session. Profiles without a lock
  // always get Granted. Errors: the session ended (AuthFailed), no answer, an answer that is not
  // the profile's.
  Result<LockState> lock();
  // multipart upload of the image; `progress(sent, total)`.
  Status upload(const std::string& filename, std::span<const std::uint8_t> image,
                std::function<void(std::uint64_t, std::uint64_t)> progress);
  // What the BMC reads from the uploaded image: its version in the family's scheme.
  Result<VersionAnswer> uploaded_version();
  // Starts the flash. The BMC may never answer this request: waiting `start_wait` without an
  // answer is not an error (the caller confirms the start from the progress).
  Status start(bool preserve_config);
  Result<ProgressAnswer> progress();
  // Whether the web server accepts a connection and answers at all within `timeout`.
  bool answers(std::chrono::milliseconds timeout);

 private:
  Result<HttpAnswer> post(const std::string& what, const std::string& path, const FormFields& form,
                          std::chrono::milliseconds timeout,
                          const std::vector<std::pair<std::string, std::string>>& values = {});
  HttpHeaders csrf_headers() const;
  // An answer that is the login page: the session is gone.
  Error expired(const std::string& what);

  FlashProfile profile_;
  std::unique_ptr<WebSession> session_;
  bool logged_in_ = false;
  bool ended_ = false;
  std::string csrf_;  // never printed
};

}  // namespace labctl::supermicro_bmc
