#include "plugins/supermicro_bmc/web_profile.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <memory>
#include <sstream>

#include <pugixml.hpp>

#include "common/text.h"
#include "inventory/yaml_util.h"

namespace labctl::supermicro_bmc {

namespace yaml = inventory::yaml;
using inventory::Diagnostics;
using inventory::Mark;

namespace {

// Generated from profiles/*.yaml at configure time: {name, text} pairs.
struct BuiltinText {
  const char* name;
  const char* text;
};
const BuiltinText kBuiltins[] = {
#include "builtin_profiles.inc"
};

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

// An XML name as BMC answers use them (no namespaces): a letter or '_', then letters, digits,
// '-', '_', '.'.
bool xml_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  if (!std::isalpha(static_cast<unsigned char>(s[0])) && s[0] != '_') return false;
  return std::all_of(s.begin(), s.end(), is_name_char);
}

// An HTTP token (RFC 9110): header and cookie names.
bool http_token(std::string_view s) {
  static const std::string_view extra = "!#$%&'*+-.^_`|~";
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || extra.find(c) != std::string_view::npos;
  });
}

// A request target: an absolute path, optionally with a query; printable ASCII without spaces,
// quotes or fragments.
bool url_path(std::string_view s) {
  if (s.empty() || s[0] != '/' || s.size() > 256) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c > 0x20 && c < 0x7F && c != '"' && c != '#' && c != '\\' && c != '<' && c != '>';
  });
}

bool printable(std::string_view s, std::size_t max) {
  if (s.size() > max) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7F; });
}

// The placeholders in a value: "{user}" -> "user". Unbalanced braces come back as "{".
std::vector<std::string> placeholders(std::string_view v) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '}') {
      out.push_back("}");
      continue;
    }
    if (v[i] != '{') continue;
    auto end = v.find('}', i);
    if (end == std::string_view::npos) {
      out.push_back("{");
      break;
    }
    out.emplace_back(v.substr(i + 1, end - i - 1));
    i = end;
  }
  return out;
}

class ProfileReader {
 public:
  ProfileReader(std::string file, Diagnostics& diags) : file_(std::move(file)), diags_(diags) {}

  std::optional<FlashProfile> read(const std::string& text) {
    const std::size_t before = diags_.error_count();
    auto root = yaml::parse(text, file_, diags_);
    if (!root) return std::nullopt;
    FlashProfile p;
    p.origin = file_;
    try {
      read_profile(*root, p);
    } catch (const std::exception& e) {
      error({}, std::string("internal error reading the profile: ") + e.what());
    }
    if (diags_.error_count() != before) return std::nullopt;
    return p;
  }

 private:
  void error(Mark m, std::string msg) { diags_.error(file_, m, std::move(msg)); }

  // A mapping and its reader (which refers to the node, so both live together, not moved).
  class Map {
   public:
    Map(YAML::Node n, const std::string& file, Diagnostics& diags, std::vector<std::string> keys,
        const std::string& what)
        : node_(std::move(n)), reader_(node_, file, diags, std::move(keys), what) {}
    YAML::Node get(std::string_view key) const { return reader_.get(key); }
    Mark key_mark(std::string_view key) const { return reader_.key_mark(key); }
    bool has(std::string_view key) const { return reader_.has(key); }

   private:
    YAML::Node node_;
    yaml::MapReader reader_;
  };

  // A map's reader, or null (with an error) when `n` is not a map.
  std::unique_ptr<Map> map(const YAML::Node& n, Mark at, const std::string& what,
                           std::vector<std::string> keys) {
    if (!n.IsMap()) {
      error(n.IsDefined() ? yaml::mark_of(n) : at,
            what + " must be a mapping, found " + std::string(yaml::describe(n)));
      return nullptr;
    }
    return std::make_unique<Map>(n, file_, diags_, std::move(keys), what);
  }

