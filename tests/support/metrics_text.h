#pragma once
// Reads Prometheus's text exposition format back, for tests: each sample
// line "name{labels} value" becomes an entry keyed by "name{labels}"
// exactly as written; # HELP and # TYPE lines are kept by family name.

#include <map>
#include <string>

namespace tars::test {

struct MetricsText {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family -> counter | gauge | histogram ...
  std::map<std::string, std::string> help;

  bool has(const std::string& key) const { return samples.count(key) != 0; }
  // The sample's value; throws std::out_of_range naming the key if absent.
  double at(const std::string& key) const;
};

// Throws std::runtime_error on a line that is not a comment, blank or
// "key value".
MetricsText parse_metrics_text(const std::string& text);

}  // namespace tars::test
