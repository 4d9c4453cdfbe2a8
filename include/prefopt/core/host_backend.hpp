// prefopt/core/host_backend.hpp — what every backend over host memory shares.
//
// host_backend_base: memory, indexing, cached (decoding) attention
// and elementwise-loss mapping for backends whose buffers are host memory (eigen, xtensor);
// a CPU backend inherits it and adds its arithmetic.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "prefopt/core/backend.hpp"
#include "prefopt/core/cached_attention.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/host_buffer.hpp"
#include "prefopt/core/op_checks.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/transformer_ops.hpp"
#include "prefopt/losses/concepts.hpp"

namespace prefopt {

struct host_backend_base {
  static constexpr bool host_memory = true;
  template <class T> using buffer = host_buffer<T>;

  // ---- memory ----------------------------------------------------------------------------
  template <class T> buffer<T> allocate(std::size_t n) const { return buffer<T>(n, T{}); }
  template <class T> void upload(std::type_identity_t<std::span<const T>> host, std::span<T> dst) const { copy(host, dst); }
  template <class T> void download(std::type_identity_t<std::span<const T>> src, std::span<T> host) const { copy(src, host); }
  template <class T> void copy(std::type_identity_t<std::span<const T>> src, std::span<T> dst) const {
    op_checks::require_size(dst.size(), src.size(), "copy", "dst");
    std::copy(src.begin(), src.end(), dst.begin());
  }
  template <class T> void fill(std::span<T> dst, std::type_identity_t<T> value) const {
    std::fill(dst.begin(), dst.end(), value);
  }
  void synchronize() const {}

  // ---- indexing --------------------------------------------------------------------------
  void gather(std::span<const float> src, std::span<const std::int32_t> idx, std::span<float> dst) const {
    op_checks::require_size(dst.size(), idx.size(), "gather", "dst");
    for (std::size_t i = 0; i < idx.size(); ++i) dst[i] = src[op_checks::index(idx[i], src.size(), "gather")];
  }
  void scatter_add(std::span<const float> src, std::span<const std::int32_t> idx, std::span<float> dst) const {
    op_checks::require_size(src.size(), idx.size(), "scatter_add", "src");
    for (std::size_t i = 0; i < idx.size(); ++i) dst[op_checks::index(idx[i], dst.size(), "scatter_add")] += src[i];
  }

  // ---- dropout (core/transformer_ops.hpp): the mask recomputed from (seed, i) -------------
  void dropout(std::span<const float> x, std::span<float> out, float p, std::uint64_t seed) const {
    op_checks::require_size(out.size(), x.size(), "dropout", "out");
    if (!(p >= 0.0f && p < 1.0f)) op_checks::bad("dropout", "p", "must lie in [0, 1), is " + std::to_string(p));
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] * dropout_multiplier(seed, i, p);
  }

  // ---- new tokens against a key/value cache (core/cached_attention.hpp) -----------------
  // flash::cached_attention_item per (token, query head), OpenMP across items where the backend
  // is built with it and the work is worth a team of threads.
  void attention_cached(std::span<const float> q, std::span<const float> k_cache, std::span<const float> v_cache,
                        std::span<const std::int32_t> slot, std::span<const std::int32_t> position,
                        const cached_attention_shape& sh, std::span<float> out) const {
    const char* op = "attention_cached";
    check_cached_attention(sh, q.size(), k_cache.size(), v_cache.size(), out.size(), slot.data(), position.data(),
                           std::min(slot.size(), position.size()), op);
    if (sh.head_dim > flash::max_head_dim)
      throw shape_error(std::string("backend op '") + op + "': shape.head_dim", "at most " + std::to_string(flash::max_head_dim));
    const flash::cached_attention a{slot.data(), position.data(), std::size_t(sh.tokens), std::size_t(sh.capacity),
                                    sh.q_heads, sh.kv_heads, sh.head_dim};
    const std::ptrdiff_t items = std::ptrdiff_t(a.tokens * std::size_t(sh.q_heads));
    std::size_t work = 0;
    for (std::size_t t = 0; t < a.tokens; ++t) work += std::size_t(position[t] + 1);
    [[maybe_unused]] const bool threaded = work * std::size_t(sh.q_heads) * std::size_t(sh.head_dim) > (std::size_t(1) << 15);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 4) if (threaded)
#endif
    for (std::ptrdiff_t e = 0; e < items; ++e)
      flash::cached_attention_item(a, std::size_t(e), q.data(), k_cache.data(), v_cache.data(), out.data());
  }

  // ---- losses: the elementwise loss of each pair, in a plain loop ------------------------
  template <losses::ElementwiseLoss L, class T> void map_pairs(const L& loss, const pair_view<T>& v) const {
    for (std::size_t i = 0; i < v.n; ++i) {
      const pair_output<T> o = losses::detail::pair_of(loss, v.input(i));
      v.per_pair[i] = o.value;
      v.d_chosen[i] = o.d_chosen;
      v.d_rejected[i] = o.d_rejected;
    }
  }
};

} // namespace prefopt
