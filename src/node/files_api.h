#pragma once
// The model file API: how a worker gets a model file from the coordinator
// (model_fetch.h is the client).
//
//   GET /files/{model id}        the file's bytes, streamed from disk (never
//                                whole in memory); Range requests answer 206
//                                with Content-Range, an unsatisfiable range 416
//                                (Content-Range: bytes */size); several ranges
//                                get the whole file (200), as RFC 9110 allows.
//   GET /files/{model id}/info   {"id", "file", "size", "sha256"}
//
// Only the files of declared models are served, by model id: no path ever
// comes from the request. When the node has a join token both need
// "Authorization: Bearer <token>" (401 JSON error otherwise). The sha256 is
// computed once per (path, size, mtime) and cached in <data_dir>/state/.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "node/config.h"
#include "node/http_server.h"

namespace tars::node {

class ModelHost;

// The file of a model id that is not (or no longer) declared on this node
// but that the node still shares: the coordinator serves every model of the
// cluster's plan, wherever it runs. nullopt = not shared.
using FilePathResolver = std::function<std::optional<std::string>(const std::string& id)>;

std::vector<Route> files_routes(ModelHost& host, const NodeConfig& config,
                                FilePathResolver shared = {});

}  // namespace tars::node
