#pragma once
// Byte sizes as people write them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tars {

// "8MiB", "1.5 GiB", "6GB", "512 KiB", "1024" -> bytes. Binary units (KiB,
// MiB, GiB, TiB) are powers of 1024, decimal units (KB, MB, GB, TB) powers
// of 1000; B or no unit is bytes. Case-insensitive. nullopt when malformed,
// negative or over 2^64.
std::optional<uint64_t> parse_byte_size(std::string_view text);

// 1536 -> "1.50 KiB"; exact bytes under 1 KiB ("512 B").
std::string format_bytes(uint64_t bytes);

}  // namespace tars
