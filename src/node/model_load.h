#pragma once
// Loading one declared model into a HostedModel: open the GGUF file, make
// its backend, and build a decoder (with chat template and scheduler) or an
// encoder. Per-model ctx_size / slots come from the declaration, falling
// back to the [engine] settings.

#include <memory>

#include "node/config.h"

namespace tars::node {

struct HostedModel;
class EmbedCache;

// Throws tars::Error naming the file and the problem. An embedding model
// gets `embed_cache` (when not null) and its file's sha256 for the keys.
std::unique_ptr<HostedModel> hosted_model_load(const ModelDecl& decl, const NodeConfig& config,
                                               std::shared_ptr<EmbedCache> embed_cache = nullptr);

}  // namespace tars::node
