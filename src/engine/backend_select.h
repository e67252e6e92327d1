#pragma once
// Choosing the backend a model runs on, from a device name: "cpu", "cuda"
// (the first CUDA device; an error when there is none) or "auto" (CUDA when a
// usable device exists, else the CPU). Used by the CLI (--device) and the
// node ([engine] device), so both choose the same way.

#include <memory>
#include <string>

#include "engine/backend.h"

namespace tars::engine {

// Throws tars::Error(kUnavailable) for "cuda" without a usable device (the
// message says why) and kInvalidArgument for an unknown name. With "auto"
// and no device, *fallback (if given) gets the reason the CPU was chosen.
std::unique_ptr<Backend> backend_for_device(const std::string& device, int threads,
                                            std::string* fallback = nullptr);

}  // namespace tars::engine
