// quantize_model: convert a model file tensor by tensor (the rules are in
// quantize_plan.cpp). The input stays memory-mapped; each output tensor is
// converted when the writer reaches it, on the thread pool, row by row.

#include "engine/quantize.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>

#include "common/error.h"
#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/thread_pool.h"

namespace tars::engine {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Converts every row of `src` (plan.src_type) into `out` (plan.dst_type).
// Rows are independent, so threads take contiguous ranges of them.
void convert_tensor(const GgufTensorInfo& src, const QuantizeTensorPlan& plan, ThreadPool& pool,
                    std::span<uint8_t> out) {
  if (plan.copy) {
    std::memcpy(out.data(), src.data, out.size());
    return;
  }
  const auto row = static_cast<int64_t>(src.shape[0]);
  const auto n_rows = static_cast<int64_t>(src.n_elems) / row;
  const size_t in_rb = quant_row_bytes(plan.src_type, row);
  const size_t out_rb = quant_row_bytes(plan.dst_type, row);
  const bool direct = plan.src_type == TensorType::kF32;  // no float copy needed
  pool.parallel_for(n_rows, 1, [&](int64_t r0, int64_t r1) {
    std::vector<float> buf(direct ? 0 : static_cast<size_t>(row));
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* in = src.data + static_cast<size_t>(r) * in_rb;
      const float* f = reinterpret_cast<const float*>(in);
      if (!direct) {
        dequantize_row(plan.src_type, in, buf.data(), row);
        f = buf.data();
      }
      quantize_row(plan.dst_type, f, out.data() + static_cast<size_t>(r) * out_rb, row);
    }
  });
}

// Keys the output sets itself: copying the input's would describe it wrongly.
bool is_replaced_key(const std::string& key) {
  return key == "general.file_type" || key == "general.quantization_version";
}

}  // namespace

QuantizeSummary quantize_model(const std::string& in_path, const std::string& out_path,
                               const QuantizeOptions& options,
                               const std::function<void(const QuantizeProgress&)>& on_tensor) {
  const auto t0 = Clock::now();
  std::unique_ptr<GgufFile> in = GgufFile::open(in_path);
  const std::vector<QuantizeTensorPlan> plan = quantize_plan(*in, options);
  ThreadPool pool(options.n_threads > 0 ? options.n_threads : physical_core_count());

  GgufWriter w;
  for (const auto& [key, value] : in->metadata()) {
    if (!is_replaced_key(key)) w.set_value(key, value);
  }
  w.set_u32("general.quantization_version", 2);
  w.set_u32("general.file_type", static_cast<uint32_t>(options.target.file_type));

  QuantizeSummary sum;
  sum.n_tensors = static_cast<int>(plan.size());
  sum.in_file_bytes = in->file_size();
  for (size_t i = 0; i < plan.size(); ++i) {
    const GgufTensorInfo& src = in->tensors()[i];
    const QuantizeTensorPlan& p = plan[i];
    sum.n_elements += src.n_elems;
    sum.in_bytes += src.n_bytes;
    sum.out_bytes += tensor_type_row_bytes(p.dst_type, src.n_elems).value_or(0);
    w.add_tensor_stream(p.name, p.dst_type, p.shape, [&, i](std::span<uint8_t> out) {
      const auto t1 = Clock::now();
      convert_tensor(in->tensors()[i], plan[i], pool, out);
      if (on_tensor) {
        QuantizeProgress pr;
        pr.index = static_cast<int>(i) + 1;
        pr.count = static_cast<int>(plan.size());
        pr.plan = &plan[i];
        pr.in_bytes = in->tensors()[i].n_bytes;
        pr.out_bytes = out.size();
        pr.seconds = seconds_since(t1);
        on_tensor(pr);
      }
    });
  }
  w.write(out_path);

  std::error_code ec;
  const auto size = std::filesystem::file_size(out_path, ec);
  sum.out_file_bytes = ec ? 0 : size;
  sum.bits_per_weight =
      sum.n_elements ? 8.0 * static_cast<double>(sum.out_bytes) / static_cast<double>(sum.n_elements)
                     : 0;
  sum.seconds = seconds_since(t0);
  return sum;
}

}  // namespace tars::engine
