#include "support/metrics_text.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace tars::test {

double MetricsText::at(const std::string& key) const {
  auto it = samples.find(key);
  if (it == samples.end()) throw std::out_of_range("no sample " + key);
  return it->second;
}

MetricsText parse_metrics_text(const std::string& text) {
  MetricsText out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream f(line);
      std::string hash, kind, name;
      f >> hash >> kind >> name;
      std::string rest;
      std::getline(f, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      if (kind == "TYPE") out.types[name] = rest;
      if (kind == "HELP") out.help[name] = rest;
      continue;
    }
    auto space = line.rfind(' ');
    if (space == std::string::npos || space == 0) throw std::runtime_error("bad sample line: " + line);
    std::string value = line.substr(space + 1);
    double v = value == "+Inf" ? HUGE_VAL : value == "-Inf" ? -HUGE_VAL : std::stod(value);
    if (!out.samples.emplace(line.substr(0, space), v).second) {
      throw std::runtime_error("sample written twice: " + line);
    }
  }
  return out;
}

}  // namespace tars::test
