// tars: one program for every role of the cluster (see DESIGN.md).
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "common/error.h"
#include "common/version.h"

int main(int argc, char** argv) {
  CLI::App app{"tars: run AI models across a small cluster of machines with different GPUs"};
  app.set_version_flag("--version", std::string("tars ") + tars::kVersion);
  app.require_subcommand(1);
  tars::cli::CommandResult result;
  tars::cli::add_gpus_command(app, result);
  tars::cli::add_serve_command(app, result);
  tars::cli::add_run_command(app, result);
  tars::cli::add_quantize_command(app, result);
  tars::cli::add_embed_command(app, result);
  tars::cli::add_bench_command(app, result);
  tars::cli::add_plan_command(app, result);
  tars::cli::add_worker_command(app, result);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tars::Error& e) {
    std::fprintf(stderr, "tars: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tars: unexpected error: %s\n", e.what());
    return 1;
  }
  return result.exit_code;
}
