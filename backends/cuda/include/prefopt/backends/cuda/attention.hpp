// prefopt/backends/cuda/attention.hpp — cuda backend: causal attention over the packed layout.
//
// FlashAttention-2's block-tiled kernels (backends/cuda/src/flash_attention.cu over
// core/flash_attention_tiled.hpp; the op contract of core/transformer_ops.hpp): forward writes
// out and the row log-sum-exp lse [T × Hq] (+∞ for padding queries), backward recomputes the
// probabilities from q, k and lse. Memory O(T·H·D), nothing of size L². The kernels' functions
// are checked on the CPU in the kernels' block and tile order against the eigen backend
// (tests/core/flash_attention_tiled_test.cpp); compiled for sm_80/sm_90 but not yet run on a
// GPU (tests/cuda/flash_attention_device_test.cu compares them with that CPU order where one is).
//
// The layout lives in device memory; each call reads row_offsets and segment back (rows + 1 and
// T ints, one synchronous copy) and checks them as the CPU backends do.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "prefopt/backends/cuda/common.hpp"
#include "prefopt/core/bf16.hpp"
#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::backends::cuda_detail {

// A checked layout as the kernels read it.
struct attention_tables {
  std::size_t q_size = 0, kv_size = 0;
  cuda_kernels::attention_args args;
};

inline attention_tables make_attention_tables(context& cx, const attention_layout& lay, const attention_shape& sh,
                                              const char* op) {
  auto fail = [&](const std::string& why) { throw shape_error(std::string("backend op '") + op + "'", why); };
  if (sh.tokens < 0) fail("shape.tokens is negative");
  const std::size_t T = std::size_t(sh.tokens);
  const std::size_t Hq = positive(sh.q_heads, op, "shape.q_heads"), Hkv = positive(sh.kv_heads, op, "shape.kv_heads");
  const std::size_t D = positive(sh.head_dim, op, "shape.head_dim");
  if (Hq % Hkv != 0)
    fail("q_heads (" + std::to_string(Hq) + ") is not a multiple of kv_heads (" + std::to_string(Hkv) + ")");
  if (lay.rows < 0) fail("layout.rows is negative");
  const std::size_t rows = std::size_t(lay.rows);
  require_size(lay.row_offsets.size(), rows + 1, op, "layout.row_offsets");
  require_size(lay.segment.size(), T, op, "layout.segment");
  std::vector<std::int32_t> off(rows + 1), seg(T);
  check(cudaMemcpyAsync(off.data(), lay.row_offsets.data(), off.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost,
                        cx.stream()),
        op);
  if (T)
    check(cudaMemcpyAsync(seg.data(), lay.segment.data(), T * sizeof(std::int32_t), cudaMemcpyDeviceToHost, cx.stream()),
          op);
  cx.synchronize(op);
  if (off[0] != 0) fail("layout.row_offsets[0] is " + std::to_string(off[0]) + ", not 0");
  if (off[rows] < 0 || std::size_t(off[rows]) != T)
    fail("layout.row_offsets[rows] is " + std::to_string(off[rows]) + ", shape.tokens is " + std::to_string(T));
  std::size_t max_length = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    if (off[r + 1] < off[r]) fail("layout.row_offsets decreases at row " + std::to_string(r + 1));
    const std::size_t l = std::size_t(off[r + 1] - off[r]);
    if (l > std::size_t(std::max(lay.max_row_length, 0)))
      fail("row " + std::to_string(r) + " has " + std::to_string(l) + " tokens, layout.max_row_length is " +
           std::to_string(lay.max_row_length));
    max_length = std::max(max_length, l);
  }
  for (std::size_t t = 0; t < T; ++t)
    if (seg[t] < -1) fail("layout.segment[" + std::to_string(t) + "] is " + std::to_string(seg[t]));
  attention_tables a;
  a.q_size = T * Hq * D;
  a.kv_size = T * Hkv * D;
  a.args = {lay.row_offsets.data(), lay.segment.data(), T, int(rows), int(Hq), int(Hkv), int(D), int(max_length)};
  return a;
}

