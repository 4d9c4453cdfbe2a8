// prefopt/backends/xtensor/pointwise.hpp — xtensor backend: embedding, residual add, bias, GELU, SwiGLU, RoPE.
//
// Each op is the numpy expression of its formula (core/transformer_ops.hpp) over views of the
// flat buffers; sums over tokens are taken in double.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "prefopt/backends/xtensor/common.hpp"

namespace prefopt::backends::xdetail {

struct xtensor_pointwise_ops {
  // out[i] = table[ids[i]]
  void embedding_forward(std::span<const std::int32_t> ids, std::span<const float> table, int C,
                         std::span<float> out) const {
    const char* op = "embedding_forward";
    const std::size_t c = positive(C, op, "C"), n = ids.size(), vocab = table.size() / c;
    check_ids(ids, n, vocab, false, op, "ids");
    require_size(out.size(), n * c, op, "out");
    auto Table = matrix(table.data(), vocab, c, c);
    auto Out = matrix(out.data(), n, c, c);
    for (std::size_t i = 0; i < n; ++i) xt::row(Out, std::ptrdiff_t(i)) = xt::row(Table, std::ptrdiff_t(ids[i]));
  }
  // dtable[ids[i]] += dout[i]
  void embedding_backward(std::span<const std::int32_t> ids, std::span<const float> dout, int C,
                          std::span<float> dtable) const {
    const char* op = "embedding_backward";
    const std::size_t c = positive(C, op, "C"), n = ids.size(), vocab = dtable.size() / c;
    check_ids(ids, n, vocab, false, op, "ids");
    require_size(dout.size(), n * c, op, "dout");
    auto dTable = matrix(dtable.data(), vocab, c, c);
    auto dOut = matrix(dout.data(), n, c, c);
    for (std::size_t i = 0; i < n; ++i) xt::row(dTable, std::ptrdiff_t(ids[i])) += xt::row(dOut, std::ptrdiff_t(i));
  }

  // y += x
  void add_inplace(std::span<const float> x, std::span<float> y) const {
    require_size(y.size(), x.size(), "add_inplace", "y");
    auto Y = vector(y.data(), x.size());
    Y += vector(x.data(), x.size());
  }

  // out += bias (broadcast over rows)
  void bias_forward(std::span<const float> bias, int N, std::span<float> out) const {
    const op_checks::row_dims d = op_checks::bias("bias_forward", bias.size(), "bias", N, out.size(), "out");
    const std::size_t n = d.cols, T = d.rows;
    auto Out = matrix(out.data(), T, n, n);
    Out += vector(bias.data(), n);
  }
  // dbias += dout.sum(axis=0)
  void bias_backward(std::span<const float> dout, int N, std::span<float> dbias) const {
    const op_checks::row_dims d = op_checks::bias("bias_backward", dbias.size(), "dbias", N, dout.size(), "dout");
    const std::size_t n = d.cols, T = d.rows;
    auto dB = vector(dbias.data(), n);
    dB += xt::cast<float>(xt::sum(xt::cast<double>(matrix(dout.data(), T, n, n)), {0}));
  }

  // out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
  void gelu_forward(std::span<const float> x, std::span<float> out) const {
    require_size(out.size(), x.size(), "gelu_forward", "out");
    auto X = vector(x.data(), x.size());
    auto Out = vector(out.data(), x.size());
    Out = 0.5f * X * (1.0f + xt::tanh(k0 * (X + k1 * X * X * X)));
  }
  // dx = dout·(0.5(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²))
  void gelu_backward(std::span<const float> x, std::span<const float> dout, std::span<float> dx) const {
    require_size(dout.size(), x.size(), "gelu_backward", "dout");
    require_size(dx.size(), x.size(), "gelu_backward", "dx");
    auto X = vector(x.data(), x.size());
    auto dX = vector(dx.data(), x.size());
    xt::xtensor<float, 1> t = xt::tanh(k0 * (X + k1 * X * X * X));
    dX = vector(dout.data(), x.size()) * (0.5f * (1.0f + t) + 0.5f * X * (1.0f - t * t) * k0 * (1.0f + 3.0f * k1 * X * X));
  }

