// Embeddings per second for the all-MiniLM-L6-v2 shape on the CPU, model
// load excluded (shared/BASELINES.md has the best-known engine's figures for
// the same shape and inputs):
//   sentences: 1024 inputs of 13 tokens ([CLS] + 11 words + [SEP])
//   passages:   128 inputs of 125 tokens
// The model has random F32 weights (speed does not depend on the values),
// written once by the tests' random BERT builder with the MiniLM config and
// vocab.txt from the fixtures. Inputs are random whole words of the
// vocabulary, so each word is exactly one token. Timing covers tokenizing,
// batching, the forward passes, pooling and normalisation: what a caller of
// embed_texts waits for. Each case runs `--reps` times; the best and the
// median are printed, with the machine's load average (shared machines).
//
//   bench_embed_bench [--threads 2] [--reps 3] [--batch-tokens N ...]
//                     [--fixtures DIR] [--model PATH] [--type f32|f16]
//                     [--device cpu|cuda|auto] [--call-inputs N ...] [--rerank]
//
// --rerank replaces them by reranking: a MiniLM-shape cross-encoder (the
// shape of cross-encoder/ms-marco-MiniLM-L-6-v2: rank pooling, a
// classification head) scores 256 documents of 60 words against a query of
// 8 words (pairs of 71 tokens), through rerank_texts; the baseline, in the
// same run, embeds the same 256 texts (query and document as one input, 70
// tokens) with the same trunk as a mean-pooled embedding model. The ratio is
// what pairs, token types and the head cost over plain embedding.
//
// --call-inputs N (repeatable) replaces the two cases above by one: 4096
// sentences of 12 tokens ([CLS] + 10 words + [SEP]) handed to embed_texts N
// at a time (a client sending batches of N): the GPU check's "batch 32 and
// 128" (bench/gpu_check.sh). It prints sentences/s per N.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "engine/backend.h"
#include "engine/backend_select.h"
#include "engine/embed.h"
#include "engine/encoder.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "support/bert_builder.h"

