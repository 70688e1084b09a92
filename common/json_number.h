// Whole numbers out of parsed JSON, checked before they are converted. nlohmann's get<T>() casts
// without a check: a float that does not fit T is undefined behaviour, a negative number read as
// unsigned wraps around, a large unsigned read as signed changes sign. Every reader of JSON that
// came from outside (a config, a request, a saved state) goes through these.
#pragma once

#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace labctl::json_number {

// v as T when it is a JSON integer (not a float, not a string) whose value T can hold.
template <std::integral T>
std::optional<T> whole(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return std::nullopt;
    return static_cast<T>(u);
  }
  if (!v.is_number_integer()) return std::nullopt;
  const auto i = v.get<std::int64_t>();
  if constexpr (std::is_unsigned_v<T>) {
    if (i < 0 || static_cast<std::uint64_t>(i) > std::numeric_limits<T>::max()) return std::nullopt;
  } else {
    if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) return std::nullopt;
  }
  return static_cast<T>(i);
}

// A whole number in [lo, hi], or nullopt.
inline std::optional<std::int64_t> whole_in(const nlohmann::json& v, std::int64_t lo,
                                            std::int64_t hi) {
  const auto x = whole<std::int64_t>(v);
  if (!x || *x < lo || *x > hi) return std::nullopt;
  return x;
}

// j[key] as T: json::out_of_range when it is missing, std::invalid_argument naming the key when it
// is not a whole number T can hold. For readers that catch one exception around a whole object.
template <std::integral T>
T at(const nlohmann::json& j, const char* key) {
  if (const auto v = whole<T>(j.at(key))) return *v;
  throw std::invalid_argument(std::string("'") + key + "' is not a whole number in range");
}

// The same, with a fallback when the key is missing (not when it is there and wrong).
template <std::integral T>
T value(const nlohmann::json& j, const char* key, T fallback) {
  return j.contains(key) ? at<T>(j, key) : fallback;
}

}  // namespace labctl::json_number
