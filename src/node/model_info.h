#pragma once
// What a node can say about a configured model file without loading it:
// read from the GGUF header (memory-mapped, weights untouched).

#include <nlohmann/json.hpp>
#include <string>

#include "node/config.h"

namespace tars::node {

// The API id of a model: its alias, else the file name without ".gguf".
std::string model_id(const ModelDecl& m);

// {"id", "path", "role", "file_size", "architecture", "quantization",
//  "parameters", "context_length", "tensor_types": {type: count}}; a file
// that cannot be read gives {"id", "path", "role", "error": "..."}.
nlohmann::json model_file_info(const ModelDecl& m);

}  // namespace tars::node
