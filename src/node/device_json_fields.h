#pragma once
// Typed reading of inventory JSON fields with errors that name the field
// ("gpus[1].free_memory") and, through the context prefix, the file. Shared
// by the simulated inventory loader (kConfig errors) and devices_from_json
// (kInvalidArgument errors). Internal to device discovery.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "common/error.h"

namespace tars::node {

// Who is reading, for error messages.
struct DeviceJsonContext {
  ErrorCode code;      // what kind of failure a bad field is
  std::string prefix;  // "simulated inventory pc1.json: " or "device inventory: "
};

// Throws tars::Error(ctx.code, prefix + field + ": " + problem).
[[noreturn]] void device_json_fail(const DeviceJsonContext& ctx, const std::string& field,
                                   const std::string& problem);

// A memory size: an integer number of bytes, or a string such as "12GiB",
// "11.5 GiB", "6GB", "512MiB" (common/units.h). Negative sizes are errors.
uint64_t device_json_size(const DeviceJsonContext& ctx, const nlohmann::json& value,
                          const std::string& field);

// A compute capability: "8.6" (or the number 8.6) -> {8, 6}.
std::pair<int, int> device_json_compute_capability(const DeviceJsonContext& ctx,
                                                   const nlohmann::json& value,
                                                   const std::string& field);

// An integer in [lo, hi].
int device_json_int(const DeviceJsonContext& ctx, const nlohmann::json& value,
                    const std::string& field, int lo, int hi);

// A string; non-empty when `non_empty`.
std::string device_json_string(const DeviceJsonContext& ctx, const nlohmann::json& value,
                               const std::string& field, bool non_empty = false);

// A boolean.
bool device_json_bool(const DeviceJsonContext& ctx, const nlohmann::json& value,
                      const std::string& field);

// "gpus[1]" + "." + "name".
inline std::string device_json_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

// A JSON value's type for messages: "a string", "an array", ...
std::string device_json_type(const nlohmann::json& value);

}  // namespace tars::node
