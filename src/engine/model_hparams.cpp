// Hyper-parameters of the decoder architectures, from GGUF metadata.
#include <cmath>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/gguf_hparams.h"
#include "engine/model.h"

namespace tars::engine {
namespace {

// The largest size a decoder's hyper-parameter may have.
int key_int(const GgufFile& f, const std::string& key) { return hparam_int(f, uint64_t{1} << 30, key); }

}  // namespace

ModelHParams model_read_hparams(const GgufFile& f) {
  ModelHParams hp;
  hp.arch = f.get_string("general.architecture");
  const std::string& a = hp.arch;
  if (a == "llama") {
    hp.rope.mode = RopeMode::kNormal;
  } else if (a == "qwen2") {
    hp.rope.mode = RopeMode::kNeox;
  } else if (a == "phi2") {
    hp.rope.mode = RopeMode::kNeox;
    hp.norm = NormKind::kLayer;
    hp.ffn = FfnKind::kGelu;
    hp.parallel_residual = true;
  } else if (a == "stablelm") {
    hp.rope.mode = RopeMode::kNeox;
    hp.norm = NormKind::kLayer;
  } else {
    throw Error(ErrorCode::kUnsupported,
                f.path() + ": architecture '" + a +
                    "' is not supported (tars generates with llama, qwen2, phi2 and stablelm, and embeds with bert)");
  }
  hp.name = f.opt_string("general.name").value_or("");
  hp.n_embd = key_int(f, a + ".embedding_length");
  hp.n_layer = key_int(f, a + ".block_count");
  hp.n_head = key_int(f, a + ".attention.head_count");
  hp.n_head_kv = f.has(a + ".attention.head_count_kv") ? key_int(f, a + ".attention.head_count_kv")
                                                        : hp.n_head;
  hp.n_ff = key_int(f, a + ".feed_forward_length");
  hp.n_ctx_train = key_int(f, a + ".context_length");
  hp.head_dim = f.has(a + ".attention.key_length") ? key_int(f, a + ".attention.key_length")
                                                   : hp.n_embd / hp.n_head;
  hparam_check_block_count(f, hp.n_layer);
  // q_dim() and kv_dim() are ints: each product must fit (and be a sane size).
  if (static_cast<int64_t>(hp.n_head) * hp.head_dim > (int64_t{1} << 30)) {
    throw Error(ErrorCode::kCorruptData, f.path() + ": head_count " + std::to_string(hp.n_head) + " x key_length " +
                                             std::to_string(hp.head_dim) + " is out of range");
  }
  if (hp.n_head % hp.n_head_kv != 0) {
    throw Error(ErrorCode::kCorruptData, f.path() + ": head_count " + std::to_string(hp.n_head) +
                                             " is not a multiple of head_count_kv " +
                                             std::to_string(hp.n_head_kv));
  }
  if (hp.norm == NormKind::kRms) {
    hp.norm_eps = static_cast<float>(f.opt_f64(a + ".attention.layer_norm_rms_epsilon").value_or(1e-5));
  } else {
    hp.norm_eps = static_cast<float>(f.opt_f64(a + ".attention.layer_norm_epsilon").value_or(1e-5));
  }
  hp.rope.n_rot = f.has(a + ".rope.dimension_count") ? key_int(f, a + ".rope.dimension_count")
                                                     : hp.head_dim;
  if (hp.rope.n_rot > hp.head_dim || hp.rope.n_rot % 2) {
    throw Error(ErrorCode::kCorruptData, f.path() + ": rope.dimension_count " +
                                             std::to_string(hp.rope.n_rot) +
                                             " must be even and at most the head size " +
                                             std::to_string(hp.head_dim));
  }
  hp.rope.freq_base = static_cast<float>(f.opt_f64(a + ".rope.freq_base").value_or(10000.0));
  // Linear rope scaling stretches positions; other kinds are refused rather
  // than silently ignored.
  std::string scaling = f.opt_string(a + ".rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    double factor = f.opt_f64(a + ".rope.scaling.factor").value_or(1.0);
    if (factor > 0) hp.rope.freq_scale = static_cast<float>(1.0 / factor);
  } else if (scaling != "none" && !scaling.empty()) {
    throw Error(ErrorCode::kUnsupported,
                f.path() + ": rope scaling '" + scaling + "' is not supported (linear is)");
  }
  if (auto fs = f.opt_f64(a + ".rope.scale_linear")) {
    if (*fs > 0) hp.rope.freq_scale = static_cast<float>(1.0 / *fs);
  }
  return hp;
}

}  // namespace tars::engine
