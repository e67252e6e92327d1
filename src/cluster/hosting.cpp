#include "cluster/hosting.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "cluster/estimate.h"
#include "common/error.h"
#include "engine/gguf.h"
#include "engine/quantize.h"
#include "node/file_sha256.h"
#include "node/model_fetch.h"
#include "node/model_host.h"
#include "node/model_info.h"
#include "node/node.h"

namespace fs = std::filesystem;

namespace tars::cluster {

std::string hosting_file_name(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || name.find('\0') != std::string::npos) {
    throw Error(ErrorCode::kInvalidArgument,
                "model file name '" + name + "' is not a plain file name inside the model directory");
  }
  return name;
}

namespace {

// The file to load: the declared path, or the copy in the model directory,
// fetched from the source if needed.
std::string locate_file(node::Node& node, const node::ModelDecl& decl,
                        const std::optional<ModelSource>& source, const std::string& id) {
  if (!source) {
    if (!fs::exists(decl.path)) {
      throw Error(ErrorCode::kNotFound, "model '" + id + "': file " + decl.path + " does not exist");
    }
    return decl.path;
  }
  const std::string dir = node.config().data_dir + "/models";
  const std::string name = hosting_file_name(source->file);
  const std::string local = dir + "/" + name;
  std::error_code ec;
  if (fs::exists(local, ec) && fs::file_size(local, ec) == source->size && !source->sha256.empty()) {
    node::Sha256Cache cache(node.config().data_dir + "/state/file_sha256.json");
    if (cache.get(local) == source->sha256) return local;
    spdlog::warn("model {}: {} differs from the coordinator's copy; fetching it again", id, local);
  }
  node::FetchRequest fr;
  fr.url_base = source->url;
  fr.model_id = id;
  fr.token = source->token;
  fr.dest_dir = dir;
  fr.file = name;
  fr.size = source->size;
  fr.sha256 = source->sha256;
  return node::fetch_model(fr, {}, &node.host().fetches());
}

// The file at the planned type: the file itself, or a quantized copy made
// once in the model directory.
std::string at_type(node::Node& node, const std::string& path, const std::string& quant,
                    const std::string& id) {
  if (quant.empty()) return path;
  auto file = engine::GgufFile::open(path);
  const std::string have = estimate_file_quant(*file);
  file.reset();
  if (have == quant) return path;
  auto target = engine::quantize_target_from_name(quant);
  if (!target) throw Error(ErrorCode::kInvalidArgument, "model '" + id + "': unknown quantization " + quant);
  fs::path p(path);
  const std::string dir = node.config().data_dir + "/models";
  fs::create_directories(dir);
  const std::string out = dir + "/" + p.stem().string() + "." + quant + ".gguf";
  if (fs::exists(out)) return out;
  spdlog::info("model {}: quantizing {} ({}) to {} for the plan", id, path, have, quant);
  engine::QuantizeOptions qo;
  qo.target = *target;
  qo.n_threads = node.config().threads;
  const std::string tmp = out + ".part";
  engine::quantize_model(path, tmp, qo);
  fs::rename(tmp, out);
  return out;
}

}  // namespace

std::function<uint64_t(const node::ModelDecl&)> hosting_estimator(const node::NodeConfig& config) {
  return [config](const node::ModelDecl& d) -> uint64_t {
    try {
      auto file = engine::GgufFile::open(d.path);
      EstimateOptions o;
      o.n_ctx = d.ctx_size > 0 ? d.ctx_size : config.ctx_size;
      o.n_slots = d.slots > 0 ? d.slots : config.slots;
      o.max_batch = config.batch;
      o.kv_type = config.kv_type == "f32" ? engine::TensorType::kF32 : engine::TensorType::kF16;
      return estimate_model(*file, o).model_bytes();
    } catch (const std::exception&) {
      return 0;
    }
  };
}

void hosting_apply(node::Node& node, node::ModelDecl decl, const std::optional<ModelSource>& source,
                   uint64_t memory_budget) {
  // A budget set in the node's own configuration wins over the plan's.
  if (memory_budget > 0 && node.config().memory_budget == 0 &&
      memory_budget != node.host().memory_budget()) {
    spdlog::info("memory budget for this node's models: {} (from the plan)", memory_budget);
    node.host().set_memory_budget(memory_budget);
  }
  const std::string id = node::model_id(decl);
  decl.alias = id;
  std::string path = locate_file(node, decl, source, id);
  if (decl.quant.size() == 1) path = at_type(node, path, decl.quant[0], id);
  decl.path = path;
  if (decl.load == "on_demand") {
    node.host().declare(decl);
  } else {
    node.host().load(decl);
  }
}

}  // namespace tars::cluster
