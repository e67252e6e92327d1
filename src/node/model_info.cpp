#include "node/model_info.h"

#include <filesystem>
#include <map>

#include "common/error.h"
#include "engine/gguf.h"

namespace tars::node {

std::string model_id(const ModelDecl& m) {
  if (!m.alias.empty()) return m.alias;
  std::string name = std::filesystem::path(m.path).filename().string();
  const std::string ext = ".gguf";
  if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0) {
    name.resize(name.size() - ext.size());
  }
  return name;
}

nlohmann::json model_file_info(const ModelDecl& m) {
  nlohmann::json j = {{"id", model_id(m)}, {"path", m.path}, {"role", m.role}};
  try {
    auto file = engine::GgufFile::open(m.path);
    j["file_size"] = file->file_size();
    std::string arch = file->opt_string("general.architecture").value_or("unknown");
    j["architecture"] = arch;
    if (auto name = file->opt_string("general.name")) j["name"] = *name;
    if (auto ctx = file->opt_u64(arch + ".context_length")) j["context_length"] = *ctx;
    // The quantization is the type holding most of the weight bytes (a
    // Q4_K_M file is mostly Q4_K with some Q6_K tensors).
    std::map<std::string, uint64_t> bytes_by_type;
    std::map<std::string, uint64_t> count_by_type;
    uint64_t params = 0;
    for (const auto& t : file->tensors()) {
      std::string type(engine::tensor_type_name(t.type));
      bytes_by_type[type] += t.n_bytes;
      ++count_by_type[type];
      params += t.n_elems;
    }
    std::string quant = "unknown";
    uint64_t best = 0;
    for (const auto& [type, b] : bytes_by_type) {
      if (b > best) {
        best = b;
        quant = type;
      }
    }
    j["quantization"] = quant;
    j["parameters"] = params;
    j["tensor_types"] = count_by_type;
  } catch (const Error& e) {
    j["error"] = e.what();
  }
  return j;
}

}  // namespace tars::node