  std::optional<std::string> scalar(const Map& r, std::string_view key, const std::string& what,
                                    bool required, std::size_t max = 256) {
    YAML::Node n = r.get(key);
    if (!n.IsDefined()) {
      if (required)
        error(r.key_mark(key), what + ": missing required key '" + std::string(key) + "'");
      return std::nullopt;
    }
    if (!n.IsScalar()) {
      error(yaml::mark_of(n), what + "." + std::string(key) + " must be a single value, found " +
                                  std::string(yaml::describe(n)));
      return std::nullopt;
    }
    const std::string& s = n.Scalar();
    if (!printable(s, max)) {
      error(yaml::mark_of(n), what + "." + std::string(key) +
                                  " must be printable ASCII of at most " + std::to_string(max) +
                                  " characters");
      return std::nullopt;
    }
    return s;
  }

  std::string path(const Map& r, const std::string& what, bool required = true) {
    auto s = scalar(r, "path", what, required);
    if (!s) return "";
    if (!url_path(*s)) {
      error(yaml::mark_of(r.get("path")),
            what + ".path '" + *s + "' must start with '/' and hold no spaces, quotes or '#'");
      return "";
    }
    return *s;
  }

  std::vector<std::string> strings(const YAML::Node& n, const std::string& what) {
    std::vector<std::string> out;
    if (!n.IsDefined()) return out;
    if (!n.IsSequence()) {
      error(yaml::mark_of(n), what + " must be a list, found " + std::string(yaml::describe(n)));
      return out;
    }
    for (const auto& item : n) {
      if (!item.IsScalar() || !printable(item.Scalar(), 512)) {
        error(yaml::mark_of(item), what + ": every item must be a line of printable text");
        continue;
      }
      out.push_back(item.Scalar());
    }
    return out;
  }

  // A form: a mapping of field names to values, in order; `allowed` placeholders only.
  FormFields form(const YAML::Node& n, const std::string& what,
                  const std::vector<std::string>& allowed) {
    FormFields out;
    if (!n.IsDefined() || n.IsNull()) return out;
    if (!n.IsMap()) {
      error(yaml::mark_of(n), what + " must be a mapping of field names to values, found " +
                                  std::string(yaml::describe(n)));
      return out;
    }
    for (const auto& e : yaml::map_entries(n, file_, &diags_, what)) {
      if (e.name.empty() || !printable(e.name, 64) ||
          e.name.find_first_of("\"\r\n") != std::string::npos) {
        error(e.key_mark, what + ": field name '" + e.name + "' is not a plain name");
        continue;
      }
      if (!e.value.IsScalar() && !e.value.IsNull()) {
        error(yaml::mark_of(e.value), what + "." + e.name + " must be a single value");
        continue;
      }
      const std::string v = e.value.IsNull() ? "" : e.value.Scalar();
      if (!printable(v, 256)) {
        error(yaml::mark_of(e.value), what + "." + e.name + " must be printable ASCII");
        continue;
      }
      for (const auto& ph : placeholders(v))
        if (std::find(allowed.begin(), allowed.end(), ph) == allowed.end())
          error(yaml::mark_of(e.value),
                what + "." + e.name + ": " +
                    (ph == "{" || ph == "}" ? std::string("unbalanced brace")
                                            : "placeholder {" + ph + "} is not known here") +
                    (allowed.empty() ? std::string(" (no placeholders here)")
                                     : " (known: {" + text::join_list(allowed, "}, {") + "})"));
      out.emplace_back(e.name, v);
    }
    return out;
  }

  bool uses(const FormFields& f, const std::string& placeholder) {
    return std::any_of(f.begin(), f.end(), [&](const auto& kv) {
      return kv.second.find("{" + placeholder + "}") != std::string::npos;
    });
  }

  XmlPick pick(const Map& r, const std::string& what, bool attribute_required) {
    XmlPick out;
    YAML::Node n = r.get("answer");
    auto a = map(n, r.key_mark("answer"), what + ".answer", {"element", "attribute"});
    if (!a) return out;
    if (auto e = scalar(*a, "element", what + ".answer", true)) {
      if (!xml_name(*e))
        error(yaml::mark_of(a->get("element")),
              what + ".answer.element '" + *e + "' is not an XML element name");
      else
        out.element = *e;
    }
    if (auto at = scalar(*a, "attribute", what + ".answer", attribute_required)) {
      if (!xml_name(*at))
        error(yaml::mark_of(a->get("attribute")),
              what + ".answer.attribute '" + *at + "' is not an XML attribute name");
      else
        out.attribute = *at;
    }
    return out;
  }

