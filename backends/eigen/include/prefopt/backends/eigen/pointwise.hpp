// prefopt/backends/eigen/pointwise.hpp — eigen backend: embedding, residual add, bias, GELU, SwiGLU, RoPE.
//
// Vectorized Eigen array expressions over blocks of a flat buffer (OpenMP across blocks or rows);
// the formulas are those of core/transformer_ops.hpp, evaluated in float as PyTorch does.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "prefopt/backends/eigen/common.hpp"

namespace prefopt::backends::detail {

struct eigen_pointwise_ops {
  // out[i,:] = table[ids[i],:]
  void embedding_forward(std::span<const std::int32_t> ids, std::span<const float> table, int C,
                         std::span<float> out) const {
    const char* op = "embedding_forward";
    const std::size_t c = positive(C, op, "C");
    check_ids(ids, table.size() / c, op, "ids");
    require_size(out.size(), ids.size() * c, op, "out");
    const std::ptrdiff_t n = std::ptrdiff_t(ids.size());
#pragma omp parallel for schedule(static) if (ids.size() * c > parallel_grain)
    for (std::ptrdiff_t i = 0; i < n; ++i)
      std::copy_n(table.data() + std::size_t(ids[i]) * c, c, out.data() + std::size_t(i) * c);
  }
  // dtable[ids[i],:] += dout[i,:] (ids may repeat: one thread, in token order)
  void embedding_backward(std::span<const std::int32_t> ids, std::span<const float> dout, int C,
                          std::span<float> dtable) const {
    const char* op = "embedding_backward";
    const std::size_t c = positive(C, op, "C");
    check_ids(ids, dtable.size() / c, op, "ids");
    require_size(dout.size(), ids.size() * c, op, "dout");
    const Eigen::Index ci = Eigen::Index(c);
    for (std::size_t i = 0; i < ids.size(); ++i)
      array_map(dtable.data() + std::size_t(ids[i]) * c, ci) += carray_map(dout.data() + i * c, ci);
  }

  // y += x
  void add_inplace(std::span<const float> x, std::span<float> y) const {
    require_size(y.size(), x.size(), "add_inplace", "y");
    for_blocks(x.size(), [&](std::size_t s, std::size_t len) {
      array_map(y.data() + s, Eigen::Index(len)) += carray_map(x.data() + s, Eigen::Index(len));
    });
  }

  // out[t,:] += bias, T = out.size() / N
  void bias_forward(std::span<const float> bias, int N, std::span<float> out) const {
    const op_checks::row_dims d = op_checks::bias("bias_forward", bias.size(), "bias", N, out.size(), "out");
    const std::size_t n = d.cols, rows = d.rows;
    const carray_map b(bias.data(), Eigen::Index(n));
    const std::ptrdiff_t T = std::ptrdiff_t(rows);
#pragma omp parallel for schedule(static) if (out.size() > parallel_grain)
    for (std::ptrdiff_t t = 0; t < T; ++t) array_map(out.data() + std::size_t(t) * n, Eigen::Index(n)) += b;
  }
  // dbias += Σ_t dout[t,:], T = dout.size() / N (summed in double)
  void bias_backward(std::span<const float> dout, int N, std::span<float> dbias) const {
    const op_checks::row_dims d = op_checks::bias("bias_backward", dbias.size(), "dbias", N, dout.size(), "dout");
    const std::size_t n = d.cols, rows = d.rows;
    add_column_sums(rows, n, dbias.data(), [&](std::size_t t, std::size_t c0, std::size_t len) {
      return carray_map(dout.data() + t * n + c0, Eigen::Index(len));
    });
  }

  // out = 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³)
  // tanh through q = 1 − tanh|u| = 2/(e^{2|u|} + 1) (vectorized exp): accurate where tanh → ±1,
  // unlike a rational tanh, which matters for the tails and for 1 − tanh² = q(2 − q) below.
  void gelu_forward(std::span<const float> x, std::span<float> out) const {
    require_size(out.size(), x.size(), "gelu_forward", "out");
    for_blocks(x.size(), [&](std::size_t s, std::size_t len) {
      const Eigen::Index n = Eigen::Index(len);
      const carray_map X(x.data() + s, n);
      const block_array u = gelu_k0 * (X + gelu_k1 * X.cube());
      const block_array q = 2.0f / ((2.0f * u.abs()).exp() + 1.0f);
      // 1 + tanh(u) = q where u < 0, else 2 − q, as a 0/1 blend: exactly the selected value (the other
      // term is +0) without a data-dependent branch, which g++ emits for select() here and which
      // mispredicts on mixed signs (measured 3× slower).
      const block_array neg = (u < 0.0f).cast<float>();
      array_map(out.data() + s, n) = 0.5f * X * (neg * q + (1.0f - neg) * (2.0f - q));
    });
  }
  // dx = dout·(0.5(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)), t = tanh(u)   (dx =)
  void gelu_backward(std::span<const float> x, std::span<const float> dout, std::span<float> dx) const {
    require_size(dout.size(), x.size(), "gelu_backward", "dout");
    require_size(dx.size(), x.size(), "gelu_backward", "dx");
    for_blocks(x.size(), [&](std::size_t s, std::size_t len) {
      const Eigen::Index n = Eigen::Index(len);
      const carray_map X(x.data() + s, n), G(dout.data() + s, n);
      const block_array u = gelu_k0 * (X + gelu_k1 * X.cube());
      const block_array q = 2.0f / ((2.0f * u.abs()).exp() + 1.0f);
      array_map(dx.data() + s, n) = G * (0.5f * (u < 0.0f).select(q, 2.0f - q) +
                                         0.5f * X * (q * (2.0f - q)) * gelu_k0 * (1.0f + 3.0f * gelu_k1 * X.square()));
    });
  }

