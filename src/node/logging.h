#pragma once
// Logs go to stderr and to <data dir>/logs/<node name>.log, rotated by size.
// Uses spdlog's default logger, so any layer may call spdlog::info(...).

#include <string>

namespace tars::node {

struct LogOptions {
  std::string level = "info";  // trace | debug | info | warn | error | off
  std::string file;            // "" = stderr only
  size_t max_file_bytes = 10u << 20;
  int max_files = 5;
};

// Installs the default logger. Throws tars::Error(kIo) when the log file's
// folder cannot be created.
void logging_init(const LogOptions& options);

}  // namespace tars::node
