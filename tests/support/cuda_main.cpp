// The doctest main of the GPU tests (tests/cuda/*_test.cpp): exit code 77 (CTest's skip) when
// this machine has no CUDA device, so the suites always build and run only where a GPU exists.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "prefopt/backends/cuda.hpp"

int main(int argc, char** argv) {
  if (!prefopt::backends::cuda::device_available()) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
