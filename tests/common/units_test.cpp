#include "common/units.h"

#include <gtest/gtest.h>

namespace tars {

TEST(Units, ParsesBinaryAndDecimalSizes) {
  EXPECT_EQ(parse_byte_size("1024"), 1024u);
  EXPECT_EQ(parse_byte_size("8MiB"), 8ull << 20);
  EXPECT_EQ(parse_byte_size("12GiB"), 12ull << 30);
  EXPECT_EQ(parse_byte_size(" 11.5 GiB "), static_cast<uint64_t>(11.5 * (1ull << 30)));
  EXPECT_EQ(parse_byte_size("6GB"), 6000000000ull);
  EXPECT_EQ(parse_byte_size("512 kib"), 512ull << 10);
  EXPECT_EQ(parse_byte_size("3b"), 3u);
}

TEST(Units, RejectsMalformedSizes) {
  for (const char* bad : {"", "GiB", "-1", "1.2.3", "12 parsecs", "1e400", "99999999999999999999"}) {
    EXPECT_FALSE(parse_byte_size(bad).has_value()) << bad;
  }
}

TEST(Units, FormatsBytes) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(12ull << 30), "12.00 GiB");
}

}  // namespace tars
