#include "common/text.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdint>
#include <ctime>

namespace labctl::text {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? s.npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment distance, three rolling rows.
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (std::size_t j = 0; j <= m; ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= m; ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
  const std::size_t limit = word.size() / 3 + 1;  // roughly one typo per three letters
  std::string best;
  std::size_t best_d = limit + 1;
  const std::string w = lower(word);
  for (const auto& c : candidates) {
    auto d = edit_distance(w, lower(c));
    if (d <= limit && d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view s) {
  s = trim(s);
  std::size_t i = 0;
  std::int64_t n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (n > 1'000'000'000'000LL) return std::nullopt;
    n = n * 10 + (s[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  auto unit = s.substr(i);
  std::int64_t mult = 0;
  if (unit.empty() || unit == "s")
    mult = 1000;
  else if (unit == "ms")
    mult = 1;
  else if (unit == "m")
    mult = 60'000;
  else if (unit == "h")
    mult = 3'600'000;
  else if (unit == "d")
    mult = 86'400'000;
  else
    return std::nullopt;
  if (n > (INT64_MAX / mult)) return std::nullopt;
  return n * mult;
}

std::optional<std::uint64_t> parse_size(std::string_view s) {
  s = trim(s);
  std::size_t i = 0;
  std::uint64_t n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (n > 1'000'000'000'000'000ULL) return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(s[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  const std::string unit = lower(trim(s.substr(i)));
  std::uint64_t mult = 0;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib")
    mult = 1ULL << 10;
  else if (unit == "m" || unit == "mb" || unit == "mib")
    mult = 1ULL << 20;
  else if (unit == "g" || unit == "gb" || unit == "gib")
    mult = 1ULL << 30;
  else
    return std::nullopt;
  if (n > UINT64_MAX / mult) return std::nullopt;
  return n * mult;
}

std::string format_local_time(std::int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string join_list(const std::vector<std::string>& items, std::string_view last_sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += (i + 1 == items.size()) ? std::string(last_sep) : std::string(", ");
    out += items[i];
  }
  return out;
}

}  // namespace labctl::text
