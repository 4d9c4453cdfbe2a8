// core/flash_attention_packed.hpp on the CPU: the cuda backend's FlashAttention kernels run one
// work item per GPU thread; here every work item runs in a loop — the same code, forward and
// backward — over packed rows with shared prefixes, padding, rows longer than a tile, MHA and GQA,
// against attention from its definition in double.
#include <doctest/doctest.h>

#include <random>
#include <tuple>

#include "prefopt/core/flash_attention_packed.hpp"
#include "support/attention_reference.hpp"

using namespace prefopt;
using test::fvec;
using test::ivec;

namespace {
fvec randn(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  fvec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
} // namespace

TEST_CASE("FlashAttention work items (the cuda kernels' per-thread code) equal the definition") {
  const test::packed_rows rows;
  const std::size_t T = rows.seg.size();
  ivec token_row(T);
  for (std::size_t r = 0; r + 1 < rows.off.size(); ++r)
    for (auto t = std::size_t(rows.off[r]); t < std::size_t(rows.off[r + 1]); ++t) token_row[t] = std::int32_t(r);
  for (const auto& c : {std::tuple{4, 4, 16}, std::tuple{4, 2, 8}, std::tuple{4, 1, 64}, std::tuple{6, 2, 128}}) {
    const int hq = std::get<0>(c), hkv = std::get<1>(c), d = std::get<2>(c);
    CAPTURE(hq);
    CAPTURE(hkv);
    CAPTURE(d);
    const std::size_t qs = T * std::size_t(hq * d), ks = T * std::size_t(hkv * d), nq = T * std::size_t(hq),
                      nk = T * std::size_t(hkv);
    const auto q = randn(qs, 1), k = randn(ks, 2), v = randn(ks, 3), dout = randn(qs, 4);
    const test::attention_reference want(rows.off, rows.seg, hq, hkv, d, q, k, v, dout);
    const flash::packed_attention a{token_row.data(), rows.off.data(), rows.seg.data(), T, hq, hkv, d, 70};
    fvec out(qs, NAN), lse(nq, NAN), delta(nq, NAN), dq(qs, NAN), dk(ks, NAN), dv(ks, NAN);
    for (std::size_t e = 0; e < nq; ++e) flash::forward_item(a, e, q.data(), k.data(), v.data(), out.data(), lse.data());
    for (std::size_t e = 0; e < nq; ++e) flash::delta_item(a, e, dout.data(), out.data(), delta.data());
    for (std::size_t e = 0; e < nk; ++e)
      flash::dkdv_item(a, e, dout.data(), q.data(), k.data(), v.data(), lse.data(), delta.data(), dk.data(), dv.data());
    for (std::size_t e = 0; e < nq; ++e)
      flash::dq_item(a, e, dout.data(), q.data(), k.data(), v.data(), lse.data(), delta.data(), dq.data());
    CHECK(test::max_rel(out, want.out) < 1e-5);
    CHECK(test::max_rel(lse, want.lse) < 1e-5);
    CHECK(test::max_rel(dq, want.dq) < 1e-4);
    CHECK(test::max_rel(dk, want.dk) < 1e-4);
    CHECK(test::max_rel(dv, want.dv) < 1e-4);
  }
}
