#include "node/config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "support/test_support.h"

namespace tars::node {
namespace {

ConfigInputs base_inputs() {
  ConfigInputs in;
  in.home = "/home/u";
  in.hostname = "pc1";
  return in;
}

// Expects config_resolve to throw kConfig with every piece of `parts` in the message.
void expect_config_error(const ConfigInputs& in, std::initializer_list<std::string> parts) {
  try {
    config_resolve(in);
    ADD_FAILURE() << "expected a configuration error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig);
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
        << "message '" << e.what() << "' lacks '" << p << "'";
  }
}

TEST(Config, DefaultsWithoutAnySource) {
  NodeConfig c = config_resolve(base_inputs());
  EXPECT_EQ(c.port, 8000);
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.node_name, "pc1");
  EXPECT_EQ(c.data_dir, "/home/u/.tars");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.sources.at("server.port"), "default");
  EXPECT_TRUE(c.models.empty());
}

TEST(Config, PrecedenceFileThenEnvThenFlags) {
  test::TempDir dir;
  test::write_file(dir.file("t.toml"),
                   "[server]\nport = 9001\nhost = \"0.0.0.0\"\n[node]\nname = \"from-file\"\n"
                   "[log]\nlevel = \"debug\"\n");
  ConfigInputs in = base_inputs();
  in.config_file = dir.file("t.toml");
  NodeConfig c = config_resolve(in);
  EXPECT_EQ(c.port, 9001);
  EXPECT_EQ(c.sources.at("server.port"), "file");
  EXPECT_EQ(c.node_name, "from-file");

  in.env = {{"TARS_PORT", "9002"}, {"TARS_NODE_NAME", "from-env"}, {"UNRELATED", "x"}};
  c = config_resolve(in);
  EXPECT_EQ(c.port, 9002);
  EXPECT_EQ(c.sources.at("server.port"), "env");
  EXPECT_EQ(c.node_name, "from-env");
  EXPECT_EQ(c.host, "0.0.0.0");  // still from the file
  EXPECT_EQ(c.log_level, "debug");

  in.flags = {{"server.port", "9003"}};
  c = config_resolve(in);
  EXPECT_EQ(c.port, 9003);
  EXPECT_EQ(c.sources.at("server.port"), "flag");
  EXPECT_EQ(c.node_name, "from-env");
}

TEST(Config, ConfigFileFromEnvironment) {
  test::TempDir dir;
  test::write_file(dir.file("t.toml"), "[server]\nport = 7000\n");
  ConfigInputs in = base_inputs();
  in.env = {{"TARS_CONFIG", dir.file("t.toml")}};
  EXPECT_EQ(config_resolve(in).port, 7000);
}

TEST(Config, ModelsFromFileAndFlags) {
  test::TempDir dir;
  test::write_file(dir.file("t.toml"),
                   "[[model]]\npath = \"m/a.gguf\"\nalias = \"a\"\n"
                   "[[model]]\npath = \"/abs/e.gguf\"\nrole = \"embedding\"\n");
  ConfigInputs in = base_inputs();
  in.config_file = dir.file("t.toml");
  NodeConfig c = config_resolve(in);
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[0].path, dir.path() + "/m/a.gguf");  // relative to the file
  EXPECT_EQ(c.models[0].alias, "a");
  EXPECT_EQ(c.models[1].role, "embedding");
  in.model_flags = {"x.gguf"};
  c = config_resolve(in);
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].path, "x.gguf");
}

TEST(Config, ModelPlacementKeysReadAndPrintBack) {
  test::TempDir dir;
  test::write_file(dir.file("t.toml"),
                   "[[model]]\npath = \"/m/phi-2.gguf\"\nctx_size = 2048\nslots = 1\n"
                   "pin = \"pc2/gpu0\"\nquant = [\"F16\", \"Q8_0\"]\nload = \"on_demand\"\n"
                   "keep_alive = 60\nsha256 = \"abc\"\nreplicas = 2\ngpu_layers = 20\n");
  ConfigInputs in = base_inputs();
  in.config_file = dir.file("t.toml");
  NodeConfig c = config_resolve(in);
  ASSERT_EQ(c.models.size(), 1u);
  const ModelDecl& m = c.models[0];
  EXPECT_EQ(m.ctx_size, 2048);
  EXPECT_EQ(m.slots, 1);
  EXPECT_EQ(m.pin, "pc2/gpu0");
  EXPECT_EQ(m.quant, (std::vector<std::string>{"F16", "Q8_0"}));
  EXPECT_EQ(m.load, "on_demand");
  EXPECT_EQ(m.keep_alive_s, 60);
  EXPECT_EQ(m.sha256, "abc");
  EXPECT_EQ(m.replicas, 2);
  EXPECT_EQ(m.gpu_layers, 20);
  test::write_file(dir.file("round.toml"), config_to_toml(c));
  in.config_file = dir.file("round.toml");
  EXPECT_EQ(config_to_json(config_resolve(in))["model"], config_to_json(c)["model"]);
  // Defaults: resident, the engine's context and slots.
  in.model_flags = {"/m/x.gguf"};
  c = config_resolve(in);
  EXPECT_EQ(c.models[0].load, "always");
  EXPECT_EQ(c.models[0].ctx_size, 0);
  EXPECT_EQ(c.models[0].replicas, 1);
  EXPECT_EQ(c.models[0].gpu_layers, -1);  // every layer on the device
}

