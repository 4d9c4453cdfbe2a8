// prefopt/core/backend.hpp — the tensor backend concept: memory and the op set models need.
//
// A backend is a small object (it may hold a thread count, a cuBLAS handle, a stream) whose
// member functions are the ops. Tensors are flat buffers; an op receives std::span views plus
// the sizes it needs, llm.c style, so the same call works for host and device memory. Layouts
// are row-major. Each op has its backward next to it where it has one.
//
// The op set grows by groups; a model states the groups it needs and a backend that lacks an op
// fails to compile with a message naming the op (prefopt::require_backend_ops<B, ...>()).
// Shipped: backends::eigen, backends::xtensor (CPU), backends::cuda (GPU).
// docs/backends.md has the contract of every op and a minimal backend to copy.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "prefopt/core/bf16.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/losses/batch.hpp"
#include "prefopt/losses/concepts.hpp"

namespace prefopt {

// C[m×n] = alpha·op(A)·op(B) + beta·C, row-major, op(X) = X or Xᵀ; lda/ldb/ldc are row strides
// of the matrices as stored. beta = 0 overwrites C (its old contents may be NaN).
struct gemm_args {
  bool trans_a = false, trans_b = false;
  int m = 0, n = 0, k = 0;
  int lda = 0, ldb = 0, ldc = 0;
  float alpha = 1.0f, beta = 0.0f;
};

// One operand of a product under precision bf16, in the backend's memory: fp32 values (rounded to
// bf16 by the product) or bf16 bits already rounded (a weight copy, a stored norm output). Rounding
// is deterministic, so both forms of the same values give the same product bit for bit.
class gemm_operand {
public:
  gemm_operand(std::span<const float> x) : f32_(x) {}          // NOLINT: implicit, as a span is passed
  gemm_operand(std::span<float> x) : f32_(x) {}                // NOLINT
  gemm_operand(std::span<const std::uint16_t> x) : bf16_(x), is_bf16_(true) {}  // NOLINT
  gemm_operand(std::span<std::uint16_t> x) : bf16_(x), is_bf16_(true) {}        // NOLINT
  bool is_bf16() const noexcept { return is_bf16_; }
  std::span<const float> f32() const noexcept { return f32_; }
  std::span<const std::uint16_t> bf16() const noexcept { return bf16_; }
  std::size_t size() const noexcept { return is_bf16_ ? bf16_.size() : f32_.size(); }
  // The first n elements, in the same form.
  gemm_operand first(std::size_t n) const { return is_bf16_ ? gemm_operand(bf16_.first(n)) : gemm_operand(f32_.first(n)); }

private:
  std::span<const float> f32_{};
  std::span<const std::uint16_t> bf16_{};
  bool is_bf16_ = false;
};

// One AdamW step on a contiguous range (Loshchilov & Hutter, decoupled weight decay):
//   p ← p − lr·wd·p;  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
//   p ← p − lr·(m/bc1)/(sqrt(v/bc2) + eps),  bc1 = 1 − β1^t, bc2 = 1 − β2^t  (as torch.optim.AdamW).
struct adamw_args {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  float bias_correction1 = 1.0f, bias_correction2 = 1.0f;
};

// One SGD step as torch.optim.SGD: g ← g + wd·p; b ← μ b + (1−dampening) g (b ← g at the first
// step); g ← g + μ b (nesterov) or b; p ← p − lr·g.
struct sgd_args {
  float lr = 1e-3f, momentum = 0.0f, dampening = 0.0f, weight_decay = 0.0f;
  bool nesterov = false, first_step = true;
};

// A pair batch as raw pointers in the backend's memory, for map_pairs. Null optional columns
// take neutral values (see pair_input). Outputs: each pair's loss and the gradient of the *sum*.
template <class T> struct pair_view {
  std::size_t n = 0;
  const T *pc = nullptr, *pr = nullptr, *rc = nullptr, *rr = nullptr;
  const int *nc = nullptr, *nr = nullptr;
  const T *preference_prob = nullptr, *score_chosen = nullptr, *score_rejected = nullptr, *cost = nullptr,
          *weight = nullptr;
  batch_context<T> batch{};
  T *per_pair = nullptr, *d_chosen = nullptr, *d_rejected = nullptr;

  PREFOPT_HD pair_input<T> input(std::size_t i) const {
    pair_input<T> x{};
    x.pc = pc[i];
    x.pr = pr[i];
    x.rc = rc ? rc[i] : T(0);
    x.rr = rr ? rr[i] : T(0);
    x.nc = nc ? T(nc[i]) : T(1);
    x.nr = nr ? T(nr[i]) : T(1);
    x.preference_prob = preference_prob ? preference_prob[i] : T(1);
    x.score_chosen = score_chosen ? score_chosen[i] : T(0);
    x.score_rejected = score_rejected ? score_rejected[i] : T(0);
    x.cost = cost ? cost[i] : T(0);
    x.weight = weight ? weight[i] : T(1);
    x.batch = batch;
    return x;
  }
};

namespace backend_ops {
// One concept per op group; each clause is one op, named as in docs/backends.md.
template <class B>
concept memory = requires(B& be, std::size_t n, std::span<float> f, std::span<const float> cf, std::span<std::int32_t> i,
                          std::span<const std::int32_t> ci) {
  typename B::template buffer<float>;                       // owning storage in the backend's memory
  { be.template allocate<float>(n) } -> std::same_as<typename B::template buffer<float>>;
  { be.template allocate<std::int32_t>(n) } -> std::same_as<typename B::template buffer<std::int32_t>>;
  be.upload(cf, f);                                          // host → backend
  be.download(cf, f);                                        // backend → host
  be.upload(ci, i);
  be.download(ci, i);
  be.copy(cf, f);                                            // backend → backend
  be.fill(f, 0.0f);
  be.synchronize();                                          // wait for queued work
};

template <class B>
concept blas = requires(B& be, const gemm_args& g, std::span<float> f, std::span<const float> cf) {
  be.gemm(g, cf, cf, f);                                     // C = alpha·op(A)·op(B) + beta·C
  be.axpy(1.0f, cf, f);                                      // y += a·x
  be.scale(f, 1.0f);                                         // x *= a
  { be.dot(cf, cf) } -> std::convertible_to<double>;         // Σ x·y, accumulated in double
  { be.sum_squares(cf) } -> std::convertible_to<double>;     // Σ x², accumulated in double
};

template <class B>
concept softmax = requires(B& be, int rows, int cols, std::span<float> f, std::span<const float> cf) {
  be.log_softmax_rows(rows, cols, cf, f);                    // out[r,:] = x[r,:] − logsumexp(x[r,:])
  be.log_softmax_rows_backward(rows, cols, cf, cf, f);       // dx = dy − softmax(x)·Σ dy  (from logp, dy)
};

template <class B>
concept indexing = requires(B& be, std::span<float> f, std::span<const float> cf, std::span<const std::int32_t> ci) {
  be.gather(cf, ci, f);                                      // dst[i] = src[idx[i]]
  be.scatter_add(cf, ci, f);                                 // dst[idx[i]] += src[i]
};

template <class B>
concept optim = requires(B& be, std::span<float> f, std::span<const float> cf, const adamw_args& a, const sgd_args& s) {
  be.adamw_step(f, cf, f, f, a);                             // params, grads, m, v
  be.sgd_step(f, cf, f, s);                                  // params, grads, momentum buffer
};

// Elementwise losses mapped over a batch in the backend's memory (a kernel on a GPU).
struct probe_loss {
  static constexpr std::string_view name = "probe";
  unsigned required_columns() const { return 0; }
  void validate() const {}
  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>&) const { return {T(0), T(0), T(0)}; }
};
template <class B>
concept loss_map = requires(B& be, const pair_view<float>& vf, const pair_view<double>& vd) {
  be.map_pairs(probe_loss{}, vf);
  be.map_pairs(probe_loss{}, vd);
};

// precision bf16's stored operands (core/bf16.hpp, "The weight copy", "Stored activations");
// optional: a model on a backend without these ops keeps fp32 and lets gemm round per call, with
// the same results.
template <class B>
concept bf16_operands = requires(B& be, std::size_t n, const gemm_args& g, std::span<const float> cf, std::span<float> f,
                                 std::span<std::uint16_t> h, gemm_operand o) {
  { be.template allocate<std::uint16_t>(n) } -> std::same_as<typename B::template buffer<std::uint16_t>>;
  be.convert_to_bf16(cf, h);                                 // h[i] = to_bf16(x[i])
  be.gemm_bf16(g, o, o, f);                                  // gemm under bf16, each operand fp32 (rounded) or bf16 bits
};
} // namespace backend_ops

