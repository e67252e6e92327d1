// Model files that are valid GGUF but wrong as models: hyper-parameters that
// contradict the tensors, that overflow, or that ask for absurd memory, and
// tensors missing or of the wrong shape. Model::load (and the planner's
// estimate, which reads the same header) must refuse each with a
// tars::Error naming the problem: never a crash, an allocation failure or a
// model that runs with nonsense sizes. The GGUF container itself is fuzzed
// (fuzz/targets/gguf_fuzz.cpp); this is the layer above it.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "cluster/estimate.h"
#include "common/error.h"
#include "engine/backend.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "support/bert_builder.h"
#include "support/model_builder.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

struct Edit {
  const char* what;
  std::map<std::string, uint64_t> set_u32;  // metadata keys set to a value (as u32, or u64 when wider)
  std::string set_string_key, set_string_value;
  std::string drop_tensor;                   // a tensor left out
  std::string shrink_tensor;                 // a tensor written with one row fewer
  const char* needle;                        // in the error message
};

// Copies `src` with `e` applied.
void write_edited(const GgufFile& src, const Edit& e, const std::string& path) {
  GgufWriter w;
  for (const auto& [key, value] : src.metadata()) {
    if (key == "general.alignment") continue;  // set by the writer
    w.set_value(key, value);
  }
  for (const auto& [key, v] : e.set_u32) {
    if (v > UINT32_MAX) w.set_u64(key, v);
    else w.set_u32(key, static_cast<uint32_t>(v));
  }
  if (!e.set_string_key.empty()) w.set_string(e.set_string_key, e.set_string_value);
  for (const GgufTensorInfo& t : src.tensors()) {
    if (t.name == e.drop_tensor) continue;
    if (t.name == e.shrink_tensor) {
      std::vector<uint64_t> shape = t.shape;
      const uint64_t row = t.n_bytes / shape.back();
      shape.back() -= 1;
      w.add_tensor_view(t.name, t.type, shape, {t.data, t.n_bytes - row});
      continue;
    }
    w.add_tensor_view(t.name, t.type, t.shape, {t.data, t.n_bytes});
  }
  w.write(path);
}

// Loads `path` with `load`, which must throw a tars::Error (kCorruptData or
// kUnsupported) naming the file and holding `needle`; the planner's estimate
// of the same header must give an error or a figure, never a crash.
template <class Load>
void expect_refused(const std::string& path, const char* needle, Load load) {
  std::shared_ptr<const GgufFile> file;
  try {
    file = GgufFile::open(path);
  } catch (const Error& err) {
    ADD_FAILURE() << "the container itself was refused: " << err.what();
    return;
  }
  try {
    load(file);
    ADD_FAILURE() << "loaded";
  } catch (const Error& err) {
    EXPECT_TRUE(err.code() == ErrorCode::kCorruptData || err.code() == ErrorCode::kUnsupported) << err.what();
    EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find(path), std::string::npos) << "names the file: " << err.what();
  } catch (const std::exception& err) {
    ADD_FAILURE() << "threw something else than tars::Error: " << err.what();
  }
  try {
    cluster::EstimateOptions o;
    (void)cluster::estimate_model(*file, o);
  } catch (const Error&) {
  } catch (const std::exception& err) {
    ADD_FAILURE() << "the estimate threw something else than tars::Error: " << err.what();
  }
}

// Each edit of `src` is refused by `load`; the unedited copy loads (the
// edits, not the copying, are what is refused).
template <size_t N, class Load>
void refuse_each(const GgufFile& src, const Edit (&edits)[N], const test::TempDir& dir, Load load) {
  for (const Edit& e : edits) {
    SCOPED_TRACE(e.what);
    const std::string path = dir.file("bad.gguf");
    write_edited(src, e, path);
    expect_refused(path, e.needle, load);
  }
  write_edited(src, Edit{"none", {}, "", "", "", "", ""}, dir.file("copy.gguf"));
  EXPECT_NO_THROW(load(GgufFile::open(dir.file("copy.gguf"))));
}

TEST(ModelCorrupt, EveryContradictionIsRefusedByName) {
  test::TempDir dir;
  test::RandomModelSpec s;  // llama: 256 wide, 2 layers, 4 heads of 64, FFN 512
  s.weight_type = TensorType::kQ8_0;
  s.vocab_from = test::fixture("stories260K/stories260K.gguf");
  const std::string good = dir.file("good.gguf");
  test::write_random_model(s, good);
  const auto src = GgufFile::open(good);

  const Edit edits[] = {
      {"a layer more than the tensors", {{"llama.block_count", 3}}, "", "", "", "", "blk.2."},
      {"a billion layers", {{"llama.block_count", 1u << 30}}, "", "", "", "", "block_count"},
      {"no layers", {{"llama.block_count", 0}}, "", "", "", "", "block_count"},
      {"narrower than the tensors", {{"llama.embedding_length", 128}}, "", "", "", "", "head size"},
      {"an odd head size", {{"llama.attention.head_count", 3}}, "", "", "", "", "head"},
      {"more KV heads than heads", {{"llama.attention.head_count_kv", 3}}, "", "", "", "", "head_count_kv"},
      {"heads times key length overflows an int",
       {{"llama.attention.head_count", 1u << 20}, {"llama.attention.head_count_kv", 1u << 20},
        {"llama.attention.key_length", 1u << 20}},
       "", "", "", "", "out of range"},
      {"a key length past the width", {{"llama.attention.key_length", 1u << 30}}, "", "", "", "", "key_length"},
      {"an FFN wider than its tensors", {{"llama.feed_forward_length", 1u << 30}}, "", "", "", "", "expected"},
      {"rope past the head", {{"llama.rope.dimension_count", 66}}, "", "", "", "", "rope.dimension_count"},
      {"another architecture", {}, "general.architecture", "gpt2", "", "", "gpt2"},
      {"a missing norm", {}, "", "", "output_norm.weight", "", "output_norm.weight"},
      {"a missing projection", {}, "", "", "blk.1.attn_k.weight", "", "blk.1.attn_k.weight"},
      {"an embedding row short of the vocabulary", {}, "", "", "", "token_embd.weight", "token_embd"},
      {"an FFN matrix a row short", {}, "", "", "", "blk.0.ffn_up.weight", "blk.0.ffn_up.weight"},
  };
  auto backend = backend_cpu_create({});
  refuse_each(*src, edits, dir, [&](std::shared_ptr<const GgufFile> f) { Model::load(f, *backend, {}); });
}

TEST(ModelCorrupt, EncoderContradictionsAreRefusedByName) {
  test::TempDir dir;
  const std::string good = dir.file("bert.gguf");
  test::write_random_bert(test::small_random_bert(), good);
  const auto src = GgufFile::open(good);
  const Edit edits[] = {
      {"16 million layers (the most key_int allows)", {{"bert.block_count", 1u << 24}}, "", "", "", "", "block_count"},
      {"a billion positions", {{"bert.context_length", 1u << 30}}, "", "", "", "", "context_length"},
      {"heads that do not divide the width", {{"bert.attention.head_count", 5}}, "", "", "", "", "head_count"},
      {"a missing layer norm", {}, "", "", "blk.1.layer_output_norm.weight", "", "blk.1.layer_output_norm.weight"},
  };
  auto backend = backend_cpu_create({});
  refuse_each(*src, edits, dir, [&](std::shared_ptr<const GgufFile> f) { Encoder::load(f, *backend, {}); });
}

}  // namespace
}  // namespace tars::engine
