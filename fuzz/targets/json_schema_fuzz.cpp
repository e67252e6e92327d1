// libFuzzer target: structured output (engine/json_schema.h). The input is a
// JSON schema, then optionally a NUL byte and a text. The schema goes through
// JsonSchema::parse (a request's response_format or Ollama format: untrusted);
// when it compiles, the text goes through SchemaPrefix a byte at a time, and a
// short walk follows the bytes SchemaPrefix allows. Nothing may crash, and
// every text SchemaPrefix calls complete must be JSON that nlohmann/json
// reads (the validity against the schema itself is checked against Python's
// jsonschema in tests/model/json_schema_test.cpp).
//
// Seeds: json_schema_seeds/ beside this file.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/error.h"
#include "engine/json_schema.h"

namespace {

void check_complete(const tars::engine::SchemaPrefix& p, const std::string& text) {
  if (p.complete() && !nlohmann::json::accept(text)) std::abort();  // complete, yet not JSON
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view schema_text = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  std::shared_ptr<const tars::engine::JsonSchema> schema;
  try {
    schema = tars::engine::JsonSchema::parse(schema_text);
  } catch (const tars::Error&) {
    return 0;  // refused with a message: fine
  }
  tars::engine::SchemaPrefix p(schema);
  std::string read;
  for (char c : text) {
    if (!p.push(static_cast<unsigned char>(c))) break;
    read += c;
    check_complete(p, read);
  }
  // A walk of the allowed bytes from the start, chosen by the text's bytes
  // (or the lowest allowed one).
  tars::engine::SchemaPrefix w(schema);
  tars::engine::SchemaPrefix trial(schema);
  std::string walked;
  for (size_t step = 0; step < 48; ++step) {
    const unsigned char want = step < text.size() ? static_cast<unsigned char>(text[step]) : '}';
    bool moved = false;
    for (int k = 0; k < 256 && !moved; ++k) {
      const unsigned char b = static_cast<unsigned char>((want + k) & 0xFF);
      trial.assign(w);
      if (trial.push(b)) {
        if (!w.push(b)) std::abort();  // the copy and the state disagree
        walked += static_cast<char>(b);
        moved = true;
      }
    }
    if (!moved) break;
    check_complete(w, walked);
  }
  return 0;
}