// C = alpha·op(A)·op(B) + beta·C with operands given as fp32 or as bf16 bits: gemm_bf16 when
// either is bf16 bits, else gemm. A bf16 operand needs backend_ops::bf16_operands (a model makes
// one only on such a backend).
template <class B> void gemm_any(B& be, const gemm_args& g, gemm_operand a, gemm_operand b, std::span<float> c) {
  if constexpr (backend_ops::bf16_operands<B>) {
    if (a.is_bf16() || b.is_bf16()) return be.gemm_bf16(g, a, b, c);
  }
  if (a.is_bf16() || b.is_bf16()) throw error("gemm", "a bf16 operand on a backend without backend_ops::bf16_operands");
  be.gemm(g, a.f32(), b.f32(), c);
}

// C = alpha·op(A)·op(W)+beta·C for a weight W: through its bf16 copy w16 when one is given (and
// the backend multiplies bf16 operands), else through W's fp32 values.
template <class B>
void gemm_weight(B& be, const gemm_args& g, gemm_operand a, std::span<const float> w, std::span<const std::uint16_t> w16,
                 std::span<float> c) {
  if constexpr (backend_ops::bf16_operands<B>) {
    if (!w16.empty()) return be.gemm_bf16(g, a, gemm_operand(w16), c);
  }
  gemm_any(be, g, a, gemm_operand(w), c);
}

