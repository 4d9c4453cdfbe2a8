// FlashAttention on the GPU. (1) core/flash_attention.hpp's forward tile step (the decoding
// kernels' code) is __host__ __device__: run in a kernel, one thread per (query, head), it gives
// the host's numbers from the same functions. (2) The cuda backend's block-tiled kernels
// (backends/cuda/src/flash_attention.cu, through its launchers) equal the same kernels executed
// on the CPU in their block and tile order (tests/support/flash_attention_tiled_driver.hpp) at
// head_dim 64, 128 and 40 (generic path), on packed rows of several lengths with prefix-shared
// segments, padding, MHA and GQA.
// Built only when the CUDA toolkit is found (PREFOPT_ENABLE_CUDA); exit code 77 without a GPU.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cuda_runtime.h>
#include <vector>

#include "../support/flash_attention_tiled_driver.hpp"
#include "prefopt/backends/cuda/kernels.hpp"
#include "prefopt/core/flash_attention.hpp"

namespace fl = prefopt::flash;

namespace {
constexpr int L = 45, Hq = 4, Hkv = 2, D = 16, group = Hq / Hkv, tile = 8;

struct problem {
  const float *q, *k, *v;
  const std::int32_t* seg;
};

// One (query i, head h): forward over key tiles of `tile`, then out and lse.
__host__ __device__ void forward_one(const problem& p, int i, int h, float* out, float* lse) {
  const int g = h / group;
  fl::row_state st;
  float acc[D] = {}, s[tile];
  for (int j0 = 0; j0 <= i; j0 += tile) {
    const int n = L - j0 < tile ? L - j0 : tile;
    fl::forward_row_tile(st, acc, p.q + (i * Hq + h) * D, i, p.seg[i], p.k + (j0 * Hkv + g) * D,
                         p.v + (j0 * Hkv + g) * D, Hkv * D, j0, p.seg + j0, n, D, 0.25f, s);
  }
  fl::finalize_row(st, acc, D, out + (i * Hq + h) * D, lse + i * Hq + h);
}

__global__ void forward_kernel(problem p, float* out, float* lse) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < L * Hq) forward_one(p, t / Hq, t % Hq, out, lse);
}

#define CHECK_CUDA(x)                                                                    \
  do {                                                                                   \
    const cudaError_t e = (x);                                                           \
    if (e != cudaSuccess) {                                                              \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
      return 1;                                                                          \
    }                                                                                    \
  } while (0)

