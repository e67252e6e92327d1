#include "node/device_json_fields.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "common/units.h"

namespace tars::node {

using nlohmann::json;

void device_json_fail(const DeviceJsonContext& ctx, const std::string& field,
                      const std::string& problem) {
  throw Error(ctx.code, ctx.prefix + field + ": " + problem);
}

std::string device_json_type(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a fractional number";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    default: return "an unexpected value";
  }
}

uint64_t device_json_size(const DeviceJsonContext& ctx, const json& value, const std::string& field) {
  const std::string expected = "expected bytes (an integer) or a size such as \"12GiB\"";
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) {
    int64_t v = value.get<int64_t>();
    if (v < 0) device_json_fail(ctx, field, "must not be negative (got " + std::to_string(v) + ")");
    return static_cast<uint64_t>(v);
  }
  if (value.is_number_float()) {
    double v = value.get<double>();
    if (v < 0) device_json_fail(ctx, field, "must not be negative (got " + value.dump() + ")");
    if (!std::isfinite(v) || v != std::floor(v) || v >= 18446744073709551616.0) {
      device_json_fail(ctx, field, "a byte count must be a whole number (got " + value.dump() + ")");
    }
    return static_cast<uint64_t>(v);
  }
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (text.find('-') != std::string::npos) {
      device_json_fail(ctx, field, "must not be negative (got \"" + text + "\")");
    }
    auto bytes = parse_byte_size(text);
    if (!bytes) {
      device_json_fail(ctx, field,
                       "\"" + text + "\" is not a size (use bytes or a number with B, KB, MB, GB, "
                       "TB, KiB, MiB, GiB or TiB, e.g. \"12GiB\")");
    }
    return *bytes;
  }
  device_json_fail(ctx, field, expected + ", got " + device_json_type(value));
}

std::pair<int, int> device_json_compute_capability(const DeviceJsonContext& ctx, const json& value,
                                                   const std::string& field) {
  std::string text;
  if (value.is_string()) {
    text = value.get<std::string>();
  } else if (value.is_number()) {
    // The number 8.6 prints back as "8.6" (shortest round trip), 12 as "12".
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, value.get<double>());
    text.assign(buf, res.ptr);
    if (text.find('.') == std::string::npos) text += ".0";
  } else {
    device_json_fail(ctx, field, "expected \"major.minor\" such as \"8.6\", got " + device_json_type(value));
  }
  int major = -1, minor = -1;
  size_t dot = text.find('.');
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  bool ok = dot != std::string::npos && dot > 0 && dot + 1 < text.size();
  if (ok) {
    auto r1 = std::from_chars(begin, begin + dot, major);
    auto r2 = std::from_chars(begin + dot + 1, end, minor);
    ok = r1.ec == std::errc() && r1.ptr == begin + dot && r2.ec == std::errc() && r2.ptr == end &&
         major >= 1 && major <= 99 && minor >= 0 && minor <= 99;
  }
  if (!ok) {
    device_json_fail(ctx, field, "\"" + text + "\" is not a compute capability (expected \"major.minor\" such as \"8.6\")");
  }
  return {major, minor};
}

int device_json_int(const DeviceJsonContext& ctx, const json& value, const std::string& field,
                    int lo, int hi) {
  const std::string range = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  if (!value.is_number_integer()) {
    device_json_fail(ctx, field, "expected " + range + ", got " + device_json_type(value));
  }
  bool huge = value.is_number_unsigned() &&
              value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  int64_t v = huge ? 0 : value.get<int64_t>();
  if (huge || v < lo || v > hi) {
    device_json_fail(ctx, field, "expected " + range + ", got " + value.dump());
  }
  return static_cast<int>(v);
}

std::string device_json_string(const DeviceJsonContext& ctx, const json& value,
                               const std::string& field, bool non_empty) {
  if (!value.is_string()) device_json_fail(ctx, field, "expected a string, got " + device_json_type(value));
  std::string s = value.get<std::string>();
  if (non_empty && s.empty()) device_json_fail(ctx, field, "must not be empty");
  return s;
}

bool device_json_bool(const DeviceJsonContext& ctx, const json& value, const std::string& field) {
  if (!value.is_boolean()) device_json_fail(ctx, field, "expected true or false, got " + device_json_type(value));
  return value.get<bool>();
}

}  // namespace tars::node
