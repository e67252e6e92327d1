#pragma once
// Placement of per-operation metadata (positions, slots, row offsets) in the
// CUDA backend's pinned staging ring and its device twin. Host-only and
// free of CUDA, so tests/engine checks it on every machine.
//
// Slots are handed out in order and reused only after the ring wraps; the
// caller waits for the stream at a wrap, so no queued copy or kernel still
// reads a slot that is rewritten. Until then a slot's device bytes stay
// valid, which lets an upload equal to a recent one reuse it: a decode step
// sends the same positions to every layer's rope, KV store and attention,
// and each skipped copy is a few microseconds of host time per operation.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

namespace tars::engine::cuda {

class MetaRing {
 public:
  static constexpr size_t kAlign = 256;  // slot alignment (bytes)
  static constexpr int kRecent = 8;      // uploads remembered for reuse

  // host: `capacity` bytes of staging memory the caller owns (pinned).
  MetaRing(uint8_t* host, size_t capacity) : host_(host), capacity_(capacity) {}

  struct Slot {
    size_t offset = 0;     // of the bytes, in the host ring and its device twin
    bool copy = false;     // the bytes were staged at host + offset: copy them to the device
    bool wrapped = false;  // the ring wrapped: wait for queued work BEFORE staging (see place)
  };

  // Where `n` bytes of `data` go, or nullopt when they do not fit the ring.
  // When the result says `wrapped`, the bytes are not staged yet: the caller
  // waits for the stream, then calls stage(slot, data, n). Only an upload
  // with the same `tag` (the kind of operation) is reused: a token id 0 and
  // a row list {0} stay two copies.
  std::optional<Slot> place(const uint8_t* data, size_t n, int tag = 0) {
    const size_t need = (std::max<size_t>(n, 1) + kAlign - 1) / kAlign * kAlign;
    if (need > capacity_) return std::nullopt;
    for (const Recent& r : recent_) {
      if (r.used && r.tag == tag && r.bytes == n && (n == 0 || std::memcmp(host_ + r.offset, data, n) == 0)) {
        ++reused_;
        return Slot{r.offset, false, false};
      }
    }
    Slot s;
    if (head_ + need > capacity_) {
      restart();  // the remembered slots will be overwritten
      s.wrapped = true;
    }
    s.offset = head_;
    head_ += need;
    s.copy = n > 0;
    recent_[next_] = Recent{true, s.offset, n, tag};
    next_ = (next_ + 1) % kRecent;
    if (!s.wrapped) stage(s, data, n);
    return s;
  }

  // Copies the bytes into the host slot (done by place unless it wrapped).
  void stage(const Slot& s, const uint8_t* data, size_t n) {
    if (n > 0) std::memcpy(host_ + s.offset, data, n);
  }

  size_t reused() const { return reused_; }  // uploads that needed no copy
  size_t used() const { return head_; }       // bytes from offset 0 handed out since the last wrap
  // Times the ring wrapped: a slot placed while this was w stays valid
  // (neither restaged nor handed out again) as long as it is still w.
  size_t wraps() const { return wraps_; }

 private:
  // Starts again at offset 0 and forgets every slot (a wrap: the caller
  // waits for queued work before staging, see place).
  void restart() {
    head_ = 0;
    for (Recent& r : recent_) r.used = false;
    ++wraps_;
  }

  struct Recent {
    bool used = false;
    size_t offset = 0;
    size_t bytes = 0;
    int tag = 0;
  };
  uint8_t* host_;
  size_t capacity_;
  size_t head_ = 0;
  Recent recent_[kRecent];
  int next_ = 0;
  size_t reused_ = 0;
  size_t wraps_ = 0;
};

}  // namespace tars::engine::cuda
