// core/device_math.hpp on the CPU, driven in the CUDA kernels' order — 256 threads striding over a
// row, their partial results merged as a tree (stride 128, 64, ..., 1) — and compared with the
// eigen backend's ops: the GPU's arithmetic checked where there is no GPU.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/core/device_math.hpp"
#include "prefopt/core/transformer_ops.hpp"

using namespace prefopt;
namespace dm = prefopt::device_math;

namespace {
using fvec = std::vector<float>;
constexpr int threads = 256;  // the kernels' block size (backends/cuda/src/launch.cuh)

fvec randn(std::size_t n, unsigned seed, float scale = 1.0f, float shift = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(shift, scale);
  fvec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
double max_rel(const fvec& a, const fvec& b) {
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(double(a[i]) - double(b[i])) / (1.0 + std::abs(double(b[i]))));
  return m;
}
// block_sum / the LM head's merge: thread t's value, then a tree over the threads.
template <class T, class Merge> T tree(std::vector<T> part, Merge merge) {
  for (int stride = threads / 2; stride > 0; stride >>= 1)
    for (int t = 0; t < stride; ++t) merge(part[std::size_t(t)], part[std::size_t(t + stride)]);
  return part[0];
}
// Σ_j f(j) over a row of n, each thread striding from its index, summed as block_sum does.
template <class F> double block_sum(int n, F f) {
  std::vector<double> part(threads, 0.0);
  for (int t = 0; t < threads; ++t)
    for (int j = t; j < n; j += threads) part[std::size_t(t)] += f(j);
  return tree(part, [](double& a, double b) { a += b; });
}
} // namespace

TEST_CASE("gelu, gelu_grad, swiglu, swiglu_grad equal the eigen backend's element math") {
  backends::eigen be;
  auto x = randn(20000, 1, 4.0f), u = randn(x.size(), 2), g = randn(x.size(), 3);
  x[0] = 0.0f, x[1] = 30.0f, x[2] = -30.0f, x[3] = 1e-20f;
  fvec want(x.size()), want2(x.size()), got(x.size()), got2(x.size());
  be.gelu_forward(x, want);
  for (std::size_t i = 0; i < x.size(); ++i) got[i] = dm::gelu(x[i]);
  CHECK(max_rel(got, want) < 1e-6);
  be.gelu_backward(x, g, want);
  for (std::size_t i = 0; i < x.size(); ++i) got[i] = dm::gelu_grad(x[i], g[i]);
  CHECK(max_rel(got, want) < 1e-6);
  be.swiglu_forward(x, u, want);
  for (std::size_t i = 0; i < x.size(); ++i) got[i] = dm::swiglu(x[i], u[i]);
  CHECK(max_rel(got, want) < 1e-6);
  be.swiglu_backward(x, u, g, want, want2);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto r = dm::swiglu_grad(x[i], u[i], g[i]);
    got[i] = r.dgate, got2[i] = r.dup;
  }
  CHECK(max_rel(got, want) < 1e-6);
  CHECK(max_rel(got2, want2) < 1e-6);
}

TEST_CASE("rope_rotation and rope_apply, one pair per thread, equal the eigen backend (forward, backward)") {
  backends::eigen be;
  const int T = 33, H = 2, D = 128;
  std::vector<std::int32_t> pos(T);
  for (int t = 0; t < T; ++t) pos[std::size_t(t)] = t * 131;
  const auto inv = rope_inv_freq(D, 10000.0f);
  for (float sign : {1.0f, -1.0f}) {
    auto x = randn(std::size_t(T) * H * D, 4), want = x;
    if (sign > 0) be.rope_forward(want, pos, H, D, inv);
    else be.rope_backward(want, pos, H, D, inv);
    const std::size_t half = D / 2;
    for (std::size_t e = 0; e < std::size_t(T) * H * half; ++e) {  // the kernel's thread index
      const std::size_t i = e % half, th = e / half, t = th / H, h = th % H;
      float* x1 = x.data() + (t * H + h) * D;
      dm::rope_apply(x1[i], x1[half + i], dm::rope_rotation(pos[t], inv[i], sign));
    }
    CHECK(max_rel(x, want) == 0.0);  // same float operations in the same order
  }
}