  void read_profile(const YAML::Node& root, FlashProfile& p) {
    auto top = map(root, {1, 1}, "the profile",
                   {"name", "summary", "confirmed", "sources", "guesses", "login", "logout", "csrf",
                    "lock", "upload", "version-check", "start", "progress", "timings"});
    if (!top) return;
    if (auto n = scalar(*top, "name", "the profile", true, 40)) {
      if (n->empty() || !std::all_of(n->begin(), n->end(), [](char c) {
            return std::islower(static_cast<unsigned char>(c)) ||
                   std::isdigit(static_cast<unsigned char>(c)) || c == '-';
          }))
        error(yaml::mark_of(top->get("name")),
              "name '" + *n + "' must be lower-case letters, digits and '-'");
      else
        p.name = *n;
    }
    if (auto s = scalar(*top, "summary", "the profile", true, 200)) p.summary = *s;
    if (auto c = scalar(*top, "confirmed", "the profile", true)) {
      if (*c == "true")
        p.confirmed = true;
      else if (*c != "false")
        error(yaml::mark_of(top->get("confirmed")),
              "confirmed must be true or false, got '" + *c + "'");
    }
    p.sources = strings(top->get("sources"), "sources");
    p.guesses = strings(top->get("guesses"), "guesses");
    if (p.sources.empty())
      error(top->key_mark("sources"), "a profile must say where its sequence comes from (sources)");

    if (auto r = map(top->get("login"), top->key_mark("login"), "login",
                     {"path", "form", "credentials", "session-cookie", "success"})) {
      p.login.path = path(*r, "login");
      p.login.form = form(r->get("form"), "login.form", {"user", "password"});
      if (!uses(p.login.form, "user") || !uses(p.login.form, "password"))
        error(r->key_mark("form"), "login.form must send {user} and {password}");
      if (auto c = scalar(*r, "credentials", "login", false)) {
        if (*c == "base64")
          p.login.base64_credentials = true;
        else if (*c != "plain")
          error(yaml::mark_of(r->get("credentials")),
                "login.credentials must be plain or base64, got '" + *c + "'");
      }
      if (auto c = scalar(*r, "session-cookie", "login", true)) {
        if (!http_token(*c))
          error(yaml::mark_of(r->get("session-cookie")),
                "login.session-cookie '" + *c + "' is not a cookie name");
        else
          p.login.session_cookie = *c;
      }
      p.login.success = strings(r->get("success"), "login.success");
      if (p.login.success.empty())
        error(r->key_mark("success"),
              "login.success must list what a successful login's answer contains");
      for (const auto& s : p.login.success)
        if (s.empty())
          error(r->key_mark("success"), "login.success: an empty text matches anything");
    }
    if (top->has("logout"))
      if (auto r = map(top->get("logout"), top->key_mark("logout"), "logout", {"path"}))
        p.logout_path = path(*r, "logout");
    if (top->has("csrf"))
      if (auto r = map(top->get("csrf"), top->key_mark("csrf"), "csrf",
                       {"page", "marker", "headers", "field"})) {
        if (auto pg = scalar(*r, "page", "csrf", true)) {
          if (!url_path(*pg))
            error(yaml::mark_of(r->get("page")), "csrf.page must start with '/'");
          else
            p.csrf.page = *pg;
        }
        if (auto m = scalar(*r, "marker", "csrf", true, 64)) {
          if (m->empty())
            error(yaml::mark_of(r->get("marker")), "csrf.marker must not be empty");
          else
            p.csrf.marker = *m;
        }
        for (const auto& h : strings(r->get("headers"), "csrf.headers")) {
          if (!http_token(h))
            error(r->key_mark("headers"), "csrf.headers: '" + h + "' is not a header name");
          else
            p.csrf.headers.push_back(h);
        }
        if (auto f = scalar(*r, "field", "csrf", false, 64)) p.csrf.field = *f;
      }
    if (top->has("lock"))
      if (auto r = map(top->get("lock"), top->key_mark("lock"), "lock",
                       {"path", "form", "answer", "granted", "held"})) {
        p.lock.path = path(*r, "lock");
        p.lock.form = form(r->get("form"), "lock.form", {});
        p.lock.answer = pick(*r, "lock", true);
        if (auto g = scalar(*r, "granted", "lock", true, 32)) p.lock.granted = *g;
        if (auto h = scalar(*r, "held", "lock", true, 32)) p.lock.held = *h;
        if (!p.lock.granted.empty() && p.lock.granted == p.lock.held)
          error(r->key_mark("held"), "lock.granted and lock.held must differ");
      }
    if (auto r = map(top->get("upload"), top->key_mark("upload"), "upload",
                     {"path", "file-field", "content-type", "fields"})) {
      p.upload.path = path(*r, "upload");
      if (auto f = scalar(*r, "file-field", "upload", true, 64)) {
        if (f->empty() || f->find_first_of("\"\r\n") != std::string::npos)
          error(yaml::mark_of(r->get("file-field")), "upload.file-field is not a plain name");
        else
          p.upload.file_field = *f;
      }
      if (auto c = scalar(*r, "content-type", "upload", false, 100)) {
        auto slash = c->find('/');
        if (slash == std::string::npos || !http_token(c->substr(0, slash)) ||
            !http_token(c->substr(slash + 1)))
          error(yaml::mark_of(r->get("content-type")),
                "upload.content-type '" + *c + "' is not a media type (type/subtype)");
        else
          p.upload.content_type = *c;
      }
      p.upload.fields = form(r->get("fields"), "upload.fields", {});
    }
    if (auto r = map(top->get("version-check"), top->key_mark("version-check"), "version-check",
                     {"path", "form", "answer", "format"})) {
      p.version_check.path = path(*r, "version-check");
      p.version_check.form = form(r->get("form"), "version-check.form", {});
      p.version_check.answer = pick(*r, "version-check", false);
      if (auto f = scalar(*r, "format", "version-check", true)) {
        if (*f != "MMmm" && *f != "MMmmbb" && *f != "dotted")
          error(yaml::mark_of(r->get("format")),
                "version-check.format must be MMmm, MMmmbb or dotted, got '" + *f + "'");
        else
          p.version_check.format = *f;
      }
    }
    if (auto r = map(top->get("start"), top->key_mark("start"), "start",
                     {"path", "form", "preserve-config", "answers"})) {
      p.start.path = path(*r, "start");
      p.start.form = form(r->get("form"), "start.form", {"preserve"});
      if (!uses(p.start.form, "preserve"))
        error(r->key_mark("form"),
              "start.form must carry the preserve-config choice as {preserve} in one field");
      if (auto pc = map(r->get("preserve-config"), r->key_mark("preserve-config"),
                        "start.preserve-config", {"preserve", "reset"})) {
        if (auto v = scalar(*pc, "preserve", "start.preserve-config", true, 32))
          p.start.preserve_value = *v;
        if (auto v = scalar(*pc, "reset", "start.preserve-config", true, 32))
          p.start.reset_value = *v;
        if (p.start.preserve_value == p.start.reset_value && !p.start.reset_value.empty())
          error(r->key_mark("preserve-config"),
                "start.preserve-config: preserve and reset must differ");
      }
      if (auto a = scalar(*r, "answers", "start", false)) {
        if (*a == "true")
          p.start.answers = true;
        else if (*a != "false")
          error(yaml::mark_of(r->get("answers")), "start.answers must be true or false");
      }
    }
    if (auto r = map(top->get("progress"), top->key_mark("progress"), "progress",
                     {"path", "form", "answer"})) {
      p.progress.path = path(*r, "progress");
      p.progress.form = form(r->get("form"), "progress.form", {});
      p.progress.answer = pick(*r, "progress", false);
    }
    if (top->has("timings"))
      if (auto r = map(top->get("timings"), top->key_mark("timings"), "timings",
                       {"request", "upload", "start-wait", "poll-interval", "flash", "offline",
                        "online", "session"})) {
        auto& t = p.timings;
        for (auto [key, slot] :
             std::initializer_list<std::pair<const char*, std::chrono::milliseconds*>>{
                 {"request", &t.request},
                 {"upload", &t.upload},
                 {"start-wait", &t.start_wait},
                 {"poll-interval", &t.poll_interval},
                 {"flash", &t.flash},
                 {"offline", &t.offline},
                 {"online", &t.online},
                 {"session", &t.session}}) {
          auto s = scalar(*r, key, "timings", false, 32);
          if (!s) continue;
          auto ms = text::parse_duration_ms(*s);
          if (!ms || *ms <= 0 || *ms > 24LL * 3600 * 1000)
            error(yaml::mark_of(r->get(key)), std::string("timings.") + key + " '" + *s +
                                                  "' must be a duration above 0 and at most "
                                                  "24h (\"30s\", \"10m\", \"250ms\")");
          else
            *slot = std::chrono::milliseconds(*ms);
        }
      }
  }