// The full CPU/GPU backend of prefopt's core: every group above.
template <class B>
concept Backend = requires {
  { B::name } -> std::convertible_to<std::string_view>;
  { B::host_memory } -> std::convertible_to<bool>;  // true: spans are host memory the CPU may read
} && backend_ops::memory<B> && backend_ops::blas<B> && backend_ops::softmax<B> && backend_ops::indexing<B> &&
                  backend_ops::optim<B> && backend_ops::loss_map<B>;

// Readable diagnostics: a model calls require_backend_ops<B>() and a backend missing an op group
// fails with a message naming it instead of a wall of template errors.
template <class B> constexpr bool require_core_backend_ops() {
  static_assert(backend_ops::memory<B>, "prefopt: this backend lacks the memory ops (allocate, upload, download, copy, "
                                        "fill, synchronize) — see docs/backends.md");
  static_assert(backend_ops::blas<B>, "prefopt: this backend lacks a BLAS op (gemm, axpy, scale, dot, sum_squares)");
  static_assert(backend_ops::softmax<B>,
                "prefopt: this backend lacks op 'log_softmax_rows' or 'log_softmax_rows_backward'");
  static_assert(backend_ops::indexing<B>, "prefopt: this backend lacks op 'gather' or 'scatter_add'");
  static_assert(backend_ops::optim<B>, "prefopt: this backend lacks op 'adamw_step' or 'sgd_step'");
  static_assert(backend_ops::loss_map<B>, "prefopt: this backend lacks op 'map_pairs' (elementwise losses)");
  return true;
}

} // namespace prefopt
