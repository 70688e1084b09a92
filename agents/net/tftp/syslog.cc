#include "agents/net/tftp/syslog.h"

#include <cctype>
#include <ctime>
#include <string>

#include "agents/net/tftp/codec.h"

namespace labctl::tftp {

namespace {

// A cursor over one line.
class Cur {
 public:
  explicit Cur(std::string_view s) : s_(s) {}
  bool eat(std::string_view lit) {
    if (!s_.starts_with(lit)) return false;
    s_.remove_prefix(lit.size());
    return true;
  }
  // Exactly `n` digits (n = 0: one or more), as a number.
  std::optional<int> digits(std::size_t n = 0) {
    std::size_t i = 0;
    while (i < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i])) && (n == 0 || i < n))
      ++i;
    if (i == 0 || (n != 0 && i != n) || i > 9) return std::nullopt;
    int v = 0;
    for (std::size_t k = 0; k < i; ++k)
      v = v * 10 + (s_[k] - '0');
    s_.remove_prefix(i);
    return v;
  }
  void spaces() {
    while (!s_.empty() && s_.front() == ' ')
      s_.remove_prefix(1);
  }
  std::string_view token() {
    spaces();
    const auto end = s_.find(' ');
    auto t = s_.substr(0, end);
    s_.remove_prefix(t.size());
    return t;
  }
  std::string_view rest() const { return s_; }
  bool empty() const { return s_.empty(); }
  char peek() const { return s_.empty() ? '\0' : s_.front(); }

 private:
  std::string_view s_;
};

int month_index(std::string_view m) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i)
    if (m == kMonths[i]) return i;
  return -1;
}