  std::string file_;
  Diagnostics& diags_;
};

Result<FlashProfile> from_text(const std::string& text, const std::string& file) {
  Diagnostics diags;
  auto p = parse_flash_profile(text, file, diags);
  if (p) return std::move(*p);
  std::string msg;
  for (const auto& d : diags.sorted())
    if (d.severity == inventory::Severity::Error) msg += (msg.empty() ? "" : "; ") + d.format();
  return fail(Errc::InvalidInput, "flasher profile " + msg);
}

bool ends_with_html(std::string_view body) {
  const std::string low = text::lower(body.substr(0, std::min<std::size_t>(body.size(), 4096)));
  return low.find("<html") != std::string::npos || low.find("<!doctype html") != std::string::npos;
}

// The value `pick` names, from an XML answer; nullopt when the answer does not hold it.
std::optional<std::string> pick_value(const XmlPick& pick, std::string_view body,
                                      AnswerKind& kind) {
  kind = AnswerKind::Unexpected;
  pugi::xml_document doc;
  // Parsing stops at the first error but keeps what it read: BMC answers are not always
  // well-formed after the element labctl needs.
  (void)doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
  pugi::xml_node n = doc.find_node(
      [&](pugi::xml_node x) { return x.type() == pugi::node_element && pick.element == x.name(); });
  if (!n) {
    if (ends_with_html(body)) kind = AnswerKind::SessionExpired;
    return std::nullopt;
  }
  kind = AnswerKind::Xml;
  if (pick.attribute.empty()) return std::string(text::trim(n.child_value()));
  pugi::xml_attribute a = n.attribute(pick.attribute.c_str());
  if (!a) return std::nullopt;
  return std::string(a.value());
}

}  // namespace

