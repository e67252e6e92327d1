// The CUDA backend's metadata ring (engine/cuda/meta_ring.h) is host code:
// checked here on every machine. A model of the device twin (a second
// buffer that receives the copies the ring asks for) must always hold, at
// the offset an upload returns, the bytes of that upload.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "engine/cuda/meta_ring.h"

namespace tars::engine::cuda {
namespace {

struct Twin {
  std::vector<uint8_t> host, dev;
  MetaRing ring;
  int syncs = 0, copies = 0;
  explicit Twin(size_t capacity) : host(capacity, 0xAA), dev(capacity, 0xEE), ring(host.data(), capacity) {}

  // What CudaBackend::upload_meta does, with memcpy for the stream.
  size_t upload(const std::vector<uint8_t>& bytes) {
    auto s = ring.place(bytes.data(), bytes.size());
    EXPECT_TRUE(s.has_value());
    if (s->wrapped) {
      ++syncs;
      ring.stage(*s, bytes.data(), bytes.size());
    }
    if (s->copy) {
      ++copies;
      std::memcpy(dev.data() + s->offset, host.data() + s->offset, bytes.size());
    }
    return s->offset;
  }
};

std::vector<uint8_t> bytes_of(std::vector<int32_t> v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

TEST(CudaMetaRing, RepeatedUploadsOfADecodeStepShareOneSlot) {
  Twin t(4096);
  // One decode step of a 4-layer model: rope q, rope k, kv store, attention.
  auto pos = bytes_of({17});
  auto pos_seq = bytes_of({17, 0});
  auto attn = bytes_of({0, 0, 18, 0});
  for (int layer = 0; layer < 4; ++layer) {
    size_t a = t.upload(pos), b = t.upload(pos), c = t.upload(pos_seq), d = t.upload(attn);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    EXPECT_EQ(0, std::memcmp(t.dev.data() + a, pos.data(), pos.size()));
    EXPECT_EQ(0, std::memcmp(t.dev.data() + c, pos_seq.data(), pos_seq.size()));
    EXPECT_EQ(0, std::memcmp(t.dev.data() + d, attn.data(), attn.size()));
  }
  EXPECT_EQ(t.copies, 3);
  EXPECT_EQ(t.ring.reused(), 13u);
  EXPECT_EQ(t.ring.used(), 3 * MetaRing::kAlign) << "three slots handed out (a step area's bytes to copy)";
  // The next step's positions differ: a new copy, never the old slot.
  auto next = bytes_of({18});
  size_t e = t.upload(next);
  EXPECT_EQ(t.copies, 4);
  EXPECT_EQ(0, std::memcmp(t.dev.data() + e, next.data(), next.size()));
}

// Equal bytes of different operations (a token id 0, a row list {0}) are
// two copies.
TEST(CudaMetaRing, ReuseOnlyWithinTheSameTag) {
  std::vector<uint8_t> host(4096);
  MetaRing ring(host.data(), host.size());
  auto zero = bytes_of({0});
  auto a = ring.place(zero.data(), zero.size(), 1);
  auto b = ring.place(zero.data(), zero.size(), 2);
  auto c = ring.place(zero.data(), zero.size(), 1);
  ASSERT_TRUE(a && b && c);
  EXPECT_TRUE(a->copy);
  EXPECT_TRUE(b->copy);
  EXPECT_NE(a->offset, b->offset);
  EXPECT_FALSE(c->copy);
  EXPECT_EQ(c->offset, a->offset);
}

TEST(CudaMetaRing, SameLengthDifferentBytesAreNotReused) {
  Twin t(4096);
  size_t a = t.upload(bytes_of({1, 2, 3}));
  size_t b = t.upload(bytes_of({1, 2, 4}));
  EXPECT_NE(a, b);
  EXPECT_EQ(t.copies, 2);
}

TEST(CudaMetaRing, WrapWaitsBeforeRestagingAndForgetsOldSlots) {
  Twin t(4 * MetaRing::kAlign);
  auto a = bytes_of({1});
  EXPECT_EQ(t.upload(a), 0u);
  EXPECT_EQ(t.upload(bytes_of({2})), MetaRing::kAlign);
  EXPECT_EQ(t.upload(bytes_of({3})), 2 * MetaRing::kAlign);
  EXPECT_EQ(t.upload(bytes_of({4})), 3 * MetaRing::kAlign);
  EXPECT_EQ(t.syncs, 0);
  // Full: the next new upload wraps to 0, and only after the wait is the
  // host slot rewritten (a queued copy of {1} could still be reading it).
  auto e = bytes_of({5});
  EXPECT_EQ(t.upload(e), 0u);
  EXPECT_EQ(t.syncs, 1);
  EXPECT_EQ(0, std::memcmp(t.dev.data(), e.data(), e.size()));
  // {2}'s slot is still intact but forgotten: a repeat is copied again
  // rather than pointing at a slot that the ring will hand out next.
  EXPECT_EQ(t.upload(bytes_of({2})), MetaRing::kAlign);
  EXPECT_EQ(t.copies, 6);
}

TEST(CudaMetaRing, TooLargeForTheRingIsRefused) {
  std::vector<uint8_t> host(2 * MetaRing::kAlign);
  MetaRing ring(host.data(), host.size());
  std::vector<uint8_t> big(2 * MetaRing::kAlign + 1, 7);
  EXPECT_FALSE(ring.place(big.data(), big.size()).has_value());
  std::vector<uint8_t> fits(2 * MetaRing::kAlign, 7);
  EXPECT_TRUE(ring.place(fits.data(), fits.size()).has_value());
}

// Random uploads drawn from a small pool (so repeats happen), a small ring
// (so it wraps often): the device model always holds each upload's bytes
// at its offset, and no upload's bytes are overwritten before the next wait.
TEST(CudaMetaRing, RandomUploadsAlwaysReadBackTheirBytes) {
  Twin t(8 * MetaRing::kAlign);
  std::mt19937 rng(7);
  std::vector<std::vector<uint8_t>> pool;
  for (int i = 0; i < 12; ++i) {
    std::vector<int32_t> v(1 + rng() % 200);
    for (auto& x : v) x = static_cast<int32_t>(rng() % 5);
    pool.push_back(bytes_of(v));
  }
  struct Live {
    size_t offset;
    const std::vector<uint8_t>* bytes;
  };
  std::vector<Live> since_sync;
  for (int i = 0; i < 2000; ++i) {
    const auto& b = pool[rng() % pool.size()];
    int syncs = t.syncs;
    size_t off = t.upload(b);
    if (t.syncs != syncs) since_sync.clear();
    since_sync.push_back({off, &b});
    for (const Live& l : since_sync) {
      ASSERT_EQ(0, std::memcmp(t.dev.data() + l.offset, l.bytes->data(), l.bytes->size())) << "upload " << i;
    }
  }
  EXPECT_GT(t.ring.reused(), 100u);
  EXPECT_GT(t.syncs, 10);
}

}  // namespace
}  // namespace tars::engine::cuda
