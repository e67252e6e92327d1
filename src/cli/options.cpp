#include "cli/options.h"

#include <unistd.h>

#include <cstdio>
#include <memory>

#include "cli/commands.h"

extern char** environ;

namespace tars::cli {

void add_node_flags(CLI::App& cmd, NodeFlags& flags) {
  cmd.add_option("--config", flags.config_file, "TOML configuration file (env TARS_CONFIG)");
  cmd.add_option("-m,--model", flags.models,
                 "GGUF model to serve (repeatable; replaces the config file's [[model]] list)");
  cmd.add_option("-a,--alias", flags.aliases,
                 "API id of a --model (repeatable: the i-th names the i-th --model; default: the "
                 "file name without .gguf)");
  cmd.add_option("--embedding-model", flags.embedding_models,
                 "GGUF embedding model to serve on /embed and /v1/embeddings (repeatable)");
  cmd.add_option("--rerank-model", flags.rerank_models,
                 "GGUF reranker (a cross-encoder) to serve on /v1/rerank and /rerank (repeatable)");
  cmd.add_flag("--print-config", flags.print_config,
               "Print the resolved configuration with the source of each value, then exit");
  for (const auto& f : node::config_fields()) {
    if (f.flag.empty()) continue;
    cmd.add_option_function<std::string>(
        f.flag, [&flags, key = f.key](const std::string& v) { flags.values[key] = v; },
        f.help + " [" + f.key + ", env " + f.env + "]");
  }
}

std::map<std::string, std::string> process_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

node::NodeConfig resolve_node_config(const NodeFlags& flags) {
  node::ConfigInputs in;
  in.config_file = flags.config_file;
  in.env = process_env();
  in.flags = flags.values;
  in.model_flags = flags.models;
  in.alias_flags = flags.aliases;
  in.embedding_model_flags = flags.embedding_models;
  in.rerank_model_flags = flags.rerank_models;
  if (auto it = in.env.find("HOME"); it != in.env.end()) in.home = it->second;
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) == 0) in.hostname = host;
  return node::config_resolve(in);
}

void add_node_role_command(CLI::App& app, CommandResult& result, const std::string& name,
                           const std::string& help, int (*run)(const node::NodeConfig&)) {
  auto flags = std::make_shared<NodeFlags>();
  CLI::App* cmd = app.add_subcommand(name, help);
  add_node_flags(*cmd, *flags);
  cmd->callback([flags, &result, run] {
    node::NodeConfig config = resolve_node_config(*flags);
    if (flags->print_config) {
      std::fputs(node::config_to_toml(config).c_str(), stdout);
      result.exit_code = 0;
      return;
    }
    result.exit_code = run(config);
  });
}

}  // namespace tars::cli
