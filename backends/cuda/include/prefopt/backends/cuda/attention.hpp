// prefopt/backends/cuda/attention.hpp — cuda backend: causal attention over the packed layout.
//
// Two forms: probs_attention_forward/backward keep the softmax probabilities (Hq·Σ L_r² floats);
// flash_attention_forward/backward are FlashAttention over core/flash_attention.hpp's tile
// functions, keeping only the row log-sum-exp (T·Hq floats). attention_forward and
// attention_backward (the op contract of core/transformer_ops.hpp) are whichever the contract
// names: the lse form when the contract's attention_backward takes (dout, q, k, v, out, lse, ...),
// the probabilities form when it takes (dout, q, k, v, probs, ...) — found at compile time
// (lse_contract below), so the backend follows core/transformer_ops.hpp without an edit.
//
// The layout lives in device memory; each call reads row_offsets and segment back (rows + 1 and
// T ints, one synchronous copy), checks them as the CPU backends do, and uploads each token's row
// and each row's probability-block offset for the kernels (backends/cuda/src/attention.cu).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "prefopt/backends/cuda/common.hpp"
#include "prefopt/backends/cuda/lm_head.hpp"
#include "prefopt/backends/cuda/norms.hpp"
#include "prefopt/backends/cuda/pointwise.hpp"
#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::backends::cuda_detail {

// A checked layout with its device-side tables (kept alive for the kernels' launch).
struct attention_tables {
  device_buffer<std::int32_t> token_row;
  device_buffer<std::size_t> prob_offset;
  std::size_t probs = 0, q_size = 0, kv_size = 0;
  cuda_kernels::attention_args args;
};

inline attention_tables make_attention_tables(context& cx, const std::shared_ptr<context>& owner,
                                              const attention_layout& lay, const attention_shape& sh, const char* op) {
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
  std::vector<std::int32_t> token_row(T);
  std::vector<std::size_t> prob_offset(rows + 1, 0);
  std::size_t max_length = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    if (off[r + 1] < off[r]) fail("layout.row_offsets decreases at row " + std::to_string(r + 1));
    const std::size_t l = std::size_t(off[r + 1] - off[r]);
    if (l > std::size_t(std::max(lay.max_row_length, 0)))
      fail("row " + std::to_string(r) + " has " + std::to_string(l) + " tokens, layout.max_row_length is " +
           std::to_string(lay.max_row_length));
    max_length = std::max(max_length, l);
    prob_offset[r + 1] = prob_offset[r] + Hq * l * l;
    for (std::size_t t = std::size_t(off[r]); t < std::size_t(off[r + 1]); ++t) token_row[t] = std::int32_t(r);
  }
  for (std::size_t t = 0; t < T; ++t)
    if (seg[t] < -1) fail("layout.segment[" + std::to_string(t) + "] is " + std::to_string(seg[t]));
  attention_tables a;
  a.probs = prob_offset.back();
  a.q_size = T * Hq * D;
  a.kv_size = T * Hkv * D;
  a.token_row = device_buffer<std::int32_t>(owner, std::max<std::size_t>(T, 1));
  a.prob_offset = device_buffer<std::size_t>(owner, rows + 1);
  if (T)
    check(cudaMemcpyAsync(a.token_row.data(), token_row.data(), T * sizeof(std::int32_t), cudaMemcpyHostToDevice,
                          cx.stream()),
          op);
  check(cudaMemcpyAsync(a.prob_offset.data(), prob_offset.data(), prob_offset.size() * sizeof(std::size_t),
                        cudaMemcpyHostToDevice, cx.stream()),
        op);
  cx.synchronize(op);  // the host vectors above die at return
  a.args = {a.token_row.data(), lay.row_offsets.data(), a.prob_offset.data(), lay.segment.data(),
            T,  int(Hq),        int(Hkv),               int(D),             int(max_length)};
  return a;
}

// Which attention contract core/transformer_ops.hpp declares: a type with every transformer op
// of this backend but only the lse form of attention satisfies backend_ops::transformer iff the
// contract is the lse one. (Members are declared only: the concept never calls them.)
struct lse_contract_probe : cuda_norm_ops<lse_contract_probe>,
                            cuda_pointwise_ops<lse_contract_probe>,
                            cuda_lm_head_ops<lse_contract_probe> {
  context& ctx() const;
  void attention_forward(std::span<const float>, std::span<const float>, std::span<const float>, const attention_layout&,
                         const attention_shape&, std::span<float>, std::span<float>) const;
  void attention_backward(std::span<const float>, std::span<const float>, std::span<const float>, std::span<const float>,
                          std::span<const float>, std::span<const float>, const attention_layout&, const attention_shape&,
                          std::span<float>, std::span<float>, std::span<float>) const;
};
inline constexpr bool lse_contract = backend_ops::transformer<lse_contract_probe>;

