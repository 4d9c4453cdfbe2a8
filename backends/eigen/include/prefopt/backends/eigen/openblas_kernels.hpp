// prefopt/backends/eigen/openblas_kernels.hpp — OpenBLAS's kernels on a CPU it does not recognise.
//
// Debian's OpenBLAS (a DYNAMIC_ARCH build) chooses its kernels when the library loads, from the
// CPU's vendor, family and model. Some hypervisors hide the model ("Intel(R) Xeon(R) Processor"),
// and OpenBLAS 0.3.21 then falls back to its Prescott (SSE3) kernels even where the CPU has AVX-512:
// on a 2-core Sapphire Rapids virtual machine sgemm (1024³, 2 threads) ran at 65 GFLOP/s instead of
// ~200, and a DPO step of a GPT-2-small shape (4 pairs × 256 tokens) took 21.9 s instead of 6.8 s.
// The choice is made before main() and OpenBLAS has no call that changes it afterwards; its
// OPENBLAS_CORETYPE environment variable sets it at load time. So:
//   openblas_kernels()         what OpenBLAS chose, and the kernels this CPU could run instead;
//   use_better_blas_kernels(argv)  when OpenBLAS chose a pre-AVX2 kernel on a CPU with AVX2/FMA or
//                              AVX-512, restarts the program (execv of /proc/self/exe, same
//                              arguments) with OPENBLAS_CORETYPE set (Haswell or SkylakeX). It does
//                              nothing where OPENBLAS_CORETYPE or PREFOPT_KEEP_BLAS_KERNELS is set,
//                              where the BLAS is not OpenBLAS, or on other architectures; call it
//                              first in main(), before threads or MPI start.
// The `prefopt` program calls it; `prefopt --version` prints openblas_kernels().describe().
// Written here because no library offers it: it is OpenBLAS's own documented switch, applied when
// its CPU detection fails.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#if defined(__linux__)
#include <unistd.h>
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define PREFOPT_OPENBLAS_X86 1
// OpenBLAS's own calls, declared weak: null where the program's BLAS is another library.
extern "C" char* openblas_get_corename(void) __attribute__((weak));
extern "C" char* openblas_get_config(void) __attribute__((weak));
#endif

namespace prefopt::backends {

struct blas_kernels {
  bool openblas = false;
  std::string core;         // OpenBLAS's kernel family ("SkylakeX", "Haswell", "Prescott", ...)
  std::string better;       // what this CPU could run where `core` lacks AVX2; empty: nothing better
  std::string coretype_env; // OPENBLAS_CORETYPE as this process was started with (empty: unset)
  [[nodiscard]] std::string describe() const {
    if (!openblas) return "BLAS: not OpenBLAS";
    std::string s = "BLAS: OpenBLAS, " + core + " kernels";
    if (!coretype_env.empty()) s += " (OPENBLAS_CORETYPE=" + coretype_env + ")";
    if (!better.empty()) s += "; this CPU runs " + better + " kernels (set OPENBLAS_CORETYPE=" + better + ")";
    return s;
  }
};

namespace detail {
// OpenBLAS x86 kernel families without AVX2 (its DYNAMIC_ARCH core names).
inline bool pre_avx2_core(std::string_view c) {
  for (std::string_view k : {"Prescott", "Katmai", "Coppermine", "Northwood", "Banias", "Core2", "Penryn", "Dunnington",
                             "Nehalem", "Atom", "Opteron", "Opteron(SSE3)", "Barcelona", "Bobcat", "Unknown", "Sandybridge",
                             "Bulldozer", "Piledriver", "Steamroller", "Excavator"})
    if (c == k) return true;
  return false;
}
} // namespace detail

inline blas_kernels openblas_kernels() {
  blas_kernels k;
  if (const char* e = std::getenv("OPENBLAS_CORETYPE")) k.coretype_env = e;
#ifdef PREFOPT_OPENBLAS_X86
  if (openblas_get_corename == nullptr) return k;
  k.openblas = true;
  if (const char* c = openblas_get_corename()) k.core = c;
  if (detail::pre_avx2_core(k.core)) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
      k.better = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      k.better = "Haswell";
  }
#endif
  return k;
}

// See the top of this file. Returns only where it did not restart the program.
inline void use_better_blas_kernels([[maybe_unused]] char** argv) {
#if defined(PREFOPT_OPENBLAS_X86) && defined(__linux__)
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv("PREFOPT_KEEP_BLAS_KERNELS") != nullptr) return;
  const blas_kernels k = openblas_kernels();
  if (k.better.empty()) return;
  ::setenv("OPENBLAS_CORETYPE", k.better.c_str(), 1);
  ::execv("/proc/self/exe", argv);
  ::unsetenv("OPENBLAS_CORETYPE");  // execv failed: go on with the kernels OpenBLAS chose
#endif
}

} // namespace prefopt::backends
