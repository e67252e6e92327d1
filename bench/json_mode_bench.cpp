// What JSON mode costs per generated token: one sampling step with the JSON
// constraint (engine/json_prefix.h), and with a JSON schema's (structured
// output, engine/json_schema.h), against the same step without one, on the
// real vocabularies of ../shared/models/vocab (LLaMA's SPM of 32,000 tokens,
// GPT-2's BPE of 50,257), with random logits. The constraint tries every
// token's bytes on a copy of its state, so its cost grows with the
// vocabulary and is the same whatever the model.
//
//   build/bench/bench_json_mode_bench [--steps 400] [--fixtures ../shared/models]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/json_prefix.h"
#include "engine/json_schema.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

using namespace tars::engine;
using Clock = std::chrono::steady_clock;

namespace {

// A response format as applications send them: required and optional
// properties of each type, an enum, a nullable string, an array of objects.
const char* const kSchema = R"({"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 40}, "age": {"type": "integer"}, "score": {"type": "number"},
    "admin": {"type": "boolean"}, "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "color": {"enum": ["red", "green", "blue"]},
    "pets": {"type": "array", "maxItems": 3, "items": {"type": "object",
             "properties": {"kind": {"type": "string"}, "legs": {"type": "integer"}}, "required": ["kind"]}}},
  "required": ["name", "age", "pets"], "additionalProperties": false})";

enum class Mode { kPlain, kJson, kSchema };

// Microseconds per sample() over `steps` steps (each run restarts the
// constraint when its value completes, so every state is visited).
double time_steps(const Tokenizer& tok, Mode mode, int steps, uint64_t seed) {
  const int n = tok.vocab().n_vocab();
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> noise(0.0f, 2.0f);
  std::vector<std::vector<float>> logits(16, std::vector<float>(n));
  for (auto& l : logits) {
    for (auto& x : l) x = noise(rng);
  }
  SamplerOptions o;
  o.temperature = 0.8f;
  o.seed = seed;
  auto make = [&] {
    auto s = std::make_unique<Sampler>(o);
    static const auto schema = JsonSchema::parse(kSchema);
    if (mode == Mode::kJson) s->set_constraint(std::make_unique<JsonConstraint>(tok));
    if (mode == Mode::kSchema) s->set_constraint(std::make_unique<SchemaConstraint>(tok, schema));
    return s;
  };
  auto s = make();
  double total_us = 0;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = Clock::now();
    const int32_t id = s->sample(logits[i % logits.size()], {});
    total_us += std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (tok.is_end_of_generation(id)) s = make();  // (construction not timed)
  }
  return total_us / steps;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 400;
  std::string fixtures = "../shared/models";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--fixtures")) fixtures = argv[i + 1];
  }
  std::printf("| vocabulary | tokens | sample() us, plain | with JSON mode | ratio | with a JSON schema | ratio |"
              " pieces, once per model, ms |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"}) {
    auto file = GgufFile::open(fixtures + "/vocab/" + name);
    auto tok = Tokenizer::from_gguf(*file);
    const auto t0 = Clock::now();
    JsonConstraint probe(*tok);  // the first one makes the tokenizer's pieces (Tokenizer::pieces)
    const double setup_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    const double plain = time_steps(*tok, Mode::kPlain, steps, 1);
    const double json = time_steps(*tok, Mode::kJson, steps, 1);
    const double schema = time_steps(*tok, Mode::kSchema, steps, 1);
    std::printf("| %s | %d | %.1f | %.1f | %.1fx | %.1f | %.1fx | %.1f |\n", name, tok->vocab().n_vocab(), plain, json,
                json / plain, schema, schema / plain, setup_ms);
  }
  return 0;
}
