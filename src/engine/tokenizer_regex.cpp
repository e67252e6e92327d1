// Pre-tokenizer regexes through PCRE2 (Debian's libpcre2-8).
//
// Compiled with UTF and UCP, so \s \d \w and \p{L} \p{N} follow Unicode
// properties (PCRE2's tables, Unicode 14 in Debian 12), and with
// MATCH_INVALID_UTF so arbitrary bytes are safe to search: an invalid
// sequence is never part of a match. The JIT is used when the library has
// one: it makes splitting several times faster.

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "common/error.h"
#include "engine/tokenizer_internal.h"

namespace tars::engine::tokenizer_detail {

namespace {

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

struct MatchData {
  explicit MatchData(const pcre2_code* code)
      : md(pcre2_match_data_create_from_pattern(code, nullptr)) {
    if (!md) throw Error(ErrorCode::kInternal, "tokenizer: out of memory for PCRE2 match data");
  }
  ~MatchData() { pcre2_match_data_free(md); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
  pcre2_match_data* md;
};

}  // namespace

bool regex_jit_available() {
  uint32_t jit = 0;
  return pcre2_config(PCRE2_CONFIG_JIT, &jit) >= 0 && jit == 1;
}

RegexSplitter::RegexSplitter(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err,
                                   &err_offset, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error(ErrorCode::kInternal, "tokenizer: regex does not compile at offset " +
                                          std::to_string(err_offset) + ": " +
                                          reinterpret_cast<const char*>(msg) + " in " + pattern);
  }
  code_ = code;
  if (regex_jit_available()) jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() { pcre2_code_free(as_code(code_)); }

void RegexSplitter::matches(std::string_view text, std::vector<Match>& out) const {
  const pcre2_code* code = as_code(code_);
  MatchData data(code);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    // The whole text is the subject (lookarounds see the neighbours); the
    // search starts at `pos`.
    const int rc = pcre2_match(code, subject, text.size(), pos, 0, data.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      // Resource limits: cannot happen with these expressions on any input
      // (no nested quantifiers), but never loop or crash: the rest is a gap.
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.md);
    size_t s = ov[0], e = ov[1];
    if (e <= s) {  // an empty match would not advance: skip one byte
      pos = s + 1;
      continue;
    }
    int group = 0;
    for (int g = 1; g < rc; ++g) {
      if (ov[2 * g] != PCRE2_UNSET) {
        group = g;
        break;
      }
    }
    out.push_back({s, e, group});
    pos = e;
  }
}

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>& out) const {
  std::vector<Match> ms;
  matches(text, ms);
  size_t pos = 0;
  for (const Match& m : ms) {
    if (m.start > pos) out.push_back(text.substr(pos, m.start - pos));
    out.push_back(text.substr(m.start, m.end - m.start));
    pos = m.end;
  }
  if (pos < text.size()) out.push_back(text.substr(pos));
}

}  // namespace tars::engine::tokenizer_detail
