#include "plugins/supermicro_bmc/web_flasher.h"

#include <openssl/evp.h>

#include <vector>

namespace labctl::supermicro_bmc {

namespace {

std::string base64(const std::string& s) {
  std::vector<unsigned char> out(4 * ((s.size() + 2) / 3) + 1);
  const int n = EVP_EncodeBlock(out.data(), reinterpret_cast<const unsigned char*>(s.data()),
                                static_cast<int>(s.size()));
  return std::string(reinterpret_cast<const char*>(out.data()), static_cast<std::size_t>(n));
}

std::string status_text(const HttpAnswer& a) {
  return "HTTP " + std::to_string(a.status);
}

}  // namespace

WebFlasher::WebFlasher(FlashProfile profile, WebEndpoint endpoint, std::function<bool()> cancelled)
    : profile_(std::move(profile)), session_(std::make_unique<WebSession>(std::move(endpoint))) {
  session_->set_cancel(std::move(cancelled));
}

Error WebFlasher::expired(const std::string& what) {
  logged_in_ = false;
  ended_ = true;
  return Error(Errc::AuthFailed,
               what + ": the BMC answered with its login page (the web session ended)");
}

HttpHeaders WebFlasher::csrf_headers() const {
  HttpHeaders h;
  if (!csrf_.empty())
    for (const auto& name : profile_.csrf.headers)
      h.emplace_back(name, csrf_);
  return h;
}

Result<HttpAnswer> WebFlasher::post(
    const std::string& what, const std::string& path, const FormFields& form,
    std::chrono::milliseconds timeout,
    const std::vector<std::pair<std::string, std::string>>& values) {
  auto a = session_->post_form(path, encode_form(form, values), timeout, csrf_headers());
  if (!a) return fail(std::move(a.error()).context(what));
  if (a->status != 200)
    return fail(Errc::PreconditionFailed,
                what + ": the BMC answered " + status_text(*a) + " to POST " + path);
  return a;
}

Status WebFlasher::login(const std::string& user, const std::string& password) {
  session_->forget_cookies();
  logged_in_ = false;
  ended_ = false;
  csrf_.clear();
  session_->add_secret(password);
  const bool b64 = profile_.login.base64_credentials;
  if (b64) session_->add_secret(base64(password));
  auto a = session_->post_form(
      profile_.login.path,
      encode_form(profile_.login.form, {{"user", b64 ? base64(user) : user},
                                        {"password", b64 ? base64(password) : password}}),
      profile_.timings.request);
  if (!a) return fail(std::move(a.error()).context("web login"));
  if (a->status != 200)
    return fail(Errc::PreconditionFailed, "web login: the BMC answered " + status_text(*a) +
                                              " to POST " + profile_.login.path);
  if (!login_succeeded(profile_, a->body) || !session_->has_cookie(profile_.login.session_cookie))
    return fail(Errc::AuthFailed, "web login as " + user + ": refused by the BMC (no " +
                                      profile_.login.session_cookie +
                                      " session: wrong user or password)");
  logged_in_ = true;
  if (!profile_.csrf.page.empty()) {
    // Older firmware has no token; a page without one is not an error.
    auto page = session_->get(profile_.csrf.page, profile_.timings.request);
    if (!page) return fail(std::move(page.error()).context("web login: CSRF token page"));
    csrf_ = find_csrf_token(profile_, page->body);
    session_->add_secret(csrf_);
  }
  return {};
}

void WebFlasher::logout() {
  if (logged_in_ && !profile_.logout_path.empty())
    (void)session_->get(profile_.logout_path, std::chrono::milliseconds(3000));
  session_->forget_cookies();
  logged_in_ = false;
  csrf_.clear();
}

Result<LockState> WebFlasher::lock() {
  if (profile_.lock.path.empty()) return LockState::Granted;
  auto a = post("upload lock", profile_.lock.path, profile_.lock.form, profile_.timings.request);
  if (!a) return fail(a.error());
  auto l = parse_lock_answer(profile_, a->body);
  if (l.kind == AnswerKind::SessionExpired) return fail(expired("upload lock"));
  if (l.state == LockState::Unknown)
    return fail(
        Errc::PreconditionFailed,
        "upload lock: the BMC's answer is not the profile's " + profile_.lock.answer.element +
            (l.value.empty() ? ""
                             : " (" + profile_.lock.answer.attribute + "=\"" + l.value + "\")") +
            ": is '" + profile_.name + "' the right profile for this firmware?");
  return l.state;
}

Status WebFlasher::upload(const std::string& filename, std::span<const std::uint8_t> image,
                          std::function<void(std::uint64_t, std::uint64_t)> progress) {
  HttpHeaders fields = profile_.upload.fields;
  if (!csrf_.empty() && !profile_.csrf.field.empty())
    fields.emplace_back(profile_.csrf.field, csrf_);
  WebSession::FilePart file{profile_.upload.file_field, filename, profile_.upload.content_type,
                            image};
  auto a = session_->post_multipart(profile_.upload.path, fields, file, profile_.timings.upload,
                                    csrf_headers(), std::move(progress));
  if (!a) return fail(std::move(a.error()).context("upload"));
  if (a->status != 200)
    return fail(Errc::PreconditionFailed, "upload: the BMC answered " + status_text(*a) +
                                              " to POST " + profile_.upload.path + " (field '" +
                                              profile_.upload.file_field + "')");
  // What the BMC made of the upload is the version check's to say (a session that ended
  // shows there as the login page).
  return {};
}

Result<VersionAnswer> WebFlasher::uploaded_version() {
  auto a = post("version check", profile_.version_check.path, profile_.version_check.form,
                profile_.timings.request);
  if (!a) return fail(a.error());
  auto v = parse_version_answer(profile_, a->body);
  if (v.kind == AnswerKind::SessionExpired) return fail(expired("version check"));
  return v;
}

Status WebFlasher::start(bool preserve_config) {
  const auto& s = profile_.start;
  auto a = session_->post_form(
      s.path,
      encode_form(s.form, {{"preserve", preserve_config ? s.preserve_value : s.reset_value}}),
      s.answers ? profile_.timings.request : profile_.timings.start_wait, csrf_headers());
  if (!a) {
    // The BMC starts flashing and leaves this request open (bmclib sees the same): silence, or a
    // connection it drops, is what a start looks like. Whether it started, the progress says.
    if (!s.answers && (a.error().code() == Errc::Timeout || a.error().code() == Errc::Unreachable))
      return {};
    return fail(std::move(a.error()).context("start"));
  }
  if (a->status != 200)
    return fail(Errc::PreconditionFailed,
                "start: the BMC answered " + status_text(*a) + " to POST " + s.path);
  if (parse_progress_answer(profile_, a->body).kind == AnswerKind::SessionExpired &&
      !login_succeeded(profile_, a->body))
    return fail(expired("start"));
  return {};
}

Result<ProgressAnswer> WebFlasher::progress() {
  auto a =
      post("progress", profile_.progress.path, profile_.progress.form, profile_.timings.request);
  if (!a) return fail(a.error());
  auto p = parse_progress_answer(profile_, a->body);
  if (p.kind == AnswerKind::SessionExpired) return fail(expired("progress"));
  return p;
}

bool WebFlasher::answers(std::chrono::milliseconds timeout) {
  // Any HTTP answer counts; only a refused or silent connection means the web server is down.
  auto a = session_->get(profile_.login.path, timeout);
  return a.has_value();
}

}  // namespace labctl::supermicro_bmc
