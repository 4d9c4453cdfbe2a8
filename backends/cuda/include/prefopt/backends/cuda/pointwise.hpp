// prefopt/backends/cuda/pointwise.hpp — cuda backend: embedding, residual add, bias, GELU,
// SwiGLU, RoPE, dropout (kernels in backends/cuda/src/transformer.cu over core/device_math.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "prefopt/backends/cuda/common.hpp"

namespace prefopt::backends::cuda_detail {

template <class Self> struct cuda_pointwise_ops {
  // out[i,:] = table[ids[i],:]; ids are checked on the device (one flag read back).
  void embedding_forward(std::span<const std::int32_t> ids, std::span<const float> table, int C,
                         std::span<float> out) const {
    const char* op = "embedding_forward";
    const std::size_t c = positive(C, op, "C"), vocab = table.size() / c;
    require_size(out.size(), ids.size() * c, op, "out");
    if (ids.empty()) return;
    context& cx = ctx();
    reset_flag(cx, op);
    check(cuda_kernels::embedding_forward(ids.data(), ids.size(), table.data(), vocab, C, out.data(), cx.flag(),
                                          cx.stream()),
          op);
    throw_if_flagged(cx, op, "ids", "is outside [0, " + std::to_string(vocab) + ")");
  }
  // dtable[ids[i],:] += dout[i,:] in token order (one thread per column).
  void embedding_backward(std::span<const std::int32_t> ids, std::span<const float> dout, int C,
                          std::span<float> dtable) const {
    const char* op = "embedding_backward";
    const std::size_t c = positive(C, op, "C"), vocab = dtable.size() / c;
    require_size(dout.size(), ids.size() * c, op, "dout");
    if (ids.empty()) return;
    context& cx = ctx();
    reset_flag(cx, op);
    check(cuda_kernels::embedding_backward(ids.data(), ids.size(), dout.data(), C, dtable.data(), vocab, cx.flag(),
                                           cx.stream()),
          op);
    throw_if_flagged(cx, op, "ids", "is outside [0, " + std::to_string(vocab) + ")");
  }
  void add_inplace(std::span<const float> x, std::span<float> y) const {
    require_size(y.size(), x.size(), "add_inplace", "y");
    check(cuda_kernels::axpy(1.0f, x.data(), y.data(), x.size(), ctx().stream()), "add_inplace");
  }
  void bias_forward(std::span<const float> bias, int N, std::span<float> out) const {
    const std::size_t rows = op_checks::bias("bias_forward", bias.size(), "bias", N, out.size(), "out").rows;
    check(cuda_kernels::bias_forward(bias.data(), N, out.data(), rows, ctx().stream()), "bias_forward");
  }
  void bias_backward(std::span<const float> dout, int N, std::span<float> dbias) const {
    const std::size_t rows = op_checks::bias("bias_backward", dbias.size(), "dbias", N, dout.size(), "dout").rows;
    check(cuda_kernels::bias_backward(dout.data(), rows, N, dbias.data(), ctx().stream()), "bias_backward");
  }
  void gelu_forward(std::span<const float> x, std::span<float> out) const {
    require_size(out.size(), x.size(), "gelu_forward", "out");
    check(cuda_kernels::gelu_forward(x.data(), out.data(), x.size(), ctx().stream()), "gelu_forward");
  }
  void gelu_backward(std::span<const float> x, std::span<const float> dout, std::span<float> dx) const {
    require_size(dout.size(), x.size(), "gelu_backward", "dout");
    require_size(dx.size(), x.size(), "gelu_backward", "dx");
    check(cuda_kernels::gelu_backward(x.data(), dout.data(), dx.data(), x.size(), ctx().stream()), "gelu_backward");
  }
  void swiglu_forward(std::span<const float> gate, std::span<const float> up, std::span<float> out) const {
    require_size(up.size(), gate.size(), "swiglu_forward", "up");
    require_size(out.size(), gate.size(), "swiglu_forward", "out");
    check(cuda_kernels::swiglu_forward(gate.data(), up.data(), out.data(), gate.size(), ctx().stream()), "swiglu_forward");
  }
  void swiglu_backward(std::span<const float> gate, std::span<const float> up, std::span<const float> dout,
                       std::span<float> dgate, std::span<float> dup) const {
    op_checks::swiglu_backward(gate.size(), up.size(), dout.size(), dgate.size(), dup.size());
    check(cuda_kernels::swiglu_backward(gate.data(), up.data(), dout.data(), dgate.data(), dup.data(), gate.size(),
                                        ctx().stream()),
          "swiglu_backward");
  }
  void rope_forward(std::span<float> x, std::span<const std::int32_t> positions, int heads, int head_dim,
                    std::span<const float> inv_freq) const {
    rope(x, positions, heads, head_dim, inv_freq, 1.0f, "rope_forward");
  }
  void rope_backward(std::span<float> dx, std::span<const std::int32_t> positions, int heads, int head_dim,
                     std::span<const float> inv_freq) const {
    rope(dx, positions, heads, head_dim, inv_freq, -1.0f, "rope_backward");
  }
  void dropout(std::span<const float> x, std::span<float> out, float p, std::uint64_t seed) const {
    require_size(out.size(), x.size(), "dropout", "out");
    if (!(p >= 0.0f && p < 1.0f)) op_checks::bad("dropout", "p", "must lie in [0, 1), is " + std::to_string(p));
    check(cuda_kernels::dropout(x.data(), out.data(), x.size(), p, seed, ctx().stream()), "dropout");
  }

private:
  context& ctx() const { return static_cast<const Self&>(*this).ctx(); }
  void rope(std::span<float> x, std::span<const std::int32_t> positions, int heads, int head_dim,
            std::span<const float> inv, float sign, const char* op) const {
    const std::size_t H = positive(heads, op, "heads"), D = positive(head_dim, op, "head_dim");
    if (D % 2 != 0) op_checks::bad(op, "head_dim", "must be even, is " + std::to_string(D));
    require_size(x.size(), positions.size() * H * D, op, "x");
    require_size(inv.size(), D / 2, op, "inv_freq");
    check(cuda_kernels::rope(x.data(), positions.data(), positions.size(), heads, head_dim, inv.data(), sign,
                             ctx().stream()),
          op);
  }
};

} // namespace prefopt::backends::cuda_detail
