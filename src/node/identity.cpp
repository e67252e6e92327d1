#include "node/identity.h"

#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.h"

namespace tars::node {

std::string identity_new_uuid() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  uint64_t hi = gen(), lo = gen();
  hi = (hi & ~0xF000ull) | 0x4000ull;                         // version 4
  lo = (lo & ~(0xC000ull << 48)) | (0x8000ull << 48);         // variant 10
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32), static_cast<unsigned>((hi >> 16) & 0xFFFF),
                static_cast<unsigned>(hi & 0xFFFF), static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

std::string identity_load_or_create(const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot create data directory " + data_dir + ": " + ec.message());
  fs::path file = fs::path(data_dir) / "node_id";
  {
    std::ifstream in(file);
    std::string id;
    if (in && std::getline(in, id) && id.size() == 36) return id;
  }
  std::string id = identity_new_uuid();
  fs::path tmp = file;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << id << "\n";
    if (!out) throw Error(ErrorCode::kIo, "cannot write " + tmp.string());
  }
  fs::rename(tmp, file, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot write " + file.string() + ": " + ec.message());
  return id;
}

}  // namespace tars::node
