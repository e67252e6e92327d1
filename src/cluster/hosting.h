#pragma once
// How a node comes to host a model the plan gives it (the work behind
// model.load, and the coordinator's own loads):
//   1. the file: the declared path if it exists on this node; else
//      <data_dir>/models/<file> if it is there with the right size and
//      sha256; else fetched from the source node (/files, resumable,
//      sha256-checked: node/model_fetch.h);
//   2. the type: when the plan asks for another quantization than the
//      file's (an F16 phi-2 that only fits as Q8_0), the engine's quantizer
//      writes <data_dir>/models/<stem>.<TYPE>.gguf once and that is loaded;
//   3. the load: an always-loaded model is loaded now; an on-demand one is
//      declared and loads with its first request.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "node/config.h"

namespace tars::node {
class Node;
}

namespace tars::cluster {

// Where to fetch a model file this node lacks.
struct ModelSource {
  std::string url;     // the serving node's base URL ("http://pc1:8000")
  std::string token;   // join token for its /files API
  std::string file;    // file name (no directory)
  uint64_t size = 0;
  std::string sha256;  // "" = ask the server's /files/{id}/info
};

// The file name a path ends in; throws tars::Error(kInvalidArgument) for a
// name that could leave the model directory ('/', "..", empty).
std::string hosting_file_name(const std::string& name);

// Makes `node` host `decl` (its alias is the model id; quant, when it has
// one entry, the type to run). `source` is used when the file is missing.
// Throws tars::Error naming the model and the step that failed.
// `memory_budget` (0 = none): bytes the plan gave this node's models on
// their device; on-demand models beyond it evict the least recently used
// (the node's ModelHost enforces it with hosting_estimator's figures).
void hosting_apply(node::Node& node, node::ModelDecl decl, const std::optional<ModelSource>& source,
                   uint64_t memory_budget = 0);

// The node's ModelHost estimator: the planner's figure (estimate.h: weights +
// KV cache + compute for the decl's context and slots) from the file's
// header; 0 when the file cannot be read (its load then fails with the
// reason).
std::function<uint64_t(const node::ModelDecl&)> hosting_estimator(const node::NodeConfig& config);

}  // namespace tars::cluster
