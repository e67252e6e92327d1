#pragma once
// Reading an integer from JSON that came from outside (a request body, a
// peer's message) without nlohmann's get<int>(): that casts a float (1e300
// to int is undefined behaviour) and wraps a wider integer.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>

namespace tars::node {

// v when it is an integer from lo to hi; nothing for a float, a string, or an
// integer outside the range (an unsigned one past INT64_MAX included).
inline std::optional<int64_t> json_int_in(const nlohmann::json& v, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) return std::nullopt;
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  const int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) return std::nullopt;
  return i;
}

}  // namespace tars::node