std::optional<FlashProfile> parse_flash_profile(const std::string& text, const std::string& file,
                                                Diagnostics& diags) {
  return ProfileReader(file, diags).read(text);
}

std::vector<std::string> builtin_profile_names() {
  std::vector<std::string> out;
  for (const auto& b : kBuiltins)
    out.emplace_back(b.name);
  return out;
}

Result<FlashProfile> builtin_profile(std::string_view name) {
  for (const auto& b : kBuiltins)
    if (name == b.name) {
      auto p = from_text(b.text, "built-in profile " + std::string(b.name));
      if (p) p->origin = "built-in";
      return p;
    }
  auto names = builtin_profile_names();
  auto guess = text::closest(name, names);
  return fail(Errc::NotFound, "no flasher profile '" + std::string(name) + "'" +
                                  (guess.empty() ? "" : " (did you mean '" + guess + "'?)") +
                                  "; built in: " + text::join_list(names, ", "));
}

Result<FlashProfile> load_profile_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::NotFound, "flasher profile " + path + ": cannot read it");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > 256 * 1024)
    return fail(Errc::InvalidInput, "flasher profile " + path + ": over 256 KiB, not a profile");
  return from_text(ss.str(), path);
}

std::string encode_form(const FormFields& form,
                        const std::vector<std::pair<std::string, std::string>>& values) {
  static const char* hex = "0123456789ABCDEF";
  // As the BMCs' own pages send them: unreserved characters and the "(0,0)" of ATEN's ops as
  // they are, everything else percent-encoded.
  auto encode = [](std::string_view s, std::string& out) {
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '(' || c == ')' ||
          c == ',') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
  };
  std::string out;
  for (const auto& [k, v] : form) {
    std::string value;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '{') {
        auto end = v.find('}', i);
        if (end != std::string::npos) {
          const std::string name = v.substr(i + 1, end - i - 1);
          for (const auto& [pn, pv] : values)
            if (pn == name) value += pv;
          i = end;
          continue;
        }
      }
      value += v[i];
    }
    if (!out.empty()) out += '&';
    encode(k, out);
    out += '=';
    encode(value, out);
  }
  return out;
}

