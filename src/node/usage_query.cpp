// usage_query_parse (usage_log.h), apart from the PostgreSQL client so the
// requests fuzzer links it alone.
#include "common/error.h"
#include "node/usage_log.h"

namespace tars::node {

namespace {

// What a date or time may be written with; PostgreSQL reads the rest (and
// gets it as a parameter, never in the SQL text).
bool timestamp_chars(const std::string& s) {
  if (s.size() > 64) return false;
  for (char ch : s) {
    const bool ok = (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    ch == '-' || ch == ':' || ch == '.' || ch == '+' || ch == ' ';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

UsageQuery usage_query_parse(const std::string& since, const std::string& until, const std::string& group) {
  UsageQuery q;
  for (const auto& [name, value] : {std::pair{"since", &since}, std::pair{"until", &until}}) {
    if (!timestamp_chars(*value)) {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("'") + name + "' must be a date or time such as 2026-11-27 or " +
                      "2026-11-27T18:00:00Z, got \"" + value->substr(0, 80) + "\"");
    }
  }
  q.since = since;
  q.until = until;
  if (!group.empty()) {
    if (group != "model" && group != "day" && group != "node") {
      throw Error(ErrorCode::kInvalidArgument,
                  "'group' must be model, day or node, got \"" + group.substr(0, 80) + "\"");
    }
    q.group = group;
  }
  return q;
}

}  // namespace tars::node
