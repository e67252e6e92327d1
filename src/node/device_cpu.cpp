#include "node/device_cpu.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TARS_CPU_X86 1
#endif

namespace tars::node {

namespace {

std::string read_text(const char* path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Calls fn(key, value) for each "key : value" line of /proc/cpuinfo-style
// text; a blank line (between processors) is passed as ("", "").
template <typename Fn>
void for_each_cpuinfo_field(std::string_view text, Fn&& fn) {
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (trim(line).empty()) {
      fn(std::string_view{}, std::string_view{});
    } else if (colon != std::string_view::npos) {
      fn(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
    }
    pos = end + 1;
  }
}

std::string cpuinfo_model_name(std::string_view text) {
  std::string name;
  for_each_cpuinfo_field(text, [&](std::string_view key, std::string_view value) {
    // x86: "model name"; ARM kernels vary ("Model", "Hardware").
    if (name.empty() && (key == "model name" || key == "Model" || key == "Hardware")) {
      name = std::string(value);
    }
  });
  return name;
}

#ifdef TARS_CPU_X86

// Registers of one cpuid leaf/subleaf.
struct CpuidRegs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

// Which register states the OS saves on a context switch (XCR0). A feature
// whose registers the OS does not save cannot be used even if cpuid lists it.
uint64_t read_xcr0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// The feature bits of this CPU, by tars name, already masked by OS support.
struct X86Features {
  std::set<std::string> present;
  std::string brand;
};

X86Features x86_detect() {
  X86Features f;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1) return f;
  CpuidRegs l1 = cpuid(1, 0);
  CpuidRegs l7, l7s1;
  if (max_leaf >= 7) {
    l7 = cpuid(7, 0);
    // Subleaf 1 exists only when subleaf 0 says so; some CPUs return junk
    // for a subleaf they do not have.
    if (l7.eax >= 1) l7s1 = cpuid(7, 1);
  }
  uint64_t xcr0 = bit(l1.ecx, 27) ? read_xcr0() : 0;  // OSXSAVE
  bool os_ymm = (xcr0 & 0x6) == 0x6;                  // XMM and YMM state
  bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;      // opmask, ZMM_Hi256, Hi16_ZMM
  bool os_amx = (xcr0 & 0x60000) == 0x60000;          // XTILECFG, XTILEDATA

  auto add = [&](const char* name, bool on) {
    if (on) f.present.insert(name);
  };
  add("sse3", bit(l1.ecx, 0));
  add("ssse3", bit(l1.ecx, 9));
  add("sse4.1", bit(l1.ecx, 19));
  add("sse4.2", bit(l1.ecx, 20));
  add("avx", bit(l1.ecx, 28) && os_ymm);
  add("fma", bit(l1.ecx, 12) && os_ymm);
  add("f16c", bit(l1.ecx, 29) && os_ymm);
  add("avx2", bit(l7.ebx, 5) && os_ymm);
  add("avx_vnni", bit(l7s1.eax, 4) && os_ymm);
  add("avx512f", bit(l7.ebx, 16) && os_zmm);
  add("avx512dq", bit(l7.ebx, 17) && os_zmm);
  add("avx512cd", bit(l7.ebx, 28) && os_zmm);
  add("avx512bw", bit(l7.ebx, 30) && os_zmm);
  add("avx512vl", bit(l7.ebx, 31) && os_zmm);
  add("avx512_vbmi", bit(l7.ecx, 1) && os_zmm);
  add("avx512_vnni", bit(l7.ecx, 11) && os_zmm);
  add("avx512_bf16", bit(l7s1.eax, 5) && os_zmm);
  add("avx512_fp16", bit(l7.edx, 23) && os_zmm);
  add("amx_bf16", bit(l7.edx, 22) && os_amx);
  add("amx_tile", bit(l7.edx, 24) && os_amx);
  add("amx_int8", bit(l7.edx, 25) && os_amx);

  // Brand string: 48 bytes from leaves 0x80000002..4.
  if (static_cast<unsigned>(__get_cpuid_max(0x80000000u, nullptr)) >= 0x80000004u) {  // (int in clang's cpuid.h)
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      CpuidRegs r = cpuid(0x80000002u + i, 0);
      unsigned regs[4] = {r.eax, r.ebx, r.ecx, r.edx};
      for (int k = 0; k < 4; ++k) {
        for (int b = 0; b < 4; ++b) brand[i * 16 + k * 4 + b] = static_cast<char>(regs[k] >> (8 * b));
      }
    }
    f.brand = std::string(trim(brand));
  }
  return f;
}

#endif  // TARS_CPU_X86

}  // namespace