TEST(Config, ErrorsNameFileKeyAndProblem) {
  test::TempDir dir;
  ConfigInputs in = base_inputs();
  in.config_file = dir.file("t.toml");

  test::write_file(in.config_file, "[server]\nport = \"eighty\"\n");
  expect_config_error(in, {"t.toml", "server.port", "integer"});
  test::write_file(in.config_file, "[server]\nport = 70000\n");
  expect_config_error(in, {"t.toml", "server.port", "65535"});
  test::write_file(in.config_file, "[server]\nprot = 80\n");
  expect_config_error(in, {"t.toml", "server.prot", "unknown key"});
  test::write_file(in.config_file, "[server\nport = 80\n");
  expect_config_error(in, {"t.toml:1"});
  test::write_file(in.config_file, "[log]\nlevel = \"loud\"\n");
  expect_config_error(in, {"log.level", "loud"});
  test::write_file(in.config_file, "[[model]]\nrole = \"chat\"\n");
  expect_config_error(in, {"model 1", "path"});
  test::write_file(in.config_file, "[[model]]\npath = \"a\"\nrole = \"painter\"\n");
  expect_config_error(in, {"model 1", "role", "painter"});
  test::write_file(in.config_file, "[[model]]\npath = \"a\"\nload = \"lazy\"\n");
  expect_config_error(in, {"model 1", "load", "lazy"});
  test::write_file(in.config_file, "[[model]]\npath = \"a\"\nslots = -1\n");
  expect_config_error(in, {"model 1", "slots", "integer"});
  test::write_file(in.config_file, "[[model]]\npath = \"a\"\nquant = \"Q8_0\"\n");
  expect_config_error(in, {"model 1", "quant", "array"});
  test::write_file(in.config_file, "[server]\nmax_body = \"lots\"\n");
  expect_config_error(in, {"server.max_body", "lots"});

  ConfigInputs env_in = base_inputs();
  env_in.env = {{"TARS_PORT", "80x"}};
  expect_config_error(env_in, {"TARS_PORT", "80x"});
  ConfigInputs flag_in = base_inputs();
  flag_in.flags = {{"server.port", "0"}};
  expect_config_error(flag_in, {"--port"});
  ConfigInputs missing = base_inputs();
  missing.config_file = dir.file("nope.toml");
  expect_config_error(missing, {"nope.toml", "does not exist"});
}

TEST(Config, SecretsAreRedacted) {
  ConfigInputs in = base_inputs();
  in.env = {{"TARS_JOIN_TOKEN", "s3cret-token"}};
  NodeConfig c = config_resolve(in);
  EXPECT_EQ(c.join_token, "s3cret-token");
  std::string toml = config_to_toml(c);
  std::string json = config_to_json(c).dump();
  EXPECT_EQ(toml.find("s3cret"), std::string::npos);
  EXPECT_EQ(json.find("s3cret"), std::string::npos);
  EXPECT_NE(toml.find("<redacted>"), std::string::npos);
  EXPECT_EQ(config_to_json(c)["cluster"]["join_token"], "<redacted>");
}

TEST(Config, PrintedTomlReadsBackToTheSameConfig) {
  test::TempDir dir;
  ConfigInputs in = base_inputs();
  in.flags = {{"server.port", "8123"}, {"node.name", "n1"}, {"server.max_body", "1MiB"}};
  in.model_flags = {"/m/x.gguf"};
  NodeConfig a = config_resolve(in);
  test::write_file(dir.file("round.toml"), config_to_toml(a));
  ConfigInputs back = base_inputs();
  back.config_file = dir.file("round.toml");
  NodeConfig b = config_resolve(back);
  EXPECT_EQ(config_to_json(a)["server"], config_to_json(b)["server"]);
  EXPECT_EQ(b.node_name, "n1");
  EXPECT_EQ(b.max_body_bytes, 1u << 20);
  ASSERT_EQ(b.models.size(), 1u);
  EXPECT_EQ(b.models[0].path, "/m/x.gguf");
}

}  // namespace
}  // namespace tars::node
