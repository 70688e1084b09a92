// Flasher profiles: how one generation of Supermicro BMC web interface takes a firmware update,
// as data (plugins/supermicro_bmc/profiles/*.yaml, compiled in; or a file the operator names),
// and the parsers for what the BMC answers at each stage.
//
// A profile names the endpoints, the form and multipart field names, the order of the sequence
// (login -> lock -> upload -> version check -> start -> poll progress), the preserve-config field
// and its values, how to read each answer, and the timings. `confirmed: false` marks a profile
// whose sequence has not been seen on a real board: labctl warns and refuses to use it unless the
// operator accepts that (README.md, "Firmware").
//
// Nothing here does I/O; the answer parsers take untrusted bytes from the network and are fuzzed
// (tests/fuzz/bmc_web_fuzz.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "inventory/diagnostics.h"

namespace labctl::supermicro_bmc {

// An urlencoded form, in the order the fields are sent. Values may hold placeholders:
// {user} and {password} (login only), {preserve} (start only).
using FormFields = std::vector<std::pair<std::string, std::string>>;

// Reads one value out of an XML answer: the first element named `element` anywhere in the
// document, its `attribute` (or its text when `attribute` is empty).
struct XmlPick {
  std::string element;
  std::string attribute;
};

struct FlashProfile {
  std::string name;     // "x10-x11"
  std::string summary;  // one line for plans and errors
  bool confirmed = false;
  std::vector<std::string> sources;  // where the sequence comes from
  std::vector<std::string> guesses;  // the parts nobody has seen on a real board
  std::string origin;                // "built-in" or the file it was read from

  struct Login {
    std::string path;
    FormFields form;
    bool base64_credentials = false;   // X11 firmware: name and pwd base64-encoded
    std::string session_cookie;        // "SID"
    std::vector<std::string> success;  // substrings of a successful login's answer (any one)
  } login;
  std::string logout_path;  // "" when the profile has none

  // CSRF token of newer X11 firmware: read from a page after login, sent back as headers and as
  // a multipart field. Absent from older firmware; optional even when the profile has it.
  struct Csrf {
    std::string page;    // "" = the profile has no CSRF step
    std::string marker;  // the token follows this text, up to the next double quote
    std::vector<std::string> headers;
    std::string field;  // multipart field name for the upload, "" for none
  } csrf;

  struct Lock {
    std::string path;  // "" = this generation has no upload lock
    FormFields form;
    XmlPick answer;
    std::string granted, held;  // the answer's value when the lock is ours / another session's
  } lock;

  struct Upload {
    std::string path;
    std::string file_field;  // "fw_image"
    std::string content_type = "application/octet-stream";
    FormFields fields;  // further multipart fields, before the file
  } upload;

  struct VersionCheck {
    std::string path;
    FormFields form;
    XmlPick answer;
    std::string format;  // "MMmm" (0250 = 2.50), "MMmmbb" (017409 = 1.74 build 09), "dotted"
  } version_check;

  struct Start {
    std::string path;
    FormFields form;
    std::string preserve_value;  // {preserve} when the configuration is kept
    std::string reset_value;     // {preserve} for a reset to factory settings
    bool answers = false;        // false: the request is left unanswered while the BMC flashes
  } start;

  struct Progress {
    std::string path;
    FormFields form;
    XmlPick answer;  // the percentage
  } progress;

  struct Timings {
    std::chrono::milliseconds request{30'000};     // any request but the upload
    std::chrono::milliseconds upload{600'000};     // the whole upload
    std::chrono::milliseconds start_wait{10'000};  // for the start request's answer
    std::chrono::milliseconds poll_interval{2'000};
    std::chrono::milliseconds flash{900'000};    // start to 100% (or the BMC going away)
    std::chrono::milliseconds offline{300'000};  // after 100%, until the BMC goes away
    std::chrono::milliseconds online{600'000};   // until it answers IPMI again
    std::chrono::milliseconds session{600'000};  // an abandoned session (and its lock) expires
  } timings;
};

// Parses a profile; every problem goes to `diags` with its position in `file`. nullopt when
// there was any error.
std::optional<FlashProfile> parse_flash_profile(const std::string& text, const std::string& file,
                                                inventory::Diagnostics& diags);

// The profiles compiled into labctl (profiles/*.yaml), by name.
std::vector<std::string> builtin_profile_names();
Result<FlashProfile> builtin_profile(std::string_view name);
// A profile from a file (an operator's own capture of a board's sequence).
Result<FlashProfile> load_profile_file(const std::string& path);

// The form body, urlencoded, with placeholders replaced. `values` maps placeholder names
// ("user") to values; an unknown placeholder is left out (profiles are checked when parsed).
std::string encode_form(const FormFields& form,
                        const std::vector<std::pair<std::string, std::string>>& values);

// --- answers ------------------------------------------------------------------------------

// What an answer is when it is not the expected XML: the web server's login page or another
// HTML page (a session that expired or was never valid), or something else.
enum class AnswerKind { Xml, SessionExpired, Unexpected };

// Whether a login answer says the login worked.
bool login_succeeded(const FlashProfile& p, std::string_view body);

// The CSRF token in a page, "" when there is none.
std::string find_csrf_token(const FlashProfile& p, std::string_view page);

enum class LockState { Granted, Held, Unknown };
struct LockAnswer {
  AnswerKind kind = AnswerKind::Unexpected;
  LockState state = LockState::Unknown;
  std::string value;  // the attribute as given, for messages
};
LockAnswer parse_lock_answer(const FlashProfile& p, std::string_view body);

struct VersionAnswer {
  AnswerKind kind = AnswerKind::Unexpected;
  std::string raw;      // as the BMC gave it ("0250")
  std::string version;  // in the BMC family's scheme ("2.50"); "" when raw does not fit the format
};
VersionAnswer parse_version_answer(const FlashProfile& p, std::string_view body);
// "0250" -> "2.50" for "MMmm", "017409" -> "1.74" for "MMmmbb", "2.50" -> "2.50" for "dotted";
// nullopt when the text does not fit the format.
std::optional<std::string> version_from(std::string_view format, std::string_view raw);

struct ProgressAnswer {
  AnswerKind kind = AnswerKind::Unexpected;
  std::optional<int> percent;  // 0..100 when the answer carries one
};
ProgressAnswer parse_progress_answer(const FlashProfile& p, std::string_view body);

// What the plan and the log say about a profile: "x8-aten-web (built-in, UNCONFIRMED: ...)".
std::string describe(const FlashProfile& p);

}  // namespace labctl::supermicro_bmc
