// libFuzzer target for the chat-template renderer (engine/jinja*.cpp):
// templates come from model files, i.e. untrusted input. For any input bytes
// taken as template text, with a fixed conversation:
//   - parsing either throws tars::Error or gives a template;
//   - rendering either throws tars::Error or returns text within the output
//     limit, and stops within its step budget (so no input hangs: libFuzzer's
//     -timeout catches one that does), never overflowing the stack on deep
//     nesting (AddressSanitizer reports that) or leaking (LeakSanitizer);
//   - chat_template_guess_family and ChatTemplate::from_override never crash.
// Small limits keep each input fast; the code paths are the ones the default
// limits use.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/error.h"
#include "engine/chat_template.h"
#include "engine/jinja.h"

using namespace tars::engine;

namespace {

JinjaDict conversation(bool add_generation_prompt) {
  auto msg = [](const char* role, const char* content) {
    return JinjaValue(JinjaDict{{"role", JinjaValue(role)}, {"content", JinjaValue(content)}});
  };
  return {
      {"messages", JinjaValue(JinjaList{msg("system", "You are terse. /no_think"), msg("user", " Hi \n"),
                                        msg("assistant", "Hello."), msg("user", "Name a colour, \xc3\xa9.")})},
      {"add_generation_prompt", JinjaValue(add_generation_prompt)},
      {"bos_token", JinjaValue("<s>")},
      {"eos_token", JinjaValue("</s>")},
      {"tools", JinjaValue::none()},
  };
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)chat_template_guess_family(text);
  try {
    (void)ChatTemplate::from_override(text, "<s>", "</s>");
  } catch (const tars::Error&) {
  }

  JinjaOptions options;
  options.now_unix = 1700000000;
  options.limits.max_steps = 200000;
  options.limits.max_output_bytes = 1 << 16;
  options.limits.max_value_bytes = 1 << 16;
  options.limits.max_list_items = 1 << 12;
  options.limits.max_call_depth = 16;
  try {
    JinjaTemplate t(text);
    std::string out = t.render(conversation(size % 2 == 0), options);
    if (out.size() > options.limits.max_output_bytes) {
      std::fprintf(stderr, "jinja_fuzz: output of %zu bytes passed the limit\n", out.size());
      std::abort();
    }
  } catch (const tars::Error&) {
    // A refused template (or raise_exception) is a fine outcome.
  }
  return 0;
}
