// The type rules of `tars quantize` against files another quantizer wrote:
// ../shared/models/reference/quant holds one LLaMA model (dim 256, 1 layer,
// FFN 768) quantized by llama.cpp to each type and mix. Planning the same
// conversion from its F16 file must choose, tensor for tensor, the types
// those files hold, and the same general.file_type.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/quantize.h"
#include "support/test_support.h"

namespace tars::engine {
namespace {

const std::string kDir = "reference/quant/";

TEST(QuantizePlanReference, TypesAndFileTypeMatchFilesFromAnotherQuantizer) {
  auto f16 = GgufFile::open(test::fixture(kDir + "llama-q-F16.gguf"));
  const std::vector<std::string> kTargets = {"F16",  "BF16", "Q8_0",   "Q4_0",   "Q4_1",
                                             "Q5_0", "Q5_1", "Q4_K_M", "Q5_K_M", "Q6_K"};
  for (const std::string& name : kTargets) {
    SCOPED_TRACE(name);
    auto ref = GgufFile::open(test::fixture(kDir + "llama-q-" + name + ".gguf"));
    QuantizeOptions o;
    o.target = *quantize_target_from_name(name);
    EXPECT_EQ(static_cast<uint64_t>(o.target.file_type), ref->get_u64("general.file_type"));
    const auto plan = quantize_plan(*f16, o);
    ASSERT_EQ(plan.size(), ref->tensors().size());
    for (const auto& p : plan) {
      const GgufTensorInfo* t = ref->find_tensor(p.name);
      ASSERT_NE(t, nullptr) << p.name;
      EXPECT_EQ(tensor_type_name(p.dst_type), tensor_type_name(t->type)) << p.name;
      EXPECT_EQ(p.shape, t->shape) << p.name;
    }
  }
}

}  // namespace
}  // namespace tars::engine