// Parses the timestamp at the front of the line; Unix milliseconds.
std::optional<std::int64_t> timestamp(Cur& c, int year) {
  std::tm tm{};
  int ms = 0;
  auto fraction = [&] {
    if (!c.eat(".")) return;
    std::string_view r = c.rest();
    std::size_t i = 0;
    int scale = 100;
    while (i < r.size() && std::isdigit(static_cast<unsigned char>(r[i]))) {
      if (scale > 0) ms += (r[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    c = Cur(r.substr(i));
  };
  // HH:MM:SS[.fraction], shared by both forms, into tm.
  auto clock = [&] {
    auto h = c.digits(2);
    if (!h || !c.eat(":")) return false;
    auto mi = c.digits(2);
    if (!mi || !c.eat(":")) return false;
    auto s = c.digits(2);
    if (!s) return false;
    fraction();
    if (*h > 23 || *mi > 59 || *s > 60) return false;
    tm.tm_hour = *h;
    tm.tm_min = *mi;
    tm.tm_sec = *s;
    return true;
  };
  if (std::isdigit(static_cast<unsigned char>(c.peek()))) {
    // ISO 8601: 2024-12-30T10:15:32[.123456][Z|+01:00|+0100]
    auto y = c.digits(4);
    if (!y || !c.eat("-")) return std::nullopt;
    auto mo = c.digits(2);
    if (!mo || !c.eat("-")) return std::nullopt;
    auto d = c.digits(2);
    if (!d || !(c.eat("T") || c.eat(" ")) || !clock()) return std::nullopt;
    int offset_min = 0;
    if (c.eat("Z")) {
    } else if (c.peek() == '+' || c.peek() == '-') {
      const int sign = c.peek() == '-' ? -1 : 1;
      c.eat(c.peek() == '-' ? "-" : "+");
      auto oh = c.digits(2);
      c.eat(":");
      auto om = c.digits(2);
      if (!oh || !om) return std::nullopt;
      offset_min = sign * (*oh * 60 + *om);
    }
    if (*mo < 1 || *mo > 12 || *d < 1 || *d > 31) return std::nullopt;
    tm.tm_year = *y - 1900;
    tm.tm_mon = *mo - 1;
    tm.tm_mday = *d;
    const std::time_t t = ::timegm(&tm);
    return (static_cast<std::int64_t>(t) - offset_min * 60) * 1000 + ms;
  }
  // BSD: "Dec 30 10:15:32" (day space-padded: "Dec  3").
  const int mon = month_index(c.rest().substr(0, 3));
  if (mon < 0) return std::nullopt;
  c.eat(c.rest().substr(0, 3));
  c.spaces();
  auto d = c.digits();
  if (!d || !c.eat(" ") || !clock()) return std::nullopt;
  if (*d < 1 || *d > 31) return std::nullopt;
  if (year == 0) {
    const std::time_t now = std::time(nullptr);
    std::tm lt{};
    ::localtime_r(&now, &lt);
    year = lt.tm_year + 1900;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = *d;
  tm.tm_isdst = -1;
  const std::time_t t = std::mktime(&tm);
  return static_cast<std::int64_t>(t) * 1000 + ms;
}

// "in.tftpd[24929]:" -> true, pid. Also "tftpd:", "/usr/sbin/in.tftpd[1]:".
bool tftpd_tag(std::string_view tag, std::optional<int>& pid) {
  if (!tag.ends_with(':')) return false;
  tag.remove_suffix(1);
  if (tag.ends_with(']')) {
    const auto open = tag.rfind('[');
    if (open == std::string_view::npos) return false;
    Cur c(tag.substr(open + 1, tag.size() - open - 2));
    auto p = c.digits();
    if (!p || !c.empty()) return false;
    pid = *p;
    tag = tag.substr(0, open);
  }
  if (const auto slash = tag.rfind('/'); slash != std::string_view::npos)
    tag = tag.substr(slash + 1);
  return tag == "in.tftpd" || tag == "tftpd";
}

std::string client_text(std::string_view addr) {
  // tftpd-hpa on a dual-stack socket logs IPv4 clients as IPv4-mapped IPv6.
  constexpr std::string_view kMapped = "::ffff:";
  if (addr.size() > kMapped.size() && addr.substr(0, kMapped.size()) == kMapped &&
      addr.find('.') != std::string_view::npos)
    addr.remove_prefix(kMapped.size());
  return std::string(addr);
}

}  // namespace

SyslogParser::SyslogParser(int year) : year_(year) {}

std::optional<Event> SyslogParser::parse_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.remove_suffix(1);
  if (line.size() > 8192) return std::nullopt;
  Cur c(line);
  auto time = timestamp(c, year_);
  if (!time) return std::nullopt;
  c.spaces();
  // Host, then the tag; some formats leave the host out.
  std::optional<int> pid;
  std::string host;
  std::string_view first = c.token();
  if (!tftpd_tag(first, pid)) {
    host = std::string(first);
    if (!tftpd_tag(c.token(), pid)) return std::nullopt;
  }
  if (!c.eat(" ")) return std::nullopt;
  const std::string_view msg = c.rest();

  Event e;
  e.time_ms = *time;
  e.source = "syslog";
  e.host = host;
  e.pid = pid;
  const std::string key = host + "/" + (pid ? std::to_string(*pid) : std::string());

  if (msg.starts_with("RRQ from ") || msg.starts_with("WRQ from ")) {
    e.kind = EventKind::Request;
    e.op = std::string(msg.substr(0, 3));
    Cur m(msg.substr(9));
    e.client = client_text(m.token());
    if (!m.eat(" filename ")) return std::nullopt;
    std::string_view name = m.rest();
    constexpr std::string_view kRemap = " remapped to ";
    if (auto r = name.rfind(kRemap); r != std::string_view::npos) {
      e.file = std::string(name.substr(r + kRemap.size()));
      name = name.substr(0, r);
    }
    if (name.empty()) return std::nullopt;
    e.name = std::string(name);
    if (last_.size() > 4096) last_.clear();  // bounded, whatever the log
    last_[key] = {e.op, e.name, e.file, e.client};
    return e;
  }
  if (msg.starts_with("sending NAK (")) {
    Cur m(msg.substr(13));
    auto code = m.digits();
    if (!code || !m.eat(", ")) return std::nullopt;
    std::string_view r = m.rest();
    const auto close = r.rfind(") to ");
    if (close == std::string_view::npos) return std::nullopt;
    e.kind = EventKind::Refused;
    e.error_code = static_cast<std::uint16_t>(*code);
    e.reason = std::string(r.substr(0, close));
    e.client = client_text(r.substr(close + 5));
    if (auto it = last_.find(key); it != last_.end() && it->second.client == e.client) {
      e.op = it->second.op;
      e.name = it->second.name;
      e.file = it->second.file;
      last_.erase(it);
    }
    return e;
  }
  return std::nullopt;
}

std::vector<Event> parse_syslog(std::istream& in, int year) {
  SyslogParser p(year);
  std::vector<Event> out;
  std::string line;
  while (std::getline(in, line)) {
    if (auto e = p.parse_line(line)) out.push_back(std::move(*e));
  }
  return out;
}

}  // namespace labctl::tftp