// Largest |a − b| / (1 + |b|), +∞ values equal when both are +∞, NaN the worst.
double worst(const std::vector<float>& a, const std::vector<float>& b) {
  double w = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(a[i]) && a[i] == b[i]) continue;
    const double e = std::abs(double(a[i]) - double(b[i])) / (1.0 + std::abs(double(b[i])));
    if (!(e <= w)) w = e;
  }
  return w;
}
// (2) for one head configuration: the launchers against the CPU driver; returns the failures.
template <int DC> int check_kernels(int hq, int hkv, int d) {
  namespace ck = prefopt::backends::cuda_kernels;
  std::vector<std::int32_t> off{0}, sg;
  auto row = [&](int n, int p, int c) {  // p prompt tokens, c chosen, the rest rejected; last token padding
    for (int t = 0; t < n; ++t) sg.push_back(t == n - 1 && n > 3 ? -1 : t < p ? 0 : t < p + c ? 1 : 2);
    off.push_back(int(sg.size()));
  };
  row(1, 1, 0), row(5, 5, 0), row(70, 20, 25), row(0, 0, 0), row(200, 60, 70), row(64, 64, 0), row(33, 10, 10);
  int max_len = 0;
  for (std::size_t r = 0; r + 1 < off.size(); ++r) max_len = std::max(max_len, off[r + 1] - off[r]);
  const std::size_t T = sg.size(), nq = T * std::size_t(hq * d), nkv = T * std::size_t(hkv * d), nl = T * std::size_t(hq);
  std::vector<float> q(nq), k(nkv), v(nkv), dout(nq);
  auto fill = [](std::vector<float>& x, unsigned s) {
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * float(i) + float(s)) * 1.5f;
  };
  fill(q, 5), fill(k, 6), fill(v, 7), fill(dout, 8);
  prefopt::flash::packed_attention a{off.data(), sg.data(), T, int(off.size() - 1), hq, hkv, d, max_len};
  std::vector<float> out(nq), lse(nl), delta(nl), dq(nq), dk(nkv), dv(nkv);
  prefopt::test::tiled_driver::forward<DC>(a, q.data(), k.data(), v.data(), out.data(), lse.data());
  prefopt::test::tiled_driver::backward<DC>(a, dout.data(), q.data(), k.data(), v.data(), out.data(), lse.data(),
                                            delta.data(), dq.data(), dk.data(), dv.data());

  float* f = nullptr;
  std::int32_t* ints = nullptr;
  CHECK_CUDA(cudaMalloc(&f, sizeof(float) * (5 * nq + 4 * nkv + 2 * nl)));
  CHECK_CUDA(cudaMalloc(&ints, sizeof(std::int32_t) * (off.size() + T)));
  float *q_d = f, *dout_d = q_d + nq, *out_d = dout_d + nq, *dq_d = out_d + nq, *k_d = dq_d + nq, *v_d = k_d + nkv;
  float *dk_d = v_d + nkv, *dv_d = dk_d + nkv, *lse_d = dv_d + nkv, *delta_d = lse_d + nl;
  CHECK_CUDA(cudaMemcpy(q_d, q.data(), sizeof(float) * nq, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dout_d, dout.data(), sizeof(float) * nq, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(k_d, k.data(), sizeof(float) * nkv, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(v_d, v.data(), sizeof(float) * nkv, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(ints, off.data(), sizeof(std::int32_t) * off.size(), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(ints + off.size(), sg.data(), sizeof(std::int32_t) * T, cudaMemcpyHostToDevice));
  a.row_offsets = ints, a.segment = ints + off.size();
  CHECK_CUDA(ck::flash_attention_forward(a, q_d, k_d, v_d, out_d, lse_d, nullptr));
  CHECK_CUDA(ck::flash_attention_backward(a, dout_d, q_d, k_d, v_d, out_d, lse_d, delta_d, dq_d, dk_d, dv_d, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<float> g_out(nq), g_lse(nl), g_dq(nq), g_dk(nkv), g_dv(nkv);
  CHECK_CUDA(cudaMemcpy(g_out.data(), out_d, sizeof(float) * nq, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(g_lse.data(), lse_d, sizeof(float) * nl, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(g_dq.data(), dq_d, sizeof(float) * nq, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(g_dk.data(), dk_d, sizeof(float) * nkv, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(g_dv.data(), dv_d, sizeof(float) * nkv, cudaMemcpyDeviceToHost));
  cudaFree(f);
  cudaFree(ints);
  int failures = 0;
  const struct {
    const char* name;
    const std::vector<float>&got, &want;
    double tol;  // the GPU contracts a·b + c into one rounding: gradients sum more such terms
  } cmp[] = {{"out", g_out, out, 1e-5}, {"lse", g_lse, lse, 1e-5}, {"dq", g_dq, dq, 1e-4}, {"dk", g_dk, dk, 1e-4},
             {"dv", g_dv, dv, 1e-4}};
  for (const auto& c : cmp) {
    const double w = worst(c.got, c.want);
    if (!(w < c.tol)) {
      std::printf("tiled kernels, Hq %d, Hkv %d, head_dim %d: %s differs from the CPU order by %g\n", hq, hkv, d, c.name, w);
      ++failures;
    }
  }
  return failures;
}
} // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  // One row: prompt 0..9, chosen 10..24 with a padding token at 20, rejected 25..41, padding 42..44.
  std::vector<std::int32_t> seg(L);
  for (int t = 0; t < L; ++t) seg[t] = t < 10 ? 0 : t < 25 ? 1 : t < 42 ? 2 : -1;
  seg[20] = -1;
  std::vector<float> q(L * Hq * D), k(L * Hkv * D), v(L * Hkv * D);
  auto fill = [](std::vector<float>& x, unsigned s) {
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * float(i) + float(s)) * 1.5f;
  };
  fill(q, 1), fill(k, 2), fill(v, 3);

  // Host: the same functions in the same order.
  const problem hp{q.data(), k.data(), v.data(), seg.data()};
  std::vector<float> out(L * Hq * D), lse(L * Hq);
  for (int t = 0; t < L * Hq; ++t) forward_one(hp, t / Hq, t % Hq, out.data(), lse.data());

  float* f = nullptr;
  std::int32_t* s_d = nullptr;
  const std::size_t nq = q.size(), nkv = k.size();
  CHECK_CUDA(cudaMalloc(&f, sizeof(float) * (2 * nq + 2 * nkv + L * Hq)));  // q, k, v, out, lse
  CHECK_CUDA(cudaMalloc(&s_d, sizeof(std::int32_t) * L));
  float *q_d = f, *k_d = q_d + nq, *v_d = k_d + nkv, *out_d = v_d + nkv, *lse_d = out_d + nq;
  CHECK_CUDA(cudaMemcpy(q_d, q.data(), sizeof(float) * nq, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(k_d, k.data(), sizeof(float) * nkv, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(v_d, v.data(), sizeof(float) * nkv, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(s_d, seg.data(), sizeof(std::int32_t) * L, cudaMemcpyHostToDevice));
  const problem dp{q_d, k_d, v_d, s_d};
  forward_kernel<<<(L * Hq + 63) / 64, 64>>>(dp, out_d, lse_d);
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<float> g_out(nq), g_lse(L * Hq);
  CHECK_CUDA(cudaMemcpy(g_out.data(), out_d, sizeof(float) * nq, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(g_lse.data(), lse_d, sizeof(float) * L * Hq, cudaMemcpyDeviceToHost));
  cudaFree(f);
  cudaFree(s_d);

  int failures = 0;
  const struct {
    const char* name;
    const std::vector<float>&got, &want;
  } cmp[] = {{"out", g_out, out}, {"lse", g_lse, lse}};
  for (const auto& c : cmp) {
    const double w = worst(c.got, c.want);
    if (!(w < 1e-5)) {
      std::printf("%s: device differs from host by %g\n", c.name, w);
      ++failures;
    }
  }
  for (int h = 0; h < Hq; ++h)
    if (g_lse[20 * Hq + h] != INFINITY || g_out[(20 * Hq + h) * D] != 0.0f) {
      std::printf("padding query 20, head %d: lse %g, out %g (want +inf, 0)\n", h, g_lse[20 * Hq + h],
                  g_out[(20 * Hq + h) * D]);
      ++failures;
    }
  failures += check_kernels<64>(4, 1, 64);
  failures += check_kernels<64>(2, 2, 64);
  failures += check_kernels<128>(4, 1, 128);
  failures += check_kernels<128>(2, 2, 128);
  failures += check_kernels<0>(4, 2, 40);
  std::printf("%s\n", failures ? "FAILED" : "flash attention: device equals host");
  return failures ? 1 : 0;
}
