// JSON mode (engine/json_prefix.h) against an independent JSON parser
// (nlohmann/json): every prefix of a valid object is accepted and complete
// only at its end; on mutated documents the two agree on what is a whole
// object, except where JsonPrefix is stricter by design; and constrained
// sampling on stories260K's real vocabulary only ever ends with text the
// parser reads back as an object.
#include "engine/json_prefix.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "support/constrained_sampling.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

using nlohmann::json;

// A random JSON value, depth-bounded: objects, arrays, strings with escapes
// and multi-byte characters, numbers of every form, literals.
json random_value(std::mt19937& rng, int depth) {
  std::uniform_int_distribution<int> kind(0, depth > 4 ? 3 : 6);
  switch (kind(rng)) {
    case 0: {
      static const char* texts[] = {"", "a", "hello world", "quote \" and \\ backslash", "tab\tnew\nline",
                                    "caf\u00e9", "\u4e2d\u6587", "emoji \U0001F600", "ctrl \x01 byte", "/slash/"};
      return texts[rng() % 10];
    }
    case 1: {
      switch (rng() % 5) {
        case 0: return static_cast<int>(rng() % 1000) - 500;
        case 1: return 0;
        case 2: return std::ldexp(static_cast<double>(rng() % 100000) - 50000, static_cast<int>(rng() % 40) - 20);
        case 3: return 1e-30 * static_cast<double>(rng() % 7 + 1);
        default: return static_cast<uint64_t>(rng()) << 20;
      }
    }
    case 2: return rng() % 2 == 0;
    case 3: return nullptr;
    case 4: {
      json a = json::array();
      for (int i = static_cast<int>(rng() % 4); i > 0; --i) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      for (int i = static_cast<int>(rng() % 4); i > 0; --i) {
        std::string key(1, 'k');  // (appended to, not "k" + ...: GCC 12's false -Wrestrict)
        key += std::to_string(rng() % 100);
        o[key] = random_value(rng, depth + 1);
      }
      return o;
    }
  }
}

json random_object(std::mt19937& rng) {
  json o = json::object();
  for (int i = static_cast<int>(rng() % 5); i > 0; --i) {
    std::string key = "key ";
    key += std::to_string(i);
    o[key] = random_value(rng, 1);
  }
  return o;
}

TEST(JsonPrefix, EveryPrefixOfAValidObjectIsAcceptedAndCompleteOnlyAtTheEnd) {
  std::mt19937 rng(11);
  for (int n = 0; n < 500; ++n) {
    const json o = random_object(rng);
    for (int indent : {-1, 2}) {  // compact, and pretty-printed (a line break and indentation between tokens)
      const std::string text = o.dump(indent);
      JsonPrefix p;
      for (size_t i = 0; i < text.size(); ++i) {
        ASSERT_TRUE(p.push(static_cast<unsigned char>(text[i]))) << "byte " << i << " of " << text;
        ASSERT_EQ(p.complete(), i + 1 == text.size()) << "byte " << i << " of " << text;
      }
      EXPECT_FALSE(JsonPrefix(p).push(' ')) << "nothing may follow the object";
    }
  }
  // Hand-picked forms the generator may miss.
  for (const char* text : {R"({})", R"({"a":[]})", R"({"a":[[],{}]})", R"({"n":-0.5e+10,"m":0,"e":1E-2})",
                           R"({"u":"\u00e9\uD7FF\uE000\u0041"})", "{\"a\" :\n  1 ,\n  \"b\": [ true , false , null ]}"}) {
    JsonPrefix p;
    EXPECT_TRUE(p.push(text)) << text;
    EXPECT_TRUE(p.complete()) << text;
    EXPECT_TRUE(json::accept(text)) << text;
  }
}

