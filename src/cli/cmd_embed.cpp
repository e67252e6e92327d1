// `tars embed MODEL "text" ...`: one-shot local embeddings, one JSON line per
// input on stdout: {"index": i, "tokens": n, "embedding": [...]} (with
// pooling none, "embedding" is one array per token). Inputs are the texts on
// the command line, then the lines of --file, numbered in that order.
// Truncations and timing go to stderr.
//
// With a reranker (rank pooling) and --query, each input is scored against
// the query instead: {"index": i, "tokens": n, "score": s} (the head's raw
// score, "scores" for a head with several outputs).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "common/error.h"
#include "engine/backend.h"
#include "engine/embed.h"
#include "engine/encoder.h"
#include "engine/gguf.h"

namespace tars::cli {
namespace {

// Keys in the order written ("index", "tokens", "embedding"), and numbers as
// float: a float printed as a double would take 17 digits for 9 that mean
// anything.
using OutJson = nlohmann::basic_json<nlohmann::ordered_map, std::vector, std::string, bool,
                                     std::int64_t, std::uint64_t, float>;

struct EmbedFlags {
  std::string model_path;
  std::vector<std::string> texts;
  std::string file;  // one input per line; "-" = stdin
  std::string query; // --query: rank the inputs against it (a reranker)
  bool has_query = false;
  int threads = 0;   // 0 = physical cores
  std::string device = "auto";  // --device (engine_options.h)
  int batch_tokens = engine::EncoderOptions{}.max_batch_tokens;
  engine::EmbedOptions embed;
};

// Every line is an input (an empty line is an empty input); a final newline
// does not start another one. CR before LF is dropped.
void read_lines(const std::string& path, std::vector<std::string>& out) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) throw Error(ErrorCode::kIo, path + ": cannot open the input file");
    in = &file;
  }
  std::string line;
  while (std::getline(*in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  if (in->bad()) throw Error(ErrorCode::kIo, path + ": cannot read the input file");
}

int run(const EmbedFlags& f) {
  std::vector<std::string> texts = f.texts;
  if (!f.file.empty()) read_lines(f.file, texts);
  if (texts.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "no inputs: give texts after the model or --file FILE");
  }
  auto gguf = std::shared_ptr<const engine::GgufFile>(engine::GgufFile::open(f.model_path));
  if (!engine::encoder_is_encoder_file(*gguf)) {
    throw Error(ErrorCode::kUnsupported,
                f.model_path + ": architecture '" +
                    gguf->opt_string("general.architecture").value_or("?") +
                    "' is not an embedding model (tars embed runs bert); use tars run for text generation");
  }
  auto backend = make_backend(f.device, f.threads);
  engine::EncoderOptions eo;
  eo.max_batch_tokens = f.batch_tokens;
  auto encoder = engine::Encoder::load(gguf, *backend, eo);

  const bool rank = encoder->hparams().pooling == engine::PoolingType::kRank;
  if (rank && !f.has_query) {
    throw Error(ErrorCode::kInvalidArgument,
                f.model_path + " is a reranker (rank pooling): give --query TEXT to score the inputs against it");
  }
  const auto t0 = std::chrono::steady_clock::now();
  // (rerank_texts refuses a model that is not a reranker, saying why.)
  const std::vector<engine::Embedding> out = f.has_query ? engine::rerank_texts(*encoder, f.query, texts, f.embed)
                                                         : engine::embed_texts(*encoder, texts, f.embed);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  const int dim = rank ? encoder->n_out() : encoder->n_embd();
  const bool per_token = encoder->hparams().pooling == engine::PoolingType::kNone;
  size_t n_tokens = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const engine::Embedding& e = out[i];
    n_tokens += e.n_tokens;
    if (e.truncated()) {
      std::fprintf(stderr, "tars: input %zu truncated from %d to %d tokens\n", i, e.n_tokens_input,
                   e.n_tokens);
    }
    OutJson line = {{"index", i}, {"tokens", e.n_tokens}};
    if (rank && dim == 1) {
      line["score"] = e.values[0];
    } else if (rank) {
      line["scores"] = e.values;
    } else if (per_token) {
      OutJson rows = OutJson::array();
      for (size_t r = 0; r * dim < e.values.size(); ++r) {
        rows.push_back(std::vector<float>(e.values.begin() + r * dim, e.values.begin() + (r + 1) * dim));
      }
      line["embedding"] = std::move(rows);
    } else {
      line["embedding"] = e.values;
    }
    std::fputs(line.dump().c_str(), stdout);
    std::fputc('\n', stdout);
  }
  std::fflush(stdout);
  std::fprintf(stderr, "tars: %zu inputs, %zu tokens, dimension %d, %s pooling%s, in %.1f ms (%.1f inputs/s)\n",
               out.size(), n_tokens, dim, engine::pooling_type_name(encoder->hparams().pooling),
               f.embed.normalize && !rank ? ", normalised" : "", ms, out.size() / (ms / 1000.0 + 1e-9));
  return 0;
}

}  // namespace

void add_embed_command(CLI::App& app, CommandResult& result) {
  auto f = std::make_shared<EmbedFlags>();
  CLI::App* cmd = app.add_subcommand("embed", "Embed texts with a local embedding model (BERT)");
  cmd->add_option("model", f->model_path, "GGUF embedding model file")->required();
  cmd->add_option("texts", f->texts, "Texts to embed, one input each");
  cmd->add_option("--file", f->file, "File with one input per line (- reads stdin)");
  cmd->add_option_function<std::string>(
      "--query",
      [f](const std::string& q) {
        f->query = q;
        f->has_query = true;
      },
      "With a reranker: score each input against this query");
  cmd->add_option("-t,--threads", f->threads, "Threads (default: physical cores)");
  add_device_flag(*cmd, f->device);
  cmd->add_flag("!--no-normalize", f->embed.normalize, "Do not L2-normalise the vectors");
  cmd->add_flag("--truncate,!--no-truncate", f->embed.truncate,
                "Cut inputs over the limit to [CLS] + the first pieces + [SEP] (default), or fail "
                "naming the input (--no-truncate)");
  cmd->add_option("--max-tokens", f->embed.max_tokens,
                  "Most tokens per input, [CLS] and [SEP] included (default: the model's context)");
  cmd->add_option("-b,--batch-tokens", f->batch_tokens, "Tokens per forward pass, inputs packed")
      ->capture_default_str();
  cmd->callback([f, &result] { result.exit_code = run(*f); });
}

}  // namespace tars::cli
