// prefopt/core/blas_threads.hpp — OpenBLAS's OpenMP threading needs every thread it asks for.
//
// Debian's libopenblas0-openmp (the BLAS of prefopt's CPU backends, see build.sh) runs a threaded
// product as one `omp parallel` over N parts that wait on each other's progress flags, so all N
// must run at once. Under OpenMP's dynamic adjustment (OMP_DYNAMIC=true, omp_set_dynamic(1))
// libgomp may start fewer threads than asked when the machine is busy; the parts then run one
// after another on one thread and the first waits forever for the next. Seen: a GPT-2 DPO step
// under OMP_DYNAMIC=true hung in sgemm_thread_nn beside a running compiler.
// fixed_blas_threads() turns dynamic adjustment off for the calling thread (it is a per-thread
// OpenMP setting) when the program's BLAS is OpenBLAS built with OpenMP, and says so on stderr
// once. The host backends call it before their products (gemm, gemm_bf16, eigen's attention).
// Nothing else changes: OMP_NUM_THREADS and training.threads still set how many threads run.
#pragma once

#include <cstdio>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
// OpenBLAS's own call, declared weak: null where the program's BLAS is another library.
// 0: sequential build, 1: its own pthreads, 2: OpenMP.
extern "C" int openblas_get_parallel(void) __attribute__((weak));
#endif

namespace prefopt {

// Whether the program's BLAS is OpenBLAS built with OpenMP.
inline bool blas_is_openblas_openmp() noexcept {
#if defined(__GNUC__)
  static const bool openmp = openblas_get_parallel != nullptr && openblas_get_parallel() == 2;
  return openmp;
#else
  return false;
#endif
}

inline void fixed_blas_threads() noexcept {
#ifdef _OPENMP
  if (!blas_is_openblas_openmp() || !omp_get_dynamic()) return;
  omp_set_dynamic(0);
  static bool said = false;  // a race here can only print the line twice
  if (!said) {
    said = true;
    std::fputs("prefopt: OpenMP dynamic thread adjustment (OMP_DYNAMIC) turned off: OpenBLAS's OpenMP "
               "threading deadlocks when it gets fewer threads than it asked for\n",
               stderr);
  }
#endif
}

} // namespace prefopt