bool login_succeeded(const FlashProfile& p, std::string_view body) {
  return std::any_of(p.login.success.begin(), p.login.success.end(), [&](const std::string& s) {
    return !s.empty() && body.find(s) != std::string_view::npos;
  });
}

std::string find_csrf_token(const FlashProfile& p, std::string_view page) {
  if (p.csrf.marker.empty()) return "";
  auto at = page.find(p.csrf.marker);
  if (at == std::string_view::npos) return "";
  at += p.csrf.marker.size();
  auto end = page.find('"', at);
  if (end == std::string_view::npos || end == at || end - at > 256) return "";
  std::string_view token = page.substr(at, end - at);
  // A token goes into headers and form fields: refuse anything that is not plain.
  if (!std::all_of(token.begin(), token.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '+' ||
               c == '/' || c == '=' || c == '.';
      }))
    return "";
  return std::string(token);
}

LockAnswer parse_lock_answer(const FlashProfile& p, std::string_view body) {
  LockAnswer a;
  auto v = pick_value(p.lock.answer, body, a.kind);
  if (!v) return a;
  a.value = v->substr(0, 32);
  if (*v == p.lock.granted)
    a.state = LockState::Granted;
  else if (*v == p.lock.held)
    a.state = LockState::Held;
  return a;
}

std::optional<std::string> version_from(std::string_view format, std::string_view raw) {
  auto digits = [](std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  raw = text::trim(raw);
  std::string_view major, minor;
  if (format == "MMmm" || format == "MMmmbb") {
    const std::size_t want = format == "MMmm" ? 4 : 6;
    if (raw.size() != want || !digits(raw)) return std::nullopt;
    major = raw.substr(0, 2);
    minor = raw.substr(2, 2);
  } else if (format == "dotted") {
    auto dot = raw.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    major = raw.substr(0, dot);
    minor = raw.substr(dot + 1);
    if (major.size() > 3 || minor.size() != 2 || !digits(major) || !digits(minor))
      return std::nullopt;
  } else {
    return std::nullopt;
  }
  int m = 0;
  std::from_chars(major.data(), major.data() + major.size(), m);
  if (m < 1 || m > 127) return std::nullopt;  // Get Device ID's major is 7 bits
  return std::to_string(m) + "." + std::string(minor);
}

VersionAnswer parse_version_answer(const FlashProfile& p, std::string_view body) {
  VersionAnswer a;
  auto v = pick_value(p.version_check.answer, body, a.kind);
  if (!v) return a;
  a.raw = v->substr(0, 32);
  if (auto version = version_from(p.version_check.format, *v)) a.version = *version;
  return a;
}

ProgressAnswer parse_progress_answer(const FlashProfile& p, std::string_view body) {
  ProgressAnswer a;
  auto v = pick_value(p.progress.answer, body, a.kind);
  if (!v) return a;
  std::string_view s = text::trim(*v);
  if (!s.empty() && s.back() == '%') s.remove_suffix(1);
  int n = -1;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec == std::errc() && ptr == s.data() + s.size() && n >= 0 && n <= 100) a.percent = n;
  return a;
}

std::string describe(const FlashProfile& p) {
  std::string out = p.name + " (" + p.origin;
  if (!p.confirmed) out += ", UNCONFIRMED: not yet seen working on a real board";
  return out + ")";
}

}  // namespace labctl::supermicro_bmc
