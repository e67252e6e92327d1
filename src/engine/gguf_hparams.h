#pragma once
// Reading a model's hyper-parameters from its GGUF header, shared by the
// decoder (model_hparams.cpp) and encoder (encoder_load.cpp) loaders. Errors
// are tars::Error(kCorruptData) naming the file.

#include <cstdint>
#include <string>

#include "common/error.h"
#include "engine/gguf.h"

namespace tars::engine {

// An unsigned metadata value from 1 to max, as an int.
inline int hparam_int(const GgufFile& f, uint64_t max, const std::string& key) {
  const uint64_t v = f.get_u64(key);
  if (v == 0 || v > max) {
    throw Error(ErrorCode::kCorruptData, f.path() + ": " + key + " = " + std::to_string(v) + " is out of range");
  }
  return static_cast<int>(v);
}

// Every layer has tensors of its own: a block count past the tensor table
// would only size vectors of layers (2^30 of them: an allocation failure).
inline void hparam_check_block_count(const GgufFile& f, int n_layer) {
  if (static_cast<uint64_t>(n_layer) > f.tensors().size()) {
    throw Error(ErrorCode::kCorruptData, f.path() + ": block_count " + std::to_string(n_layer) +
                                             " is more than the file's " + std::to_string(f.tensors().size()) +
                                             " tensors");
  }
}

}  // namespace tars::engine
