#pragma once
// The CPU and system RAM part of device discovery: model name, cores, SIMD
// features (cpuid on x86, /proc/cpuinfo elsewhere) and /proc/meminfo.
// Nothing here throws: a figure that cannot be read stays 0 / empty with
// source kNone.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "node/devices.h"

namespace tars::node {

// One SIMD feature tars may pick kernels by.
struct CpuSimdFeature {
  const char* name;          // tars's name, as in CpuInfo::simd: "sse4.2", "avx512_vnni"
  const char* cpuinfo_flag;  // the same feature in /proc/cpuinfo's flags line: "sse4_2"
};

// The features this architecture knows, in the order CpuInfo::simd lists them.
const std::vector<CpuSimdFeature>& cpu_simd_features();

// Detects the CPU and RAM of this machine.
CpuInfo cpu_detect();

// Re-reads MemTotal / MemAvailable into `cpu` (sources.ram = kProcfs); leaves
// it unchanged when /proc/meminfo cannot be read.
void cpu_refresh_ram(CpuInfo& cpu);

// Parses /proc/meminfo text: MemTotal and MemAvailable (MemFree on kernels
// older than 3.14, which lack MemAvailable), in bytes. False when MemTotal is
// missing.
bool cpu_parse_meminfo(std::string_view text, uint64_t* total_bytes, uint64_t* available_bytes);

// Counts distinct (physical id, core id) pairs in /proc/cpuinfo text; 0 when
// the text has no core ids (some VMs and most ARM kernels).
int cpu_parse_physical_cores(std::string_view text);

// The flags of the first processor in /proc/cpuinfo text ("flags" on x86,
// "Features" on ARM), split on spaces.
std::vector<std::string> cpu_parse_flags(std::string_view text);

}  // namespace tars::node
