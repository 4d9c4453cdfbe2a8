// A user's program on the GPU backend: it compiles with the host compiler against the installed
// prefopt::cuda and runs one op where a CUDA device is visible.
#include <cstdio>
#include <prefopt/backends/cuda.hpp>

int main() {
  using prefopt::backends::cuda;
  if (!cuda::device_available()) {
    std::printf("cuda backend linked; no CUDA device here\n");
    return 0;
  }
  cuda be;
  auto buf = be.allocate<float>(3);
  be.fill(buf.span(), 2.0f);
  const double s = be.sum_squares(buf.span());
  std::printf("cuda: sum of squares %.1f\n", s);
  return s == 12.0 ? 0 : 1;
}