  // out = silu(gate)·up, silu(g) = g / (1 + e^−g)
  void swiglu_forward(std::span<const float> gate, std::span<const float> up, std::span<float> out) const {
    require_size(up.size(), gate.size(), "swiglu_forward", "up");
    require_size(out.size(), gate.size(), "swiglu_forward", "out");
    for_blocks(gate.size(), [&](std::size_t s, std::size_t len) {
      const Eigen::Index n = Eigen::Index(len);
      const carray_map G(gate.data() + s, n), U(up.data() + s, n);
      array_map(out.data() + s, n) = G / (1.0f + (-G).exp()) * U;
    });
  }
  // dgate = dout·up·σ(g)·(1 + g·(1 − σ(g))), dup = dout·silu(g)   (both =)
  void swiglu_backward(std::span<const float> gate, std::span<const float> up, std::span<const float> dout,
                       std::span<float> dgate, std::span<float> dup) const {
    op_checks::swiglu_backward(gate.size(), up.size(), dout.size(), dgate.size(), dup.size());
    for_blocks(gate.size(), [&](std::size_t s, std::size_t len) {
      const Eigen::Index n = Eigen::Index(len);
      const carray_map G(gate.data() + s, n), U(up.data() + s, n), D(dout.data() + s, n);
      const block_array sig = (1.0f + (-G).exp()).inverse();
      array_map(dup.data() + s, n) = D * G * sig;
      array_map(dgate.data() + s, n) = D * U * sig * (1.0f + G * (1.0f - sig));
    });
  }

  // Rotary embedding in place, rotate_half convention; angle = float(p)·inv_freq[i] in float,
  // cos/sin of that float angle (as Hugging Face's LlamaRotaryEmbedding).
  void rope_forward(std::span<float> x, std::span<const std::int32_t> positions, int heads, int head_dim,
                    std::span<const float> inv_freq) const {
    rope(x, positions, heads, head_dim, inv_freq, 1.0f, "rope_forward");
  }
  // The inverse rotation (sin → −sin), in place on the gradient.
  void rope_backward(std::span<float> dx, std::span<const std::int32_t> positions, int heads, int head_dim,
                     std::span<const float> inv_freq) const {
    rope(dx, positions, heads, head_dim, inv_freq, -1.0f, "rope_backward");
  }

private:
  static constexpr float gelu_k0 = 0.7978845608028654f;  // √(2/π)
  static constexpr float gelu_k1 = 0.044715f;

  static void rope(std::span<float> x, std::span<const std::int32_t> positions, int heads, int head_dim,
                   std::span<const float> inv, float sign, const char* op) {
    const std::size_t H = positive(heads, op, "heads"), D = positive(head_dim, op, "head_dim");
    if (D % 2 != 0) throw shape_error(std::string("backend op '") + op + "'", "head_dim must be even, is " + std::to_string(D));
    const std::size_t T = positions.size(), half = D / 2, row = H * D;
    require_size(x.size(), T * row, op, "x");
    require_size(inv.size(), half, op, "inv_freq");
    const std::ptrdiff_t n = std::ptrdiff_t(T);
#pragma omp parallel if (T * row > parallel_grain)
    {
      std::vector<float> cs(D);  // cos in [0, half), sign·sin in [half, D)
#pragma omp for schedule(static)
      for (std::ptrdiff_t t = 0; t < n; ++t) {
        const float p = float(positions[std::size_t(t)]);
        for (std::size_t i = 0; i < half; ++i) {
          const double a = double(p * inv[i]);
          cs[i] = float(std::cos(a));
          cs[half + i] = sign * float(std::sin(a));
        }
        const float *c = cs.data(), *s = cs.data() + half;
        for (std::size_t h = 0; h < H; ++h) {
          float* x1 = x.data() + std::size_t(t) * row + h * D;
          float* x2 = x1 + half;
          for (std::size_t i = 0; i < half; ++i) {
            const float a = x1[i], b = x2[i];
            x1[i] = a * c[i] - b * s[i];
            x2[i] = b * c[i] + a * s[i];
          }
        }
      }
    }
  }
};

} // namespace prefopt::backends::detail