template <class Self> struct cuda_attention_ops {
  // The contract's op: out and lse [T × Hq] (lse contract) or out and the probabilities.
  void attention_forward(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                         const attention_layout& lay, const attention_shape& sh, std::span<float> out,
                         std::span<float> saved) const {
    if constexpr (lse_contract) flash_attention_forward(q, k, v, lay, sh, out, saved);
    else probs_attention_forward(q, k, v, lay, sh, out, saved);
  }
  // The lse contract's backward (dout, q, k, v, out, lse, ...).
  void attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, std::span<const float> out, std::span<const float> lse,
                          const attention_layout& lay, const attention_shape& sh, std::span<float> dq,
                          std::span<float> dk, std::span<float> dv) const {
    flash_attention_backward(dout, q, k, v, out, lse, lay, sh, dq, dk, dv);
  }
  // The probabilities contract's backward (dout, q, k, v, probs, ...).
  void attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, std::span<const float> probs, const attention_layout& lay,
                          const attention_shape& sh, std::span<float> dq, std::span<float> dk,
                          std::span<float> dv) const {
    probs_attention_backward(dout, q, k, v, probs, lay, sh, dq, dk, dv);
  }

  // Probabilities kept: probs holds row r's block of Hq·L_r² values (head-major, query-major).
  void probs_attention_forward(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                               const attention_layout& lay, const attention_shape& sh, std::span<float> out,
                               std::span<float> probs) const {
    const char* op = "attention_forward";
    context& cx = self().ctx();
    const attention_tables t = make_attention_tables(cx, self().shared_context(), lay, sh, op);
    require_size(q.size(), t.q_size, op, "q");
    require_size(k.size(), t.kv_size, op, "k");
    require_size(v.size(), t.kv_size, op, "v");
    require_size(out.size(), t.q_size, op, "out");
    require_size(probs.size(), t.probs, op, "probs");
    check(cuda_kernels::attention_forward(t.args, q.data(), k.data(), v.data(), out.data(), probs.data(), cx.stream()), op);
  }
  void probs_attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                                std::span<const float> v, std::span<const float> probs, const attention_layout& lay,
                                const attention_shape& sh, std::span<float> dq, std::span<float> dk,
                                std::span<float> dv) const {
    const char* op = "attention_backward";
    context& cx = self().ctx();
    const attention_tables t = make_attention_tables(cx, self().shared_context(), lay, sh, op);
    require_size(dout.size(), t.q_size, op, "dout");
    require_size(q.size(), t.q_size, op, "q");
    require_size(k.size(), t.kv_size, op, "k");
    require_size(v.size(), t.kv_size, op, "v");
    require_size(probs.size(), t.probs, op, "probs");
    require_size(dq.size(), t.q_size, op, "dq");
    require_size(dk.size(), t.kv_size, op, "dk");
    require_size(dv.size(), t.kv_size, op, "dv");
    device_buffer<float> dscores(self().shared_context(), std::max<std::size_t>(t.probs, 1));
    check(cuda_kernels::attention_backward(t.args, dout.data(), q.data(), k.data(), v.data(), probs.data(), dscores.data(),
                                           dq.data(), dk.data(), dv.data(), cx.stream()),
          op);
  }

  // FlashAttention with the row log-sum-exp instead of the probabilities (the op signature of
  // core/flash_attention.hpp's contract): lse [T × Hq] (+∞ for padding queries); backward
  // recomputes the probabilities from q, k and lse. Memory O(T·H·D), no L² buffer.
  void flash_attention_forward(std::span<const float> q, std::span<const float> k, std::span<const float> v,
                               const attention_layout& lay, const attention_shape& sh, std::span<float> out,
                               std::span<float> lse) const {
    const char* op = "attention_forward";
    context& cx = self().ctx();
    const attention_tables t = make_attention_tables(cx, self().shared_context(), lay, sh, op);
    check_flash(t, sh, op);
    require_size(q.size(), t.q_size, op, "q");
    require_size(k.size(), t.kv_size, op, "k");
    require_size(v.size(), t.kv_size, op, "v");
    require_size(out.size(), t.q_size, op, "out");
    require_size(lse.size(), std::size_t(sh.tokens) * std::size_t(sh.q_heads), op, "lse");
    check(cuda_kernels::flash_attention_forward(t.args, q.data(), k.data(), v.data(), out.data(), lse.data(), cx.stream()),
          op);
  }
  void flash_attention_backward(std::span<const float> dout, std::span<const float> q, std::span<const float> k,
                                std::span<const float> v, std::span<const float> out, std::span<const float> lse,
                                const attention_layout& lay, const attention_shape& sh, std::span<float> dq,
                                std::span<float> dk, std::span<float> dv) const {
    const char* op = "attention_backward";
    context& cx = self().ctx();
    const attention_tables t = make_attention_tables(cx, self().shared_context(), lay, sh, op);
    check_flash(t, sh, op);
    const std::size_t rows = std::size_t(sh.tokens) * std::size_t(sh.q_heads);
    require_size(dout.size(), t.q_size, op, "dout");
    require_size(q.size(), t.q_size, op, "q");
    require_size(k.size(), t.kv_size, op, "k");
    require_size(v.size(), t.kv_size, op, "v");
    require_size(out.size(), t.q_size, op, "out");
    require_size(lse.size(), rows, op, "lse");
    require_size(dq.size(), t.q_size, op, "dq");
    require_size(dk.size(), t.kv_size, op, "dk");
    require_size(dv.size(), t.kv_size, op, "dv");
    device_buffer<float> delta(self().shared_context(), std::max<std::size_t>(rows, 1));
    check(cuda_kernels::flash_attention_backward(t.args, dout.data(), q.data(), k.data(), v.data(), out.data(), lse.data(),
                                                 delta.data(), dq.data(), dk.data(), dv.data(), cx.stream()),
          op);
  }

private:
  static void check_flash(const attention_tables&, const attention_shape& sh, const char* op) {
    if (sh.head_dim > cuda_kernels::max_head_dim)
      op_checks::bad(op, "shape.head_dim", "is " + std::to_string(sh.head_dim) + ", the cuda kernels take at most " +
                                               std::to_string(cuda_kernels::max_head_dim));
  }
  const Self& self() const { return static_cast<const Self&>(*this); }
};

} // namespace prefopt::backends::cuda_detail
