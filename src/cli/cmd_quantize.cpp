// `tars quantize IN OUT TYPE`: convert an F32/F16/BF16 model to a quantized
// type or mix (engine/quantize.h has the rules), with progress on stderr.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "common/error.h"
#include "engine/quantize.h"
#include "engine/tensor_type.h"
#include "engine/thread_pool.h"

namespace tars::cli {
namespace {

struct QuantizeFlags {
  std::string in_path;
  std::string out_path;
  std::string type;
  int threads = 0;
  bool allow_requantize = false;
  bool pure = false;
};

double mb(uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// "2048 x 32000": GGUF order, row length first.
std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s;
  for (uint64_t d : shape) s += (s.empty() ? "" : " x ") + std::to_string(d);
  return s;
}

void print_progress(const engine::QuantizeProgress& p) {
  const engine::QuantizeTensorPlan& t = *p.plan;
  const int width = static_cast<int>(std::to_string(p.count).size());
  std::fprintf(stderr, "[%*d/%d] %-32s %-14s %5s -> %-5s %9.2f MiB -> %9.2f MiB  %6.2f s%s%s\n",
               width, p.index, p.count, t.name.c_str(), shape_text(t.shape).c_str(),
               std::string(engine::tensor_type_name(t.src_type)).c_str(),
               std::string(engine::tensor_type_name(t.dst_type)).c_str(), mb(p.in_bytes),
               mb(p.out_bytes), p.seconds, t.note.empty() ? "" : "  # ", t.note.c_str());
}

int run(const QuantizeFlags& f) {
  auto target = engine::quantize_target_from_name(f.type);
  if (!target) {
    throw Error(ErrorCode::kInvalidArgument, "unknown quantization type '" + f.type +
                                                 "'; choose one of: " +
                                                 engine::quantize_target_list());
  }
  engine::QuantizeOptions o;
  o.target = *target;
  o.n_threads = f.threads > 0 ? f.threads : engine::physical_core_count();
  o.allow_requantize = f.allow_requantize;
  o.pure = f.pure;
  std::fprintf(stderr, "tars quantize: %s -> %s as %s (general.file_type %u), %d threads%s\n",
               f.in_path.c_str(), f.out_path.c_str(), target->name.c_str(),
               static_cast<unsigned>(target->file_type), o.n_threads, f.pure ? ", pure" : "");
  engine::QuantizeSummary s = engine::quantize_model(f.in_path, f.out_path, o, print_progress);
  std::fprintf(stderr,
               "tars quantize: %d tensors, %.2f MiB -> %.2f MiB (files: %.2f MiB -> %.2f MiB), "
               "%.3f bits per weight, %.2f s\n",
               s.n_tensors, mb(s.in_bytes), mb(s.out_bytes), mb(s.in_file_bytes),
               mb(s.out_file_bytes), s.bits_per_weight, s.seconds);
  return 0;
}

}  // namespace

void add_quantize_command(CLI::App& app, CommandResult& result) {
  auto f = std::make_shared<QuantizeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Convert an F32/F16/BF16 GGUF model to a quantized type or mix");
  cmd->add_option("in", f->in_path, "Input GGUF model (F32, F16 or BF16 tensors)")->required();
  cmd->add_option("out", f->out_path, "Output GGUF file (written to OUT.tmp, then renamed)")
      ->required();
  cmd->add_option("type", f->type, "Target: " + engine::quantize_target_list())->required();
  cmd->add_option("-t,--threads", f->threads, "Threads (default: the physical cores)");
  cmd->add_flag("--allow-requantize", f->allow_requantize,
                "Accept already-quantized tensors: dequantize them and quantize again "
                "(compounds the errors)");
  cmd->add_flag("--pure", f->pure,
                "Every matrix in TYPE: no Q6_K output matrix, no _M/_S mix rules");
  cmd->callback([f, &result] { result.exit_code = run(*f); });
}

}  // namespace tars::cli
