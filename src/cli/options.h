#pragma once
// Turning the command line and the process environment into a NodeConfig.
// The environment is read here and nowhere deeper (STYLE.md, point 8).

#include <CLI/CLI.hpp>
#include <map>
#include <string>
#include <vector>

#include "node/config.h"

namespace tars::cli {

// Storage for the node options CLI11 fills in.
struct NodeFlags {
  std::string config_file;
  std::map<std::string, std::string> values;  // TOML key -> text given
  std::vector<std::string> models;
  std::vector<std::string> aliases;
  std::vector<std::string> embedding_models;
  std::vector<std::string> rerank_models;     // --rerank-model
  bool print_config = false;
};

// Registers --config, --model, --print-config and one flag per config
// field that has one (config_fields()).
void add_node_flags(CLI::App& cmd, NodeFlags& flags);

// A subcommand that runs a node role (`serve`, `worker`): the node flags,
// --print-config, then run(config) for the exit code.
struct CommandResult;
void add_node_role_command(CLI::App& app, CommandResult& result, const std::string& name,
                           const std::string& help, int (*run)(const node::NodeConfig&));

// The process environment as a map.
std::map<std::string, std::string> process_env();

// Resolves the configuration from the parsed flags and the environment.
node::NodeConfig resolve_node_config(const NodeFlags& flags);

}  // namespace tars::cli
