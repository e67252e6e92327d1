// `tars gpus`: the devices this machine offers, as a table or as JSON.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "common/units.h"
#include "node/devices.h"

namespace tars::cli {

namespace {

// What `tars gpus` is asked for.
struct GpusOptions {
  bool json = false;            // --json: print devices_to_json instead of the table
  node::DeviceOptions devices;  // --simulate-devices / TARS_SIMULATE_DEVICES
};

std::string or_dash(const std::optional<int>& v, const char* unit) {
  return v ? std::to_string(*v) + unit : "-";
}

std::string gpu_memory(const node::GpuInfo& g) {
  std::string total = g.sources.total_memory == node::DeviceSource::kNone
                          ? "?" : format_bytes(g.total_memory_bytes);
  std::string free = g.sources.free_memory == node::DeviceSource::kNone
                         ? "?" : format_bytes(g.free_memory_bytes);
  return free + " / " + total;
}

void print_table(const node::DeviceInventory& inv) {
  if (inv.simulated) std::printf("simulated inventory from %s\n\n", inv.source.c_str());
  if (inv.gpus.empty()) {
    std::printf("GPUs: none (%s)\n", inv.detection.c_str());
  } else {
    // A simulated inventory said so above; a detected one says how.
    if (inv.simulated) std::printf("GPUs:\n");
    else std::printf("GPUs (%s):\n", inv.detection.c_str());
    std::printf("  %-3s %-32s %-23s %-4s %-6s %-5s %-10s %s\n", "#", "NAME", "FREE / TOTAL MEMORY",
                "CC", "TEMP", "UTIL", "DRIVER", "UUID");
    for (const auto& g : inv.gpus) {
      std::string cc = g.compute_major > 0
                           ? std::to_string(g.compute_major) + "." + std::to_string(g.compute_minor)
                           : "?";
      std::printf("  %-3d %-32s %-23s %-4s %-6s %-5s %-10s %s\n", g.index, g.name.c_str(),
                  gpu_memory(g).c_str(), cc.c_str(), or_dash(g.temperature_c, "C").c_str(),
                  or_dash(g.utilization_percent, "%").c_str(),
                  g.driver_version.empty() ? "-" : g.driver_version.c_str(), g.uuid.c_str());
    }
  }
  const node::CpuInfo& c = inv.cpu;
  std::printf("\nCPU: %s, %d cores, %d threads\n", c.model_name.c_str(), c.physical_cores,
              c.logical_cores);
  std::string simd;
  for (const auto& f : c.simd) simd += (simd.empty() ? "" : " ") + f;
  std::printf("  SIMD: %s\n", simd.empty() ? "(none detected)" : simd.c_str());
  std::printf("RAM: %s available / %s total\n", format_bytes(c.ram_available_bytes).c_str(),
              format_bytes(c.ram_total_bytes).c_str());
}

int run_gpus(const GpusOptions& options) {
  node::DeviceDetector detector(options.devices);
  node::DeviceInventory inv = detector.inventory();
  for (const auto& w : inv.warnings) std::fprintf(stderr, "tars: warning: %s\n", w.c_str());
  if (options.json) {
    std::printf("%s\n", node::devices_to_json(inv).dump(2).c_str());
  } else {
    print_table(inv);
  }
  return 0;
}

}  // namespace

void add_gpus_command(CLI::App& app, CommandResult& result) {
  auto options = std::make_shared<GpusOptions>();
  CLI::App* cmd = app.add_subcommand(
      "gpus", "List this machine's devices: NVIDIA GPUs (NVML, CUDA) and the CPU with its RAM");
  cmd->add_flag("--json", options->json, "Print the inventory as JSON");
  cmd->add_option("--simulate-devices", options->devices.simulate_file,
                  "JSON inventory file that replaces GPU detection (format: src/node/devices.h)")
      ->envname("TARS_SIMULATE_DEVICES")
      ->type_name("FILE");
  cmd->callback([options, &result] { result.exit_code = run_gpus(*options); });
}

}  // namespace tars::cli