template <class Self> struct cuda_attention_ops {
  // out [T × Hq × D] and lse [T × Hq]; attention_backward takes both back and recomputes the
  // probabilities tile by tile.
  void attention_forward(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                         const attention_layout& lay, const attention_shape& sh, std::span<float> out,
                         std::span<float> lse) const {
    const char* op = "attention_forward";
    context& cx = self().ctx();
    const attention_tables t = make_attention_tables(cx, lay, sh, op);
    check_head_dim(sh, op);
    const std::size_t rows = std::size_t(sh.tokens) * std::size_t(sh.q_heads);
    op_checks::attention_forward({t.q_size, t.kv_size, rows}, q.size(), k.size(), v.size(), out.size(), lse.size());
    if (self().matmul_precision == precision::bf16) {  // the kernels read bf16-rounded Q, K, V
      const auto rq = rounded(q, op), rk = rounded(k, op), rv = rounded(v, op);
      check(cuda_kernels::flash_attention_forward(t.args, rq.data(), rk.data(), rv.data(), out.data(), lse.data(), cx.stream()),
            op);
      return;
    }
    check(cuda_kernels::flash_attention_forward(t.args, q.data(), k.data(), v.data(), out.data(), lse.data(), cx.stream()),
          op);
  }
  void attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, std::span<const float> out, std::span<const float> lse,
                          const attention_layout& lay, const attention_shape& sh, std::span<float> dq,
                          std::span<float> dk, std::span<float> dv) const {
    const char* op = "attention_backward";
    context& cx = self().ctx();
    const attention_tables t = make_attention_tables(cx, lay, sh, op);
    check_head_dim(sh, op);
    const std::size_t rows = std::size_t(sh.tokens) * std::size_t(sh.q_heads);
    op_checks::attention_backward({t.q_size, t.kv_size, rows}, dout.size(), q.size(), k.size(), v.size(), out.size(),
                                  lse.size(), dq.size(), dk.size(), dv.size());
    device_buffer<float> delta(self().shared_context(), std::max<std::size_t>(rows, 1));
    if (self().matmul_precision == precision::bf16) {  // rounded dO, Q, K, V (out and lse as the forward left them)
      const auto rd = rounded(dout, op), rq = rounded(q, op), rk = rounded(k, op), rv = rounded(v, op);
      check(cuda_kernels::flash_attention_backward(t.args, rd.data(), rq.data(), rk.data(), rv.data(), out.data(),
                                                   lse.data(), delta.data(), dq.data(), dk.data(), dv.data(), cx.stream()),
            op);
      return;
    }
    check(cuda_kernels::flash_attention_backward(t.args, dout.data(), q.data(), k.data(), v.data(), out.data(), lse.data(),
                                                 delta.data(), dq.data(), dk.data(), dv.data(), cx.stream()),
          op);
  }
  // New tokens against a key/value cache: slot and position are read back and checked on the host
  // (one synchronous copy), then one thread per (token, query head) runs
  // flash::cached_attention_item (backends/cuda/src/cached_attention.cu).
  void attention_cached(std::span<const float> q, std::span<const float> k_cache, std::span<const float> v_cache,
                        std::span<const std::int32_t> slot, std::span<const std::int32_t> position,
                        const cached_attention_shape& sh, std::span<float> out) const {
    const char* op = "attention_cached";
    context& cx = self().ctx();
    const std::size_t T = std::size_t(std::max(sh.tokens, 0));
    const std::size_t ids = std::min({slot.size(), position.size(), T});
    std::vector<std::int32_t> hs(ids), hp(ids);
    if (ids) {
      check(cudaMemcpyAsync(hs.data(), slot.data(), ids * sizeof(std::int32_t), cudaMemcpyDeviceToHost, cx.stream()), op);
      check(cudaMemcpyAsync(hp.data(), position.data(), ids * sizeof(std::int32_t), cudaMemcpyDeviceToHost, cx.stream()), op);
      cx.synchronize(op);
    }
    check_cached_attention(sh, q.size(), k_cache.size(), v_cache.size(), out.size(), hs.data(), hp.data(),
                           std::min(slot.size(), position.size()), op);
    check_head_dim(attention_shape{sh.tokens, sh.q_heads, sh.kv_heads, sh.head_dim}, op);
    const flash::cached_attention a{slot.data(), position.data(), T, std::size_t(sh.capacity), sh.q_heads, sh.kv_heads,
                                    sh.head_dim};
    check(cuda_kernels::cached_attention(a, q.data(), k_cache.data(), v_cache.data(), out.data(), cx.stream()), op);
  }

private:
  static void check_head_dim(const attention_shape& sh, const char* op) {
    if (sh.head_dim > cuda_kernels::max_head_dim)
      op_checks::bad(op, "shape.head_dim", "is " + std::to_string(sh.head_dim) + ", the cuda kernels take at most " +
                                               std::to_string(cuda_kernels::max_head_dim));
  }
  const Self& self() const { return static_cast<const Self&>(*this); }
  // A bf16-rounded copy of x (core/bf16.hpp), queued on the stream.
  device_buffer<float> rounded(std::span<const float> x, const char* op) const {
    device_buffer<float> r(self().shared_context(), x.size());
    check(cuda_kernels::round_bf16(x.data(), r.data(), x.size(), self().ctx().stream()), op);
    return r;
  }
};

} // namespace prefopt::backends::cuda_detail
