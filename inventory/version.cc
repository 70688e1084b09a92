#include "inventory/version.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include "common/text.h"

namespace labctl::inventory {
namespace {

// Longer version texts are rejected before parsing: no firmware version is this long, and it keeps
// messages and keys small whatever a fuzzer or a broken device hands us.
constexpr std::size_t kMaxTextLength = 128;

constexpr std::string_view kCiscoForm =
    "a Cisco load id like SCCP11.8-5-2S or SIP11.9-4-2SR1-1S, a file-name version like "
    "8-5-2TH1-9, or a display version like 8.5(2) or 9.4(2)SR1";
constexpr std::string_view kMajorMinorForm =
    "MAJOR.MM like 2.50: major 1-127, then a minor of exactly two digits";
constexpr std::string_view kDottedForm = "numbers separated by dots, like 1.04 or 1.2.3";
constexpr std::string_view kEsxiForm =
    "a version like 6.5.0, 6.5.0 build 4564106, 4.1.0-260247 or ESXi 4.1.0 build-260247";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Trims and collapses runs of whitespace into one space.
std::string normalise(std::string_view in) {
  std::string out;
  bool space = false;
  for (char c : text::trim(in)) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = true;
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string quoted(std::string_view s) {
  constexpr std::size_t kShown = 40;
  if (s.size() <= kShown) return "'" + std::string(s) + "'";
  return "'" + std::string(s.substr(0, kShown)) + "...'";
}

// Reads digits at the front of a cursor.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}

  bool done() const { return pos_ >= s_.size(); }
  std::size_t pos() const { return pos_; }
  std::string_view rest() const { return s_.substr(pos_); }
  char peek(std::size_t ahead = 0) const {
    return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : '\0';
  }
  void skip(std::size_t n) { pos_ = std::min(s_.size(), pos_ + n); }
  bool eat(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  // Case-insensitive literal.
  bool eat_word(std::string_view w) {
    if (!text::iequals(s_.substr(pos_, w.size()), w)) return false;
    pos_ += w.size();
    return true;
  }
  // A run of decimal digits as a non-negative number. nullopt with `error` set when there are no
  // digits or the number does not fit.
  std::optional<std::int64_t> number(std::string& error) {
    std::size_t end = pos_;
    while (end < s_.size() && is_digit(s_[end]))
      ++end;
    if (end == pos_) {
      error = done() ? "expected a number at the end" : "expected a number at " + where();
      return std::nullopt;
    }
    std::int64_t value = 0;
    auto [ptr, ec] = std::from_chars(s_.data() + pos_, s_.data() + end, value);
    if (ec != std::errc() || ptr != s_.data() + end) {
      error = "number " + quoted(s_.substr(pos_, end - pos_)) + " is too large";
      return std::nullopt;
    }
    pos_ = end;
    return value;
  }
  std::string where() const {
    return "'" + std::string(1, s_[pos_]) + "' (position " + std::to_string(pos_ + 1) + ")";
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

Result<Version> invalid(VersionScheme scheme, std::string_view text, std::string_view detail,
                        std::string_view form) {
  return fail(Errc::InvalidInput, "invalid " + std::string(scheme_name(scheme)) + " version " +
                                      quoted(text) + ": " + std::string(detail) + " (expected " +
                                      std::string(form) + ")");
}

// Cisco load ids.
//
// Accepted spellings, all case-insensitive:
//   [PROTO[MODEL].]MAJ-MIN-MAINT[SUFFIX]   SCCP11.8-5-2S, SIP11.9-4-2SR1-1S, 8-5-2TH1-9, 9-4-2ES9
//   [PROTO[MODEL] ]MAJ.MIN(MAINT)[SUFFIX]  8.5(2), 9.4(2)SR1, SCCP 8.5(2) (what display() prints)
// PROTO is SCCP or SIP; MODEL is the model digits of a load id (11 for the 7906/7911), not kept.
// SUFFIX is any of, each at most once:
//   SRn     service release n                        counts: 9.4(2) < 9.4(2)SR1 < 9.4(2)SR2
//   SRn-b   service release n, build b                counts: 9.4(2)SR1-1 < 9.4(2)SR1-2
//   -b      build b of the base release               counts
//   ESn[-b] engineering special (internal build tag)  ignored, number included
//   THn[-b] internal build tag                        ignored, number included
//   S       trailing "signed" marker of a load id     ignored
// Key: major, minor, maintenance, service release (none = 0), build (none = 0).
//
// Why ES/TH (with their "-b") are ignored: they name the internal build a release was cut from,
// not a newer release. The bundle of load SCCP11.8-5-2S (cmterm-...-sccp.8-5-2.cop.sgn) ships
// jar11sccp.8-5-2TH1-9.sbn: both spellings are the same firmware, so 8-5-2TH1-9, 8.5(2) and
// SCCP11.8-5-2S compare equal. The price: file names do not carry the service release, so
// 9-4-2ES9 (the files of SIP11.9-4-2SR1-1S) compares equal to 9.4(2), not 9.4(2)SR1. File-name
// versions identify the base release only; the load id (from the .loads name) is authoritative.
Result<Version> parse_cisco(std::string_view text) {
  const auto scheme = VersionScheme::CiscoLoad;
  Version v{scheme, std::string(text), {}, ""};
  Cursor c(text);
  std::string err;
  auto bad = [&](std::string_view detail) { return invalid(scheme, text, detail, kCiscoForm); };

  if (c.eat_word("sccp")) {
    v.protocol = "sccp";
  } else if (c.eat_word("sip")) {
    v.protocol = "sip";
  }
  if (!v.protocol.empty()) {
    while (is_digit(c.peek()))
      c.skip(1);  // model digits
    if (!c.eat('.') && !c.eat(' '))
      return bad("the protocol and model must be followed by '.' (SCCP11.8-5-2S) or a space");
  }

  std::int64_t major = 0, minor = 0, maint = 0, sr = 0, build = 0;
  auto num = [&](std::int64_t& out) {
    auto n = c.number(err);
    if (n) out = *n;
    return n.has_value();
  };
  if (!num(major)) return bad(err);
  if (c.eat('-')) {
    if (!num(minor)) return bad(err);
    if (!c.eat('-')) return bad("expected '-' and the maintenance number after the minor");
    if (!num(maint)) return bad(err);
  } else if (c.eat('.')) {
    if (!num(minor)) return bad(err);
    if (!c.eat('(')) return bad("expected '(' and the maintenance number after the minor");
    if (!num(maint)) return bad(err);
    if (!c.eat(')')) return bad("expected ')' after the maintenance number");
  } else {
    return bad(c.done() ? "missing minor and maintenance numbers"
                        : "expected '-' or '.' after the major number, found " + c.where());
  }

  bool seen_sr = false, seen_build = false, seen_tag = false;
  while (!c.done()) {
    if (c.rest().size() == 1 && (c.peek() == 'S' || c.peek() == 's')) {
      c.skip(1);  // signed marker
    } else if ((c.peek() == 'S' || c.peek() == 's') && is_digit(c.peek(2)) && c.eat_word("sr")) {
      if (seen_sr) return bad("more than one service release");
      seen_sr = true;
      if (!num(sr)) return bad(err);
      if (c.peek() == '-' && is_digit(c.peek(1))) {
        c.skip(1);
        if (!num(build)) return bad(err);
        seen_build = true;
      }
    } else if (c.eat_word("es") || c.eat_word("th")) {
      if (seen_tag) return bad("more than one ES/TH build tag");
      seen_tag = true;
      std::int64_t ignored = 0;
      if (!num(ignored)) return bad(err);
      if (c.peek() == '-' && is_digit(c.peek(1))) {
        c.skip(1);
        if (!num(ignored)) return bad(err);
      }
    } else if (c.peek() == '-' && is_digit(c.peek(1))) {
      if (seen_build || seen_sr || seen_tag) return bad("unexpected build number at " + c.where());
      c.skip(1);
      if (!num(build)) return bad(err);
      seen_build = true;
    } else {
      return bad("unexpected " + c.where());
    }
  }
  v.key = {major, minor, maint, sr, build};
  return v;
}

// BMC firmware as IPMI Get Device ID reports it: major (7 bits), minor (BCD, printed "%02x").
Result<Version> parse_major_minor(std::string_view text) {
  const auto scheme = VersionScheme::MajorMinor;
  auto bad = [&](std::string_view detail) {
    return invalid(scheme, text, detail, kMajorMinorForm);
  };
  Cursor c(text);
  std::string err;
  auto major = c.number(err);
  if (!major) return bad(err);
  if (*major < 1 || *major > 127) return bad("major " + std::to_string(*major) + " is not 1-127");
  if (!c.eat('.')) {
    return bad(c.done() ? "missing '.' and two-digit minor" : "expected '.' at " + c.where());
  }
  std::string_view minor = c.rest();
  std::size_t digits = 0;
  while (digits < minor.size() && is_digit(minor[digits]))
    ++digits;
  if (digits != minor.size() || digits == 0) {
    return bad(digits == 0 ? "missing minor" : "unexpected characters after the minor");
  }
  if (digits != 2) {
    return bad(
        "the minor must be exactly two digits: the BMC reports it as BCD and ipmitool "
        "prints it with %02x, so 2.5 is ambiguous; write 2.05 or 2.50");
  }
  std::int64_t m = (minor[0] - '0') * 10 + (minor[1] - '0');
  Version v{scheme, std::string(text), {*major, m}, ""};
  return v;
}

// Parses 1..max_parts numeric components separated by dots, leaving the cursor after them.
std::optional<std::vector<std::int64_t>> dotted_parts(Cursor& c, std::size_t max_parts,
                                                      std::string& err) {
  std::vector<std::int64_t> parts;
  while (true) {
    auto n = c.number(err);
    if (!n) return std::nullopt;
    parts.push_back(*n);
    if (c.peek() != '.') break;
    if (parts.size() == max_parts) {
      err = "more than " + std::to_string(max_parts) + " components";
      return std::nullopt;
    }
    c.skip(1);
  }
  return parts;
}

// Dotted numeric versions compare numerically per component with missing components as 0:
// "1.04" == "1.4" and "1" == "1.0". Drive firmware revisions are four INQUIRY characters that
// vendors print with leading zeros ("1.04"); a leading zero never makes a different release.
// The key drops trailing zero components so equal versions have equal keys.
Result<Version> parse_dotted(std::string_view text) {
  const auto scheme = VersionScheme::Dotted;
  auto bad = [&](std::string_view detail) { return invalid(scheme, text, detail, kDottedForm); };
  Cursor c(text);
  std::string err;
  auto parts = dotted_parts(c, 16, err);
  if (!parts) return bad(err);
  if (!c.done()) return bad("unexpected " + c.where());
  while (!parts->empty() && parts->back() == 0)
    parts->pop_back();
  return Version{scheme, std::string(text), std::move(*parts), ""};
}

// ESXi: up to three dotted components (missing ones are 0), then an optional build number.
// Key: major, minor, update, build (none = 0).
Result<Version> parse_esxi(std::string_view text) {
  const auto scheme = VersionScheme::Esxi;
  auto bad = [&](std::string_view detail) { return invalid(scheme, text, detail, kEsxiForm); };
  Cursor c(text);
  std::string err;
  c.eat_word("vmware ");
  c.eat_word("esxi ");
  auto parts = dotted_parts(c, 3, err);
  if (!parts) return bad(err);
  parts->resize(3, 0);
  std::int64_t build = 0;
  if (!c.done()) {
    if (c.eat(' ')) {
      if (!c.eat_word("build")) return bad("expected 'build' at " + c.where());
      if (!c.eat(' ')) c.eat('-');
    } else if (!c.eat('-')) {
      return bad("unexpected " + c.where());
    }
    auto b = c.number(err);
    if (!b) return bad(err);
    build = *b;
    if (!c.done()) return bad("unexpected " + c.where());
  }
  parts->push_back(build);
  return Version{scheme, std::string(text), std::move(*parts), ""};
}

}  // namespace

std::string_view scheme_name(VersionScheme s) {
  switch (s) {
    case VersionScheme::CiscoLoad:
      return "cisco-load";
    case VersionScheme::MajorMinor:
      return "major-minor";
    case VersionScheme::Dotted:
      return "dotted";
    case VersionScheme::Esxi:
      return "esxi";
  }
  return "dotted";
}

Result<VersionScheme> scheme_from_name(std::string_view name) {
  for (auto s : {VersionScheme::CiscoLoad, VersionScheme::MajorMinor, VersionScheme::Dotted,
                 VersionScheme::Esxi}) {
    if (scheme_name(s) == name) return s;
  }
  return fail(Errc::InvalidInput, "unknown version scheme " + quoted(name) +
                                      " (expected cisco-load, major-minor, dotted or esxi)");
}

Result<Version> parse_version(VersionScheme scheme, std::string_view text) {
  std::string norm = normalise(text);
  if (norm.empty()) {
    return fail(Errc::InvalidInput, "empty " + std::string(scheme_name(scheme)) + " version");
  }
  if (norm.size() > kMaxTextLength) {
    return invalid(scheme, norm, "longer than " + std::to_string(kMaxTextLength) + " characters",
                   scheme_name(scheme));
  }
  switch (scheme) {
    case VersionScheme::CiscoLoad:
      return parse_cisco(norm);
    case VersionScheme::MajorMinor:
      return parse_major_minor(norm);
    case VersionScheme::Dotted:
      return parse_dotted(norm);
    case VersionScheme::Esxi:
      return parse_esxi(norm);
  }
  return fail(Errc::Internal, "unknown version scheme");
}

std::string Version::display() const {
  auto at = [this](std::size_t i) { return i < key.size() ? key[i] : std::int64_t{0}; };
  switch (scheme) {
    case VersionScheme::CiscoLoad: {
      std::string out;
      if (!protocol.empty()) {
        for (char ch : protocol)
          out += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        out += ' ';
      }
      out +=
          std::to_string(at(0)) + "." + std::to_string(at(1)) + "(" + std::to_string(at(2)) + ")";
      if (at(3) > 0) out += "SR" + std::to_string(at(3));
      return out;
    }
    case VersionScheme::MajorMinor: {
      std::string minor = std::to_string(at(1));
      if (minor.size() < 2) minor.insert(0, 2 - minor.size(), '0');
      return std::to_string(at(0)) + "." + minor;
    }
    case VersionScheme::Dotted:
      return text;
    case VersionScheme::Esxi: {
      std::string out =
          std::to_string(at(0)) + "." + std::to_string(at(1)) + "." + std::to_string(at(2));
      if (at(3) > 0) out += " build " + std::to_string(at(3));
      return out;
    }
  }
  return text;
}

std::strong_ordering compare(const Version& a, const Version& b) {
  if (a.scheme != b.scheme) return a.scheme <=> b.scheme;
  // Missing key components count as 0, so keys of different lengths compare like padded ones.
  const std::size_t n = std::max(a.key.size(), b.key.size());
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t x = i < a.key.size() ? a.key[i] : 0;
    std::int64_t y = i < b.key.size() ? b.key[i] : 0;
    if (x != y) return x <=> y;
  }
  return std::strong_ordering::equal;
}

}  // namespace labctl::inventory
