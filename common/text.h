// Small string helpers shared by every layer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace labctl::text {

std::string_view trim(std::string_view s);
std::vector<std::string> split(std::string_view s, char sep);
std::string lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
// Edit distance (insert, delete, substitute, transpose), for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b);
// The closest candidate within a distance that scales with the word, or "" when none is close.
std::string closest(std::string_view word, const std::vector<std::string>& candidates);
// "90s", "5m", "1h", "250ms", "2d" or a bare number of seconds, in milliseconds; nullopt for
// anything else (including values that would overflow).
std::optional<std::int64_t> parse_duration_ms(std::string_view s);
// "512", "64KiB", "1MiB", "2GiB" (also "k", "KB", "M", "MB", "G", "GB": binary multiples), in
// bytes; nullopt for anything else (including values that would overflow).
std::optional<std::uint64_t> parse_size(std::string_view s);
// "2026-12-02 14:05:09" in local time, for tables people read.
std::string format_local_time(std::int64_t unix_ms);
// "a, b and c"
std::string join_list(const std::vector<std::string>& items, std::string_view last_sep = " and ");

}  // namespace labctl::text
