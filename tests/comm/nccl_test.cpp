// comm::nccl on one GPU (bootstrapped over comm::none): the device-memory collectives run through
// NCCL and leave a one-rank sum as it was; host vectors go through the host communicator; the
// trainers' gradient all-reduce takes the device gradient buffer. Skipped (77) without a GPU.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include <cstdio>

#include <numeric>
#include <vector>

#include "prefopt/comm/collectives.hpp"
#include "prefopt/comm/nccl.hpp"
#include "prefopt/comm/none.hpp"

using namespace prefopt;

namespace {
struct device_buffer {
  float* p = nullptr;
  std::size_t n = 0;
  explicit device_buffer(const std::vector<float>& host) : n(host.size()) {
    REQUIRE(cudaMalloc(&p, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemcpy(p, host.data(), n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~device_buffer() { cudaFree(p); }
  std::vector<float> host() const {
    std::vector<float> h(n);
    REQUIRE(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
  std::span<float> span() { return {p, n}; }
};
} // namespace

TEST_CASE("comm::nccl over one GPU") {
  comm::nccl<comm::none> c(comm::none{});
  static_assert(comm::Communicator<comm::nccl<comm::none>>);
  CHECK(c.rank() == 0);
  CHECK(c.size() == 1);
  std::vector<float> h(1000);
  std::iota(h.begin(), h.end(), 0.5f);
  device_buffer g(h);
  comm::all_reduce_gradients(c, g.span(), 300);  // buckets, through NCCL (one rank: the sum is the buffer)
  CHECK(g.host() == h);
  c.all_reduce_sum(g.span());
  CHECK(g.host() == h);
  device_buffer out(std::vector<float>(1000, 0.0f));
  c.reduce_scatter_sum(std::span<const float>(g.p, g.n), out.span(), {1000});
  CHECK(out.host() == h);
  c.all_gather_in_place(out.span(), {1000});
  CHECK(out.host() == h);
  std::vector<double> v{1.0, 2.0};
  c.all_reduce_sum(std::span<double>(v));  // host memory, through the host communicator
  CHECK(v == std::vector<double>{1.0, 2.0});
  CHECK(c.all_gather(std::span<const double>(v)) == v);
  c.barrier();
}

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
