// The GGUF reader on real files from other writers (../shared/models):
// stories260K, the tokenizer vocabularies, and the reference models, whose
// tensor table is checked against quant/reference.json (written by another
// engine's tools). Also: a truncated copy of a real model gives one clear line.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "engine/gguf.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

namespace fs = std::filesystem;
using test::fixture;
using test::fixtures_dir;
using test::TempDir;

// Checks that hold for any file the reader accepted: each tensor lies inside
// the file, after the metadata, aligned, with the size its type and shape give,
// and its mapped bytes are the file's bytes (`raw`: the file read with a plain
// read, not through the mapping).
void expect_tensors_valid(const GgufFile& f, const std::string& raw) {
  ASSERT_EQ(raw.size(), f.file_size());
  EXPECT_EQ(f.data_offset() % f.alignment(), 0u);
  for (const auto& t : f.tensors()) {
    SCOPED_TRACE(f.path() + ": " + t.name);
    auto traits = tensor_type_traits(static_cast<uint32_t>(t.type));
    ASSERT_TRUE(traits);
    uint64_t n = 1;
    for (uint64_t d : t.shape) n *= d;
    EXPECT_EQ(t.n_elems, n);
    EXPECT_EQ(t.n_bytes, n / traits->block_elems * traits->block_bytes);
    EXPECT_EQ(t.offset % f.alignment(), 0u);
    ASSERT_LE(f.data_offset() + t.offset + t.n_bytes, f.file_size());
    EXPECT_EQ(std::memcmp(t.data, raw.data() + f.data_offset() + t.offset, t.n_bytes), 0);
    EXPECT_EQ(f.find_tensor(t.name), &t);
  }
}

std::vector<std::string> gguf_files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".gguf") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(GgufFixtures, Stories260K) {
  auto f = GgufFile::open(fixture("stories260K/stories260K.gguf"));
  EXPECT_EQ(f->version(), 3u);
  EXPECT_FALSE(f->has("general.alignment"));
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_u64("llama.embedding_length"), 64u);
  EXPECT_EQ(f->get_u64("llama.block_count"), 5u);
  EXPECT_EQ(f->get_u64("llama.feed_forward_length"), 172u);
  EXPECT_EQ(f->get_u64("llama.attention.head_count"), 8u);
  EXPECT_EQ(f->get_u64("llama.attention.head_count_kv"), 4u);
  EXPECT_EQ(f->get_u64("llama.context_length"), 128u);
  EXPECT_FLOAT_EQ(f->get_f64("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  // Unset token ids are stored as 0xFFFFFFFF, under the historical spelling.
  EXPECT_EQ(f->get_u64("tokenizer.ggml.seperator_token_id"), 0xFFFFFFFFu);
  EXPECT_EQ(f->get_u64("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "llama");

  const auto* tokens = f->get_string_array("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ(f->get_float_array("tokenizer.ggml.scores")->size(), 512u);
  EXPECT_EQ(f->get_int_array("tokenizer.ggml.token_type")->size(), 512u);

  const auto* emb = f->find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<uint64_t>{64, 512}));
  EXPECT_EQ(emb->type, TensorType::kF32);
  EXPECT_EQ(emb->n_bytes, 64u * 512 * 4);

  // Five layers of nine tensors, plus token_embd, output_norm and output.
  EXPECT_EQ(f->tensors().size(), 5u * 9 + 3);
  for (int l = 0; l < 5; ++l) {
    EXPECT_NE(f->find_tensor("blk." + std::to_string(l) + ".attn_q.weight"), nullptr) << l;
  }
  EXPECT_EQ(f->find_tensor("blk.5.attn_q.weight"), nullptr);
  const auto* k = f->find_tensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->shape, (std::vector<uint64_t>{64, 32}));  // 4 KV heads x head dim 8

  expect_tensors_valid(*f, test::read_file(f->path()));
  // Tensors fill the data section up to the last padding.
  uint64_t end = 0;
  for (const auto& t : f->tensors()) end = std::max(end, f->data_offset() + t.offset + t.n_bytes);
  EXPECT_LT(f->file_size() - end, f->alignment());
}

TEST(GgufFixtures, Stories260KThroughTheWriterKeepsEveryValueAndByte) {
  auto f = GgufFile::open(fixture("stories260K/stories260K.gguf"));
  GgufWriter w;
  for (const auto& [k, v] : f->metadata()) w.set_value(k, v);
  for (const auto& t : f->tensors()) {
    w.add_tensor_view(t.name, t.type, t.shape, {t.data, t.n_bytes});
  }
  TempDir dir;
  w.write(dir.file("copy.gguf"));
  auto g = GgufFile::open(dir.file("copy.gguf"));
  // Same layout conventions (alignment 32, each tensor padded): the copy is
  // byte-identical to the original.
  EXPECT_EQ(test::sha256_hex(test::read_file(g->path()).data(), g->file_size()),
            test::sha256_hex(test::read_file(f->path()).data(), f->file_size()));
  ASSERT_EQ(g->metadata().size(), f->metadata().size());
  for (size_t i = 0; i < f->metadata().size(); ++i) {
    EXPECT_EQ(g->metadata()[i].first, f->metadata()[i].first);
    EXPECT_EQ(g->metadata()[i].second.type, f->metadata()[i].second.type);
  }
  EXPECT_EQ(*g->get_string_array("tokenizer.ggml.tokens"), *f->get_string_array("tokenizer.ggml.tokens"));
  EXPECT_EQ(*g->get_float_array("tokenizer.ggml.scores"), *f->get_float_array("tokenizer.ggml.scores"));
  ASSERT_EQ(g->tensors().size(), f->tensors().size());
  for (size_t i = 0; i < f->tensors().size(); ++i) {
    const auto& a = f->tensors()[i];
    const auto& b = g->tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape);
    ASSERT_EQ(a.n_bytes, b.n_bytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.n_bytes), 0) << a.name;
  }
}