TEST_CASE("layernorm and rmsnorm rows, reduced in the kernel's order, equal the eigen backend") {
  backends::eigen be;
  for (int C : {5, 256, 1000}) {
    const int T = 17;
    auto x = randn(std::size_t(T) * C, 5, 2.0f, 4.0f), w = randn(C, 6), b = randn(C, 7), dout = randn(x.size(), 8);
    fvec out(x.size()), mean(T), rstd(T), dx(x.size(), 0.0f), dw(C, 0.0f), db(C, 0.0f);
    be.layernorm_forward(x, w, b, C, 1e-5f, out, mean, rstd);
    be.layernorm_backward(dout, x, w, mean, rstd, C, dx, dw, db);
    fvec rout(x.size()), rdx(x.size(), 0.0f), rrs(T), rdx2(x.size(), 0.0f);
    for (int t = 0; t < T; ++t) {
      const float* xr = x.data() + std::size_t(t) * C;
      const float* gr = dout.data() + std::size_t(t) * C;
      const double mu = block_sum(C, [&](int j) { return double(xr[j]); }) / double(C);
      const double q = block_sum(C, [&](int j) { return (double(xr[j]) - mu) * (double(xr[j]) - mu); });
      const float m = float(mu), r = dm::norm_rstd(q, std::size_t(C), 1e-5f);
      CHECK(m == doctest::Approx(mean[std::size_t(t)]).epsilon(1e-7));
      CHECK(r == doctest::Approx(rstd[std::size_t(t)]).epsilon(1e-7));
      for (int j = 0; j < C; ++j) rout[std::size_t(t) * C + j] = (xr[j] - m) * r * w[std::size_t(j)] + b[std::size_t(j)];
      const float a = float(block_sum(C, [&](int j) { return double(gr[j] * w[std::size_t(j)]); }) / double(C));
      const float bb = float(block_sum(C, [&](int j) { return double(gr[j] * w[std::size_t(j)] * (xr[j] - m) * r); }) / double(C));
      for (int j = 0; j < C; ++j) rdx[std::size_t(t) * C + j] += dm::norm_dx(gr[j], w[std::size_t(j)], (xr[j] - m) * r, r, a, bb);
      // RMSNorm: μ = 0, a = 0
      const float rr = dm::norm_rstd(block_sum(C, [&](int j) { return double(xr[j]) * double(xr[j]); }), std::size_t(C), 1e-5f);
      rrs[std::size_t(t)] = rr;
      const float b2 = float(block_sum(C, [&](int j) { return double(gr[j] * w[std::size_t(j)] * xr[j] * rr); }) / double(C));
      for (int j = 0; j < C; ++j) rdx2[std::size_t(t) * C + j] += dm::norm_dx(gr[j], w[std::size_t(j)], xr[j] * rr, rr, 0.0f, b2);
    }
    CAPTURE(C);
    CHECK(max_rel(rout, out) < 1e-6);
    CHECK(max_rel(rdx, dx) < 1e-5);
    fvec rms_out(x.size()), rms_r(T), dx2(x.size(), 0.0f), dw2(C, 0.0f);
    be.rmsnorm_forward(x, w, C, 1e-5f, rms_out, rms_r);
    be.rmsnorm_backward(dout, x, w, rms_r, C, dx2, dw2);
    CHECK(max_rel(rrs, rms_r) < 1e-7);
    CHECK(max_rel(rdx2, dx2) < 1e-5);
  }
}

