#pragma once
// A loaded encoder (engine/encoder.h) with its own CPU backend of 2 threads:
// what the encoder tests run their models on.

#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/encoder.h"
#include "engine/gguf.h"

namespace tars::test {

struct EncoderRunner {
  std::shared_ptr<const engine::GgufFile> file;
  std::unique_ptr<engine::Backend> backend;
  std::unique_ptr<engine::Encoder> encoder;

  explicit EncoderRunner(const std::string& path, int max_batch_tokens = 1024) {
    file = engine::GgufFile::open(path);
    backend = engine::backend_cpu_create({2});
    engine::EncoderOptions eo;
    eo.max_batch_tokens = max_batch_tokens;
    encoder = engine::Encoder::load(file, *backend, eo);
  }
};

}  // namespace tars::test
