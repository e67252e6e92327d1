// Choosing backends from a device name (engine/backend_select.h), as the CLI
// (--device, --gpu-layers) and the node ([engine] device, gpu_layers) do.
#include "engine/backend_select.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "engine/backend_cuda.h"

namespace tars::engine {
namespace {

TEST(BackendSelect, CpuIsAlwaysTheCpu) {
  EXPECT_EQ(backend_for_device("cpu", 1)->name(), "cpu");
  // gpu_layers asks for nothing on the CPU: one backend, every layer on it.
  ModelBackends m = model_backends("cpu", 1, 3, 32);
  EXPECT_EQ(m.device->name(), "cpu");
  EXPECT_FALSE(m.cpu);
  ASSERT_EQ(m.parts().size(), 1u);
  EXPECT_EQ(m.parts()[0].n_layers, -1);
}

TEST(BackendSelect, UnknownDeviceIsAnError) {
  try {
    backend_for_device("tpu", 1);
    ADD_FAILURE() << "accepted tpu";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("tpu"), std::string::npos);
  }
}

// NVML's uuid form, which the node matches against the CUDA devices'.
TEST(BackendSelect, CudaUuidStringIsNvmlsForm) {
  const unsigned char b[16] = {0x0f, 0x34, 0x9f, 0x86, 0xef, 0xf9, 0x7b, 0x9f,
                               0x04, 0x17, 0x07, 0x0e, 0x67, 0x78, 0x71, 0xdc};
  EXPECT_EQ(cuda_uuid_string(b), "GPU-0f349f86-eff9-7b9f-0417-070e677871dc");
}

TEST(BackendSelect, UnknownUuidHasNoCudaOrdinal) {
  EXPECT_EQ(backend_cuda_ordinal_for_uuid("GPU-00000000-0000-0000-0000-000000000000"), -1);
  EXPECT_EQ(backend_cuda_ordinal_for_uuid(""), -1);
}

TEST(BackendSelect, ZeroGpuLayersIsTheCpuAlone) {
  // Even with "cuda" (no CUDA context is created, so no VRAM is taken).
  ModelBackends m = model_backends("cuda", 1, 0, 32);
  EXPECT_EQ(m.device->name(), "cpu");
  EXPECT_FALSE(m.cpu);
}

TEST(BackendSelect, AutoWithoutDeviceFallsBackAndSaysWhy) {
  std::string why;
  if (backend_cuda_available(&why)) GTEST_SKIP() << "a CUDA device exists: this test is about machines without one";
  std::string fallback;
  ModelBackends m = model_backends("auto", 1, 10, 32, &fallback);
  EXPECT_EQ(m.device->name(), "cpu");
  EXPECT_FALSE(m.cpu);  // no split on the CPU alone
  EXPECT_EQ(fallback, why);
  EXPECT_FALSE(fallback.empty());
  try {
    backend_for_device("cuda", 1);
    ADD_FAILURE() << "cuda without a device";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
}

}  // namespace
}  // namespace tars::engine
