#pragma once
// Loading one declared model into a HostedModel: open the GGUF file, make
// its backend, and build a decoder (with chat template and scheduler) or an
// encoder. Per-model ctx_size / slots come from the declaration, falling
// back to the [engine] settings.

#include <memory>

#include "node/config.h"

namespace tars::node {

struct HostedModel;

// Throws tars::Error naming the file and the problem.
std::unique_ptr<HostedModel> hosted_model_load(const ModelDecl& decl, const NodeConfig& config);

}  // namespace tars::node