  // out = silu(gate)·up
  void swiglu_forward(std::span<const float> gate, std::span<const float> up, std::span<float> out) const {
    require_size(up.size(), gate.size(), "swiglu_forward", "up");
    require_size(out.size(), gate.size(), "swiglu_forward", "out");
    auto G = vector(gate.data(), gate.size());
    auto Out = vector(out.data(), gate.size());
    Out = G / (1.0f + xt::exp(-G)) * vector(up.data(), gate.size());
  }
  // dgate = dout·up·σ(g)·(1 + g(1 − σ(g))), dup = dout·g·σ(g)
  void swiglu_backward(std::span<const float> gate, std::span<const float> up, std::span<const float> dout,
                       std::span<float> dgate, std::span<float> dup) const {
    const std::size_t n = gate.size();
    op_checks::swiglu_backward(n, up.size(), dout.size(), dgate.size(), dup.size());
    auto G = vector(gate.data(), n);
    auto U = vector(up.data(), n);
    auto D = vector(dout.data(), n);
    auto dG = vector(dgate.data(), n);
    auto dU = vector(dup.data(), n);
    xt::xtensor<float, 1> sig = 1.0f / (1.0f + xt::exp(-G));
    dU = D * G * sig;
    dG = D * U * sig * (1.0f + G * (1.0f - sig));
  }

  // x' = x·cos + rotate_half(x)·sin per head; the angle position·inv_freq in float32, cos/sin of
  // that float angle (Hugging Face's LlamaRotaryEmbedding).
  void rope_forward(std::span<float> x, std::span<const std::int32_t> positions, int heads, int head_dim,
                    std::span<const float> inv_freq) const {
    rope(x, positions, heads, head_dim, inv_freq, 1.0f, "rope_forward");
  }
  // backward: the inverse rotation, sin → −sin
  void rope_backward(std::span<float> dx, std::span<const std::int32_t> positions, int heads, int head_dim,
                     std::span<const float> inv_freq) const {
    rope(dx, positions, heads, head_dim, inv_freq, -1.0f, "rope_backward");
  }

private:
  static constexpr float k0 = 0.7978845608028654f;  // √(2/π)
  static constexpr float k1 = 0.044715f;

  static void rope(std::span<float> x, std::span<const std::int32_t> positions, int heads, int head_dim,
                   std::span<const float> inv, float sign, const char* op) {
    const std::size_t H = positive(heads, op, "heads"), D = positive(head_dim, op, "head_dim"), T = positions.size();
    if (D % 2 != 0) throw shape_error(std::string("backend op '") + op + "'", "head_dim must be even, is " + std::to_string(D));
    require_size(x.size(), T * H * D, op, "x");
    if (T == 0) return;
    const std::size_t half = D / 2;
    require_size(inv.size(), half, op, "inv_freq");
    xt::xtensor<float, 1> inv_freq = vector(inv.data(), half);
    xt::xtensor<float, 2> angle = xt::view(xt::cast<float>(vector(positions.data(), T)), xt::all(), xt::newaxis()) *
                                  xt::view(inv_freq, xt::newaxis(), xt::all());  // [T × D/2], float
    xt::xtensor<float, 3> cos = xt::view(xt::cast<float>(xt::cos(xt::cast<double>(angle))), xt::all(), xt::newaxis(), xt::all());
    xt::xtensor<float, 3> sin = sign * xt::view(xt::cast<float>(xt::sin(xt::cast<double>(angle))), xt::all(), xt::newaxis(), xt::all());
    auto X = tensor3(x.data(), T, H, D);
    auto x1 = xt::view(X, xt::all(), xt::all(), xt::range(std::size_t(0), half));
    auto x2 = xt::view(X, xt::all(), xt::all(), xt::range(half, D));
    xt::xtensor<float, 3> a = x1, b = x2;
    x1 = a * cos - b * sin;
    x2 = b * cos + a * sin;
  }
};

} // namespace prefopt::backends::xdetail
