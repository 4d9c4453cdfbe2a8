// ZeRO-1 and the overlapped gradient buckets over comm::nccl with the CUDA backend, on one GPU:
// the reduce-scatter, the own-range AdamW and the all-gather run on device buffers (no host
// staging), and three ZeRO-1 steps over one rank give the weights of three plain steps bit for
// bit (a one-rank sum is the buffer itself; the norm, clipping and AdamW are the same kernels);
// the bucket reducer's stream-ordered all-reduces, queued behind the backend's stream, leave a
// one-rank sum unchanged. Skipped (77) without a GPU, like tests/cuda.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "prefopt/backends/cuda.hpp"
#include "prefopt/comm/buckets.hpp"
#include "prefopt/comm/nccl.hpp"
#include "prefopt/comm/none.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"

using namespace prefopt;
using B = backends::cuda;

namespace {
// The part of a model ZeRO-1 touches: one flat parameter and gradient buffer on the device.
struct flat_model {
  using backend_type = B;
  B be{};
  B::buffer<float> p, g;
  std::vector<models::parameter_slice> slices;
  explicit flat_model(std::size_t n) : p(be.allocate<float>(n)), g(be.allocate<float>(n)) {
    slices = {{.name = "w", .offset = 0, .shape = {n - 7}}, {.name = "b", .offset = n - 7, .shape = {7}, .weight_decay = false}};
    std::vector<float> h(n);
    for (std::size_t i = 0; i < n; ++i) h[i] = 0.01f * float(int(i % 13) - 6);
    be.upload(std::span<const float>(h), p.span());
  }
  std::span<float> parameters() { return p.span(); }
  std::span<float> gradients() { return g.span(); }
  const std::vector<models::parameter_slice>& parameter_slices() const { return slices; }
  void zero_grad() { be.fill(g.span(), 0.0f); }
  B& backend() { return be; }
  void set_gradient(int step) {
    std::vector<float> h(p.size());
    for (std::size_t i = 0; i < h.size(); ++i) h[i] = 0.3f * float(int((i * 7 + std::size_t(step)) % 11) - 5);
    be.upload(std::span<const float>(h), g.span());
  }
  std::vector<float> host() {
    std::vector<float> h(p.size());
    be.download(p.span(), std::span<float>(h));
    return h;
  }
};
} // namespace

TEST_CASE("ZeRO-1 over NCCL on device buffers equals the plain update (one GPU)") {
  comm::nccl<comm::none> c(comm::none{});
  c.follow_stream(B{}.ctx().stream());
  const std::size_t n = 1001;
  flat_model plain(n), zero(n);
  const optim::adamw opt{.lr = 1e-2, .weight_decay = 0.1};
  auto s1 = opt.make_state(plain.be, n);
  const train::zero_shard z = train::make_zero_shard(n, 0, 1, zero.slices);
  auto s2 = opt.make_state(zero.be, z.size());
  train::training_args args{.max_grad_norm = 0.5};
  long k1 = 0, k2 = 0;
  for (int step = 0; step < 3; ++step) {
    plain.set_gradient(step);
    zero.set_gradient(step);
    const auto a = train::detail::clip_and_update(plain, opt, s1, args, k1, 1.0, {}, [] {});
    const auto b = train::detail::zero_update<train::step_result>(c, z, zero, opt, s2, args, k2, 1.0, {}, [] {});
    CHECK(a.metrics.at("grad_norm") == b.metrics.at("grad_norm"));
    CHECK(!b.skipped);
  }
  CHECK(k2 == 3);
  const auto wa = plain.host(), wb = zero.host();
  CHECK(std::memcmp(wa.data(), wb.data(), n * sizeof(float)) == 0);
  CHECK(wa != flat_model(n).host());  // the steps moved the weights
}

TEST_CASE("gradient buckets: stream-ordered NCCL all-reduces behind the backend's stream (one GPU)") {
  comm::nccl<comm::none> c(comm::none{});
  B be;
  comm::follow_backend(c, be);  // what the trainers do
  flat_model m(1001);
  m.set_gradient(1);
  const std::vector<float> before = [&] {
    std::vector<float> h(1001);
    be.download(m.g.span(), std::span<float>(h));
    return h;
  }();
  comm::bucket_reducer<comm::nccl<comm::none>> r(c, m.g.span(), 300);
  REQUIRE(r.buckets() == 4);
  r.ready(701, 300);  // bucket 0 starts now
  CHECK(r.started() == 1);
  r.finish();
  std::vector<float> after(1001);
  be.download(m.g.span(), std::span<float>(after));
  CHECK(after == before);
}