const std::vector<CpuSimdFeature>& cpu_simd_features() {
#ifdef TARS_CPU_X86
  // The kernel spells some features differently ("pni" is SSE3).
  static const std::vector<CpuSimdFeature> features = {
      {"sse3", "pni"},           {"ssse3", "ssse3"},
      {"sse4.1", "sse4_1"},      {"sse4.2", "sse4_2"},
      {"avx", "avx"},            {"fma", "fma"},
      {"f16c", "f16c"},          {"avx2", "avx2"},
      {"avx_vnni", "avx_vnni"},  {"avx512f", "avx512f"},
      {"avx512dq", "avx512dq"},  {"avx512cd", "avx512cd"},
      {"avx512bw", "avx512bw"},  {"avx512vl", "avx512vl"},
      {"avx512_vbmi", "avx512vbmi"}, {"avx512_vnni", "avx512_vnni"},
      {"avx512_bf16", "avx512_bf16"}, {"avx512_fp16", "avx512_fp16"},
      {"amx_bf16", "amx_bf16"},  {"amx_tile", "amx_tile"},
      {"amx_int8", "amx_int8"},
  };
#elif defined(__aarch64__)
  static const std::vector<CpuSimdFeature> features = {
      {"neon", "asimd"}, {"fp16", "asimdhp"}, {"dotprod", "asimddp"}, {"i8mm", "i8mm"},
      {"bf16", "bf16"},  {"sve", "sve"},      {"sve2", "sve2"},
  };
#else
  static const std::vector<CpuSimdFeature> features = {};
#endif
  return features;
}

std::vector<std::string> cpu_parse_flags(std::string_view text) {
  std::vector<std::string> flags;
  bool found = false;
  for_each_cpuinfo_field(text, [&](std::string_view key, std::string_view value) {
    if (found || (key != "flags" && key != "Features")) return;
    found = true;
    std::istringstream in{std::string(value)};
    for (std::string flag; in >> flag;) flags.push_back(flag);
  });
  return flags;
}

int cpu_parse_physical_cores(std::string_view text) {
  std::set<std::pair<std::string, std::string>> cores;
  std::string package = "0", core;
  auto finish = [&] {
    if (!core.empty()) cores.insert({package, core});
    package.assign(1, '0');  // (not = "0": GCC 12 warns of a false -Wrestrict overlap there)
    core.clear();
  };
  for_each_cpuinfo_field(text, [&](std::string_view key, std::string_view value) {
    if (key.empty()) finish();  // blank line: next processor
    else if (key == "physical id") package = std::string(value);
    else if (key == "core id") core = std::string(value);
  });
  finish();
  return static_cast<int>(cores.size());
}

bool cpu_parse_meminfo(std::string_view text, uint64_t* total_bytes, uint64_t* available_bytes) {
  std::optional<uint64_t> total, available, free;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key, unit;
    unsigned long long value = 0;
    if (!(fields >> key >> value)) continue;
    fields >> unit;
    // The kernel writes "kB" and means KiB.
    uint64_t bytes = unit == "kB" ? value * 1024ull : value;
    if (key == "MemTotal:") total = bytes;
    else if (key == "MemAvailable:") available = bytes;
    else if (key == "MemFree:") free = bytes;
  }
  if (!total) return false;
  *total_bytes = *total;
  *available_bytes = available ? *available : free.value_or(0);
  return true;
}

void cpu_refresh_ram(CpuInfo& cpu) {
  uint64_t total = 0, available = 0;
  if (cpu_parse_meminfo(read_text("/proc/meminfo"), &total, &available)) {
    cpu.ram_total_bytes = total;
    cpu.ram_available_bytes = available;
    cpu.sources.ram = DeviceSource::kProcfs;
  }
}

CpuInfo cpu_detect() {
  CpuInfo cpu;
  std::string cpuinfo = read_text("/proc/cpuinfo");

  long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (online > 0) {
    cpu.logical_cores = static_cast<int>(online);
    cpu.sources.cores = DeviceSource::kSysconf;
  }
  int physical = cpu_parse_physical_cores(cpuinfo);
  if (physical > 0) {
    cpu.physical_cores = physical;
    cpu.sources.cores = DeviceSource::kProcfs;
  } else {
    cpu.physical_cores = cpu.logical_cores;  // no topology: count threads as cores
  }

#ifdef TARS_CPU_X86
  X86Features x86 = x86_detect();
  for (const auto& f : cpu_simd_features()) {
    if (x86.present.count(f.name)) cpu.simd.push_back(f.name);
  }
  cpu.sources.simd = DeviceSource::kCpuid;
  if (!x86.brand.empty()) {
    cpu.model_name = x86.brand;
    cpu.sources.model_name = DeviceSource::kCpuid;
  }
#else
  std::vector<std::string> flags = cpu_parse_flags(cpuinfo);
  for (const auto& f : cpu_simd_features()) {
    if (std::find(flags.begin(), flags.end(), f.cpuinfo_flag) != flags.end()) cpu.simd.push_back(f.name);
  }
  if (!flags.empty()) cpu.sources.simd = DeviceSource::kProcfs;
#endif
  if (cpu.model_name.empty()) {
    cpu.model_name = cpuinfo_model_name(cpuinfo);
    if (!cpu.model_name.empty()) cpu.sources.model_name = DeviceSource::kProcfs;
  }
  if (cpu.model_name.empty()) cpu.model_name = "unknown CPU";

  cpu_refresh_ram(cpu);
  return cpu;
}

}  // namespace tars::node
