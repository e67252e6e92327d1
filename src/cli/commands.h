#pragma once
// Each `tars` subcommand lives in its own cmd_<name>.cpp and registers
// itself on the CLI11 app here. A command's callback parses options into its
// subsystem's options struct and runs it; the exit code comes back through
// CommandResult.

#include <CLI/CLI.hpp>

namespace tars::cli {

// Set by a subcommand's callback; main() returns it.
struct CommandResult {
  int exit_code = 0;
};

void add_gpus_command(CLI::App& app, CommandResult& result);
void add_serve_command(CLI::App& app, CommandResult& result);
void add_run_command(CLI::App& app, CommandResult& result);
void add_quantize_command(CLI::App& app, CommandResult& result);
void add_embed_command(CLI::App& app, CommandResult& result);
void add_bench_command(CLI::App& app, CommandResult& result);
void add_plan_command(CLI::App& app, CommandResult& result);
void add_worker_command(CLI::App& app, CommandResult& result);

}  // namespace tars::cli