TEST_CASE("softmax_stats: per-thread tiles merged as a tree equal the eigen LM-head statistics") {
  backends::eigen be;
  const int rows = 6, V = 50257;
  auto z = randn(std::size_t(rows) * V, 9, 3.0f);
  z[100] = 70.0f;                                  // one dominant logit
  for (int j = 0; j < V; j += 3) z[std::size_t(V) + j] = -INFINITY;  // row 1: a third −∞
  for (int j = 0; j < V; ++j) z[std::size_t(2) * V + j] = -INFINITY;  // row 2: all −∞ but one
  z[std::size_t(2) * V + 12345] = 1.0f;
  const std::vector<std::int32_t> targets{100, 1, 12345, -1, 50256, 7};
  fvec lse(rows), logp(rows), lss(rows), ent(rows), mean(rows), top(rows);
  z[std::size_t(5) * V + 7] = 80.0f, z[std::size_t(5) * V + 9000] = 80.0f;  // row 5: the target ties a later maximum
  be.lm_head_stats(z, targets, rows, V, {lse, logp, lss, ent, mean, top});
  for (int r = 0; r < rows; ++r) {
    const float* zr = z.data() + std::size_t(r) * V;
    std::vector<dm::softmax_stats> part(threads);
    for (int t = 0; t < threads; ++t)
      for (int j = t; j < V; j += threads) part[std::size_t(t)].add(zr[j]);
    const dm::softmax_stats s = tree(part, [](dm::softmax_stats& a, const dm::softmax_stats& b) { a.merge(b); });
    CAPTURE(r);
    CHECK(float(s.lse()) == doctest::Approx(lse[std::size_t(r)]).epsilon(1e-6));
    if (r != 1 && r != 2) {  // −∞ logits: mean is −∞ on both sides
      CHECK(float(s.zsum / double(V)) == doctest::Approx(mean[std::size_t(r)]).epsilon(1e-5));
    }
    CHECK(float(s.log_sum_sq()) == doctest::Approx(lss[std::size_t(r)]).epsilon(1e-5));
    CHECK(float(s.entropy()) == doctest::Approx(ent[std::size_t(r)]).epsilon(1e-5).scale(1.0));
    const std::int32_t tr = targets[std::size_t(r)];
    if (tr >= 0) CHECK(float(double(zr[tr]) - s.lse()) == doctest::Approx(logp[std::size_t(r)]).epsilon(1e-6));
    // top1 as the kernel forms it: each thread ORs beats_target over its tile, the block ORs them
    bool beaten = false;
    for (int t = 0; t < threads && tr >= 0; ++t)
      for (int j = t; j < V; j += threads) beaten = beaten || dm::beats_target(zr[j], j, zr[tr], tr);
    const float want_top = tr >= 0 && dm::target_is_top1(beaten, zr[tr]) ? 1.0f : 0.0f;
    CHECK(want_top == top[std::size_t(r)]);
  }
  CHECK(top == fvec{1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f});  // row 0: dominant; row 2: the only finite one; row 5: tie, earlier
}

TEST_CASE("softmax_stats merges agree in any grouping to float rounding (vocabulary tiles)") {
  auto z = randn(3000, 10, 5.0f);
  dm::softmax_stats all, a, b;
  for (float v : z) all.add(v);
  for (std::size_t j = 0; j < 1000; ++j) a.add(z[j]);
  for (std::size_t j = 1000; j < z.size(); ++j) b.add(z[j]);
  dm::softmax_stats ab = a, ba = b;
  ab.merge(b);
  ba.merge(a);
  CHECK(ab.lse() == doctest::Approx(all.lse()).epsilon(1e-7));
  CHECK(ba.lse() == doctest::Approx(all.lse()).epsilon(1e-7));
  CHECK(ab.entropy() == doctest::Approx(all.entropy()).epsilon(1e-6));
  CHECK(ba.log_sum_sq() == doctest::Approx(all.log_sum_sq()).epsilon(1e-6));
  dm::softmax_stats empty;
  empty.merge(all);
  CHECK(empty.lse() == doctest::Approx(all.lse()).epsilon(1e-7));
}

TEST_CASE("attention_visible is the layout rule of core/transformer_ops.hpp") {
  CHECK(dm::attention_visible(0, 0));
  CHECK(dm::attention_visible(1, 0));
  CHECK(dm::attention_visible(2, 2));
  CHECK_FALSE(dm::attention_visible(1, 2));
  CHECK_FALSE(dm::attention_visible(0, 1));
  CHECK_FALSE(dm::attention_visible(1, -1));
  CHECK_FALSE(dm::attention_visible(-1, 0));
  CHECK_FALSE(dm::attention_visible(-1, -1));
}
