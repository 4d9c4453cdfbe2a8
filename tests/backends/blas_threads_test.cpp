// core/blas_threads.hpp: OpenBLAS's OpenMP build deadlocks when OpenMP's dynamic adjustment gives a
// threaded product fewer threads than it asked for, so the host backends turn that adjustment off
// before their products where the program's BLAS is that build (the BLAS of build.sh's packages,
// libopenblas-openmp-dev), and leave it alone with any other BLAS. The deadlock itself needs a busy
// machine to appear (libgomp sizes teams by the load average); what is checked here is the setting
// every product leaves behind.
#include <doctest/doctest.h>

#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "prefopt/core/blas_threads.hpp"
#include "support/backends.hpp"

using namespace prefopt;

TEST_CASE_TEMPLATE("a product with OpenMP's dynamic adjustment on: off after it with OpenBLAS's OpenMP build, kept otherwise", B,
                   PREFOPT_CPU_BACKENDS) {
#ifdef _OPENMP
  MESSAGE("the BLAS is OpenBLAS built with OpenMP: " << blas_is_openblas_openmp());
  const int n = 256;  // large enough for OpenBLAS to thread it
  std::vector<float> a(std::size_t(n) * n, 0.5f), b(std::size_t(n) * n, 2.0f), c(std::size_t(n) * n, 0.0f);
  for (const precision p : {precision::fp32, precision::bf16}) {
    B be;
    be.matmul_precision = p;
    omp_set_dynamic(1);
    REQUIRE(omp_get_dynamic() != 0);
    be.gemm({.m = n, .n = n, .k = n, .lda = n, .ldb = n, .ldc = n}, a, b, c);
    CHECK(c[0] == doctest::Approx(double(n)));
    CHECK(c.back() == doctest::Approx(double(n)));
    CHECK((omp_get_dynamic() != 0) == !blas_is_openblas_openmp());
  }
  omp_set_dynamic(0);
#else
  MESSAGE("built without OpenMP: no dynamic adjustment to turn off");
#endif
}