namespace {

using namespace tars;

struct Args {
  int threads = 2;
  int reps = 3;
  std::vector<int> batch_tokens;  // empty: the encoder's default
  std::string fixtures = "../shared/models";
  std::string model;              // empty: build one in /tmp
  std::string type = "f32";
  std::string device = "cpu";
  std::vector<int> call_inputs;   // non-empty: the batched-calls case only
  bool rerank = false;            // the reranking case only
};

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// n inputs of `words` random whole-word tokens each.
std::vector<std::string> make_inputs(const engine::Tokenizer& tok, int n, int words, uint64_t seed) {
  std::vector<std::string> pool;
  const std::string mark = "\xE2\x96\x81";
  for (const std::string& t : tok.vocab().tokens) {
    if (t.size() < mark.size() + 3 || t.compare(0, mark.size(), mark) != 0) continue;
    const std::string w = t.substr(mark.size());
    if (std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; })) pool.push_back(w);
  }
  std::mt19937_64 rng(seed);
  std::vector<std::string> out(n);
  for (std::string& s : out) {
    for (int i = 0; i < words; ++i) s += (i ? " " : "") + pool[rng() % pool.size()];
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Wall-clock rate (the figure to compare), and inputs per CPU-second of this
// process: on a machine shared with other work the wall rate drops while the
// CPU rate mostly does not, so the pair shows how loaded the run was.
void run_case(engine::Encoder& enc, const char* name, const std::vector<std::string>& texts,
              double baseline, int reps) {
  const size_t tokens_each = engine::embed_tokenize(enc, texts[0]).size();
  engine::embed_texts(enc, std::vector<std::string>(texts.begin(), texts.begin() + 8));  // warm up
  std::vector<double> rates, cpu_rates;
  for (int r = 0; r < reps; ++r) {
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    const auto out = engine::embed_texts(enc, texts);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(out.size() / s);
    cpu_rates.push_back(out.size() / (cpu_seconds() - c0));
  }
  const double best = *std::max_element(rates.begin(), rates.end()), med = median(rates);
  std::printf("%-9s %4zu x %3zu tokens  batch %4d  best %6.1f/s (%5.0f tokens/s)  median %6.1f/s  "
              "%.2fx baseline %.0f/s  per CPU-second %6.1f  load %s\n",
              name, texts.size(), tokens_each, enc.max_batch_tokens(), best, best * tokens_each, med,
              best / baseline, baseline, median(cpu_rates), load_average().c_str());
  std::fflush(stdout);
}

// `texts` handed to embed_texts `per_call` at a time.
void run_calls_case(engine::Encoder& enc, const std::vector<std::string>& texts, int per_call,
                    int reps) {
  const size_t tokens_each = engine::embed_tokenize(enc, texts[0]).size();
  engine::embed_texts(enc, std::vector<std::string>(texts.begin(), texts.begin() + per_call));
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    size_t done = 0;
    for (size_t i = 0; i < texts.size(); i += per_call) {
      const size_t end = std::min(texts.size(), i + per_call);
      done += engine::embed_texts(enc, std::vector<std::string>(texts.begin() + i, texts.begin() + end)).size();
    }
    rates.push_back(done / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double best = *std::max_element(rates.begin(), rates.end());
  std::printf("calls of %4d x %3zu tokens  best %8.1f sentences/s (%8.0f tokens/s)  median %8.1f/s  "
              "sentences_per_s=%.1f\n",
              per_call, tokens_each, best, best * tokens_each, median(rates), best);
  std::fflush(stdout);
}

// Reranking against embedding the same texts with the same trunk.
void run_rerank_case(const Args& a, engine::Backend& backend) {
  test::RandomBertSpec spec = test::bert_spec_from_hf_config(a.fixtures + "/minilm/config.json",
                                                             a.fixtures + "/minilm/vocab.txt");
  spec.weight_type = a.type == "f16" ? engine::TensorType::kF16 : engine::TensorType::kF32;
  const std::string embed_path = "/tmp/tars-bench-minilm-mean-" + a.type + ".gguf";
  const std::string rank_path = "/tmp/tars-bench-minilm-rank-" + a.type + ".gguf";
  test::write_random_bert(spec, embed_path);
  spec.pooling = 4;  // the same seed: the same trunk, then the head
  test::write_random_bert(spec, rank_path);
  auto embed_file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(embed_path));
  auto rank_file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(rank_path));
  auto embedder = engine::Encoder::load(embed_file, backend, {});
  auto ranker = engine::Encoder::load(rank_file, backend, {});
  const std::string query = make_inputs(ranker->tokenizer(), 1, 8, 5)[0];
  const std::vector<std::string> docs = make_inputs(ranker->tokenizer(), 256, 60, 6);
  std::vector<std::string> joined;
  for (const std::string& d : docs) joined.push_back(query + " " + d);
  engine::rerank_texts(*ranker, query, std::vector<std::string>(docs.begin(), docs.begin() + 8));  // warm up
  engine::embed_texts(*embedder, std::vector<std::string>(joined.begin(), joined.begin() + 8));
  std::vector<double> rank_rates, embed_rates;
  size_t pair_tokens = 0, embed_tokens = 0;
  for (int r = 0; r < a.reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    const auto scores = engine::rerank_texts(*ranker, query, docs);
    rank_rates.push_back(scores.size() / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    pair_tokens = scores[0].n_tokens;
    t0 = std::chrono::steady_clock::now();
    const auto vecs = engine::embed_texts(*embedder, joined);
    embed_rates.push_back(vecs.size() / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    embed_tokens = vecs[0].n_tokens;
  }
  const double rank_best = *std::max_element(rank_rates.begin(), rank_rates.end());
  const double embed_best = *std::max_element(embed_rates.begin(), embed_rates.end());
  std::printf("rerank    %4zu pairs x %3zu tokens  best %6.1f pairs/s (%6.0f tokens/s)  median %6.1f/s\n",
              docs.size(), pair_tokens, rank_best, rank_best * pair_tokens, median(rank_rates));
  std::printf("embed     %4zu texts x %3zu tokens  best %6.1f texts/s (%6.0f tokens/s)  median %6.1f/s  (baseline)\n",
              joined.size(), embed_tokens, embed_best, embed_best * embed_tokens, median(embed_rates));
  std::printf("rerank / embed: %.2fx in inputs per second, %.2fx in tokens per second  load %s\n",
              rank_best / embed_best, rank_best * pair_tokens / (embed_best * embed_tokens), load_average().c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    auto next = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--threads")) a.threads = std::atoi(next("--threads"));
    else if (!std::strcmp(argv[i], "--reps")) a.reps = std::max(1, std::atoi(next("--reps")));
    else if (!std::strcmp(argv[i], "--batch-tokens")) a.batch_tokens.push_back(std::atoi(next("--batch-tokens")));
    else if (!std::strcmp(argv[i], "--fixtures")) a.fixtures = next("--fixtures");
    else if (!std::strcmp(argv[i], "--model")) a.model = next("--model");
    else if (!std::strcmp(argv[i], "--type")) a.type = next("--type");
    else if (!std::strcmp(argv[i], "--device")) a.device = next("--device");
    else if (!std::strcmp(argv[i], "--rerank")) a.rerank = true;
    else if (!std::strcmp(argv[i], "--call-inputs")) a.call_inputs.push_back(std::max(1, std::atoi(next("--call-inputs"))));
    else {
      std::fprintf(stderr, "unknown argument %s (see the comment at the top of embed_bench.cpp)\n", argv[i]);
      return 2;
    }
  }
  try {
    if (a.rerank) {
      std::string fallback;
      auto backend = engine::backend_for_device(a.device, a.threads, &fallback);
      if (!fallback.empty()) std::printf("no CUDA backend (%s): the CPU\n", fallback.c_str());
      std::printf("backend %s, threads %d, reps %d\n", backend->name().c_str(), a.threads, a.reps);
      run_rerank_case(a, *backend);
      return 0;
    }
    if (a.model.empty()) {
      a.model = "/tmp/tars-bench-minilm-" + a.type + ".gguf";
      test::RandomBertSpec spec = test::bert_spec_from_hf_config(a.fixtures + "/minilm/config.json",
                                                                 a.fixtures + "/minilm/vocab.txt");
      spec.weight_type = a.type == "f16" ? engine::TensorType::kF16 : engine::TensorType::kF32;
      test::write_random_bert(spec, a.model);
      std::printf("model: %s (MiniLM shape, random %s weights)\n", a.model.c_str(), a.type.c_str());
    }
    if (a.batch_tokens.empty()) a.batch_tokens.push_back(engine::EncoderOptions{}.max_batch_tokens);
    auto file = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(a.model));
    std::string fallback;
    auto backend = engine::backend_for_device(a.device, a.threads, &fallback);
    if (!fallback.empty()) std::printf("no CUDA backend (%s): the CPU\n", fallback.c_str());
    std::printf("backend %s, threads %d, reps %d\n", backend->name().c_str(), a.threads, a.reps);
    if (!a.call_inputs.empty()) {
      auto enc = engine::Encoder::load(file, *backend, {});
      const auto sentences = make_inputs(enc->tokenizer(), 4096, 10, 3);
      for (int n : a.call_inputs) run_calls_case(*enc, sentences, n, a.reps);
      return 0;
    }
    for (int bt : a.batch_tokens) {
      engine::EncoderOptions eo;
      eo.max_batch_tokens = bt;
      auto enc = engine::Encoder::load(file, *backend, eo);
      // 11 and 123 words: 13 and 125 tokens with [CLS] and [SEP].
      const auto sentences = make_inputs(enc->tokenizer(), 1024, 11, 1);
      const auto passages = make_inputs(enc->tokenizer(), 128, 123, 2);
      run_case(*enc, "sentences", sentences, 365, a.reps);
      run_case(*enc, "passages", passages, 20, a.reps);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "embed_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