// Where JsonPrefix is stricter than JSON by design (json_prefix.h): text not
// starting with '{' or going on after its end, a carriage return, a blank run
// over 20 or with two line breaks, a surrogate \u escape, nesting over 32, a
// number over 64 characters or with over 2 exponent digits. Scans a document
// the parser accepted.
bool stricter_rule_applies(const std::string& t) {
  if (t.empty() || t[0] != '{') return true;
  bool in_string = false, closed = false;
  int run = 0, breaks = 0, depth = 0, number = 0, exponent = -1;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (closed) return true;  // anything after the object, whitespace included
    if (in_string) {
      if (c == '\\') {
        if (t[i + 1] == 'u' && (t[i + 2] == 'd' || t[i + 2] == 'D') && std::string("89abcdefABCDEF").find(t[i + 3]) != std::string::npos) {
          return true;
        }
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (c == '\r') return true;
      breaks += c == '\n';
      if (++run > 20 || breaks > 1) return true;
      number = 0;
      continue;
    }
    run = breaks = 0;
    if (c == '"') in_string = true;
    if (c == '{' || c == '[') {
      if (++depth > 32) return true;
    }
    if (c == '}' || c == ']') closed = --depth == 0;
    const bool num_char = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
    number = num_char ? number + 1 : 0;
    if (number > 64) return true;
    // Exponent digits (a number's 'e' or 'E' starts the count).
    if (!num_char) exponent = -1;
    else if (c == 'e' || c == 'E') exponent = 0;
    else if (exponent >= 0 && c >= '0' && c <= '9' && ++exponent > 2) return true;
  }
  return false;
}

TEST(JsonPrefix, AgreesWithAParserOnMutatedDocuments) {
  std::mt19937 rng(23);
  const std::string alphabet = "{}[]:,\"\\ \n\t\r0123456789-+.eEtrufalsn\x01\x7f\xc3\xa9\xed\xa0\x80\xf4\x90ux";
  int accepted = 0, rejected = 0;
  for (int n = 0; n < 20000; ++n) {
    std::string text = random_object(rng).dump(rng() % 2 ? 2 : -1);
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0; --edits) {
      const size_t at = rng() % (text.size() + 1);
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0: if (at < text.size()) text[at] = c; break;
        case 1: text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c); break;
        default: if (at < text.size()) text.erase(at, 1); break;
      }
    }
    JsonPrefix p;
    const bool ours = p.push(text) && p.complete();
    bool theirs = false;
    try {
      theirs = json::parse(text).is_object();
    } catch (const json::exception&) {
    }
    if (ours) {
      EXPECT_TRUE(theirs) << "JsonPrefix completed what the parser refuses: " << json(text).dump();
    } else if (theirs) {
      EXPECT_TRUE(stricter_rule_applies(text)) << "JsonPrefix refused a plain object: " << json(text).dump();
    }
    accepted += ours;
    rejected += !ours;
  }
  // Both outcomes were exercised.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(rejected, 1000);
}

TEST(JsonPrefix, StricterRulesHold) {
  auto whole = [](const std::string& t) {
    JsonPrefix p;
    return p.push(t) && p.complete();
  };
  EXPECT_FALSE(whole(" {}"));              // begins with the object
  EXPECT_FALSE(whole("[1]"));              // an object at the top
  EXPECT_FALSE(whole("{}\n"));             // nothing after it
  EXPECT_FALSE(whole("{\n\n}"));           // one line break per run
  EXPECT_FALSE(whole("{\r\n}"));
  // (Joined with append, not "{" + ...: GCC 12 warns of a false -Wrestrict overlap there.)
  auto cat = [](std::initializer_list<std::string> parts) {
    std::string out;
    for (const auto& p : parts) out += p;
    return out;
  };
  EXPECT_FALSE(whole(cat({"{", std::string(21, ' '), "}"})));
  EXPECT_TRUE(whole(cat({"{", std::string(20, ' '), "}"})));
  EXPECT_FALSE(whole(R"({"a":"\ud800"})"));  // a lone surrogate
  EXPECT_FALSE(whole(R"({"a":"\uDFFF"})"));
  EXPECT_FALSE(whole(cat({"{\"a\":", std::string(65, '1'), "}"})));
  EXPECT_TRUE(whole(cat({"{\"a\":", std::string(64, '1'), "}"})));
  EXPECT_FALSE(whole(cat({"{\"a\":", std::string(32, '['), std::string(32, ']'), "}"})));  // 33 deep
  EXPECT_TRUE(whole(cat({"{\"a\":", std::string(31, '['), std::string(31, ']'), "}"})));
  EXPECT_FALSE(whole("{\"a\":\"\xc0\xaf\"}"));  // overlong UTF-8
  EXPECT_FALSE(whole("{\"a\":\"\xed\xa0\x80\"}"));  // an encoded surrogate
  EXPECT_FALSE(whole("{\"a\":1e100}"));    // three exponent digits
  EXPECT_TRUE(whole("{\"a\":-1.5E-99}"));
  EXPECT_FALSE(whole("{\"a\":01}"));
  EXPECT_FALSE(whole("{\"a\":1.}"));
  EXPECT_FALSE(whole("{\"a\":tru}"));
}