TEST(GgufFixtures, TruncatedStories260KGivesOneClearLine) {
  std::string raw = test::read_file(fixture("stories260K/stories260K.gguf"));
  ASSERT_GT(raw.size(), 1000000u);
  TempDir dir;
  // Inside the header, the vocabulary, the tensor table and the tensor data.
  for (size_t cut : {size_t{20}, size_t{3000}, size_t{13000}, size_t{1000000}, raw.size() - 1}) {
    std::string path = dir.file("stories-cut" + std::to_string(cut) + ".gguf");
    test::write_file(path, raw.substr(0, cut));
    try {
      GgufFile::open(path);
      ADD_FAILURE() << "a copy cut at " << cut << " bytes opened";
    } catch (const Error& e) {
      std::string msg = e.what();
      std::cout << "  cut at " << cut << ": " << msg << "\n";
      EXPECT_EQ(e.code(), ErrorCode::kCorruptData);
      EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_TRUE(msg.find("truncated") != std::string::npos ||
                  msg.find("past the end") != std::string::npos)
          << msg;
    }
  }
}

TEST(GgufFixtures, EveryVocabularyAndReferenceFileOpens) {
  std::vector<std::string> files;
  for (const char* sub : {"vocab", "reference", "reference/quant"}) {
    auto in = gguf_files_in(fixtures_dir() + "/" + sub);
    EXPECT_FALSE(in.empty()) << sub;
    files.insert(files.end(), in.begin(), in.end());
  }
  EXPECT_GE(files.size(), 3u + 5 + 10);
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    std::unique_ptr<GgufFile> f;
    ASSERT_NO_THROW(f = GgufFile::open(path));
    EXPECT_TRUE(f->has("general.architecture"));
    expect_tensors_valid(*f, test::read_file(path));
    if (path.find("/vocab/") != std::string::npos) {
      EXPECT_TRUE(f->tensors().empty());
      EXPECT_GT(f->get_string_array("tokenizer.ggml.tokens")->size(), 1000u);
    } else {
      EXPECT_FALSE(f->tensors().empty());
    }
  }
}

// The two large vocabularies are stored compressed; decompress them with the
// zstd tool (a Debian package the setup installs) and read them too.
TEST(GgufFixtures, CompressedVocabulariesOpen) {
  if (std::system("zstd --version > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "the zstd tool is not installed";
  }
  TempDir dir;
  const std::pair<const char*, size_t> files[] = {{"ggml-vocab-llama-bpe.gguf", 128256},
                                                  {"ggml-vocab-qwen2.gguf", 0}};
  for (const auto& [name, n_tokens] : files) {
    SCOPED_TRACE(name);
    std::string src = fixture(std::string("vocab/") + name + ".zst");
    std::string out = dir.file(name);
    std::string cmd = "zstd -q -d -o '" + out + "' '" + src + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto f = GgufFile::open(out);
    EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "gpt2");
    const auto* tokens = f->get_string_array("tokenizer.ggml.tokens");
    ASSERT_NE(tokens, nullptr);
    if (n_tokens) {
      EXPECT_EQ(tokens->size(), n_tokens);
    }
    EXPECT_EQ(f->get_int_array("tokenizer.ggml.token_type")->size(), tokens->size());
    EXPECT_GT(f->get_string_array("tokenizer.ggml.merges")->size(), 10000u);
  }
}

// quant/reference.json lists every tensor's type and shape as llama.cpp's
// tools saw them: the type numbering and shape parsing must agree.
TEST(GgufFixtures, QuantTensorTablesMatchReferenceJson) {
  std::string text = test::read_file(fixture("reference/quant/reference.json"));
  auto ref = nlohmann::json::parse(text);
  const auto& files = ref.at("files");
  EXPECT_EQ(files.size(), 10u);
  std::set<std::string> types_seen;
  for (const auto& [file, entry] : files.items()) {
    SCOPED_TRACE(file);
    auto f = GgufFile::open(fixture("reference/quant/" + file));
    const auto& tensors = entry.at("tensors");
    EXPECT_EQ(f->tensors().size(), tensors.size());
    for (const auto& [name, t] : tensors.items()) {
      const GgufTensorInfo* mine = f->find_tensor(name);
      ASSERT_NE(mine, nullptr) << name;
      EXPECT_EQ(std::string(tensor_type_name(mine->type)), t.at("type").get<std::string>()) << name;
      EXPECT_EQ(mine->shape, t.at("shape").get<std::vector<uint64_t>>()) << name;
      types_seen.insert(std::string(tensor_type_name(mine->type)));
    }
  }
  // Every type tars computes with appears in the fixtures.
  for (const char* t : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}) {
    EXPECT_TRUE(types_seen.count(t)) << t;
    EXPECT_TRUE(tensor_type_traits(static_cast<uint32_t>(*tensor_type_from_name(t)))->supported) << t;
  }
}

}  // namespace
}  // namespace tars::engine