// Constrained sampling over stories260K's vocabulary with random logits:
// whenever the end of generation is chosen, the text is an object the
// parser reads; before that, the end is never allowed.
TEST(JsonConstraint, RandomLogitsOnARealVocabularyEndOnlyWithAnObject) {
  auto file = GgufFile::open(test::fixture("stories260K/stories260K.gguf"));
  auto tok = Tokenizer::from_gguf(*file);
  std::mt19937 rng(5);
  int finished = 0;
  for (int run = 0; run < 60; ++run) {
    const test::ConstrainedRun r =
        test::random_constrained_run(*tok, test::constrained_run_options(run, /*vary_top_k=*/false),
                                     std::make_unique<JsonConstraint>(*tok), rng, 300);
    if (!r.ended) continue;
    ASSERT_TRUE(r.complete_at_end) << r.text;
    EXPECT_TRUE(json::parse(r.text).is_object()) << r.text;
    ++finished;
  }
  EXPECT_GT(finished, 10);  // the seeds above do finish; the check is not vacuous
}

// The sampler looks for the allowed tokens among the best few hundred first
// (Sampler::constrain): it must choose exactly what an unconstrained sampler
// chooses when every token the constraint refuses is masked out of the
// logits, greedy and with top-k sampling, step after step.
TEST(JsonConstraint, ShortcutChoosesWhatMaskingEveryRefusedTokenChooses) {
  auto file = GgufFile::open(test::fixture("stories260K/stories260K.gguf"));
  auto tok = Tokenizer::from_gguf(*file);
  const int n_vocab = tok->vocab().n_vocab();
  std::mt19937 rng(9);
  std::normal_distribution<float> noise(0.0f, 2.0f);
  int steps = 0;
  for (int run = 0; run < 40; ++run) {
    SamplerOptions o;
    o.temperature = run % 2 == 0 ? 0.0f : 0.9f;
    o.top_k = run % 4 == 1 ? 5 : 40;
    o.seed = static_cast<uint64_t>(run);
    Sampler constrained(o), masked(o);
    constrained.set_constraint(std::make_unique<JsonConstraint>(*tok));
    JsonConstraint mirror(*tok);  // what the constrained sampler's constraint has seen
    std::vector<float> logits(n_vocab);
    for (int step = 0; step < 100; ++step, ++steps) {
      for (auto& l : logits) l = noise(rng);
      std::vector<float> m = logits;
      int allowed = 0;
      for (int i = 0; i < n_vocab; ++i) {
        if (mirror.allows(i)) ++allowed;
        else m[i] = -1e30f;
      }
      const int32_t a = constrained.sample(logits, {});
      const int32_t b = masked.sample(m, {});
      if (allowed >= o.top_k) {
        ASSERT_EQ(a, b) << "run " << run << " step " << step;
      }
      ASSERT_TRUE(mirror.allows(a)) << "run " << run << " step " << step;
      if (tok->is_end_of_generation(a)) break;
      mirror.accept(a);
    }
  }
  EXPECT_GT(steps, 1000);
}

}  // namespace
}  // namespace tars::engine
