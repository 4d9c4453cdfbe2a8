// The fused chunked LM head (models/lm_head.hpp) on every CPU backend. Expected values: double
// loops written from the definition (logits = h·Wᵀ, logp = logit[target] − logsumexp, dlogits =
// dlogp·(onehot − softmax), dh = dlogits·W, dW = dlogitsᵀ·h). Every chunk size must give them, and
// a forward that keeps its first chunk for backward must give bit for bit what recomputing gives.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "prefopt/models/lm_head.hpp"
#include "support/backends.hpp"

using namespace prefopt;

namespace {

constexpr int rows = 37, hidden = 8, vocab = 53;

float value(std::size_t i, unsigned seed) {
  const std::uint32_t u = std::uint32_t((i + 100003u * seed) * 2654435761u);
  return float(u >> 8) * 0x1p-24f - 0.5f;
}

struct problem {
  std::vector<float> h, w, dlogp;
  std::vector<std::int32_t> targets;
  explicit problem(unsigned seed) : h(rows * hidden), w(vocab * hidden), dlogp(rows), targets(rows) {
    for (std::size_t i = 0; i < h.size(); ++i) h[i] = 2.0f * value(i, seed);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = 2.0f * value(i, seed + 1);
    for (std::size_t r = 0; r < rows; ++r) {
      dlogp[r] = value(r, seed + 2);
      targets[r] = std::int32_t((r * 7 + seed) % vocab);
    }
  }
};

struct result {
  std::vector<float> lse = std::vector<float>(rows), logp = std::vector<float>(rows);
  std::vector<float> dh = std::vector<float>(rows * hidden), dw = std::vector<float>(vocab * hidden, 0.0f);
};

result reference(const problem& p) {
  result out;
  std::vector<double> dw(out.dw.size(), 0.0);
  for (int r = 0; r < rows; ++r) {
    std::vector<double> z(vocab);
    double m = -INFINITY, s = 0.0;
    for (int v = 0; v < vocab; ++v) {
      for (int c = 0; c < hidden; ++c) z[v] += double(p.h[r * hidden + c]) * p.w[v * hidden + c];
      m = std::max(m, z[v]);
    }
    for (int v = 0; v < vocab; ++v) s += std::exp(z[v] - m);
    const double lse = m + std::log(s);
    out.lse[r] = float(lse);
    out.logp[r] = float(z[p.targets[r]] - lse);
    for (int c = 0; c < hidden; ++c) {
      double acc = 0.0;
      for (int v = 0; v < vocab; ++v)
        acc += p.dlogp[r] * ((v == p.targets[r] ? 1.0 : 0.0) - std::exp(z[v] - lse)) * p.w[v * hidden + c];
      out.dh[r * hidden + c] = float(acc);
    }
    for (int v = 0; v < vocab; ++v)
      for (int c = 0; c < hidden; ++c)
        dw[v * hidden + c] += p.dlogp[r] * ((v == p.targets[r] ? 1.0 : 0.0) - std::exp(z[v] - lse)) * p.h[r * hidden + c];
  }
  for (std::size_t i = 0; i < dw.size(); ++i) out.dw[i] = float(dw[i]);
  return out;
}

template <class B> result run(models::lm_head_chunked<B>& head, const problem& p, bool keep) {
  B be;
  result out;
  head.forward(be, p.h, p.w, p.targets, rows, hidden, vocab, {out.lse, out.logp, {}, {}, {}, {}}, keep);
  head.backward(be, p.h, p.w, p.targets, out.lse, p.dlogp, rows, hidden, vocab, out.dh, out.dw);
  return out;
}

void check_close(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  CAPTURE(what);
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(got[i] - want[i]) < 2e-5 * (1.0 + std::abs(want[i])));
  }
}

void check_close(const result& got, const result& want) {
  check_close(got.lse, want.lse, "lse");
  check_close(got.logp, want.logp, "logp");
  check_close(got.dh, want.dh, "dh");
  check_close(got.dw, want.dw, "dw");
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

} // namespace

TEST_CASE_TEMPLATE("lm_head_chunked: every chunk size gives the definition's log-probs and gradients", B,
                   PREFOPT_CPU_BACKENDS) {
  const problem p(3);
  const result want = reference(p);
  for (int chunk : {0, 1, 5, 16, 36, 37, 100}) {  // 0: automatic (here one chunk)
    CAPTURE(chunk);
    models::lm_head_chunked<B> head(chunk);
    const result recomputed = run(head, p, false);
    check_close(recomputed, want);
    // Keeping the first chunk's logits for backward changes nothing, bit for bit.
    const result kept = run(head, p, true);
    CHECK(same_bits(kept.lse, recomputed.lse));
    CHECK(same_bits(kept.logp, recomputed.logp));
    CHECK(same_bits(kept.dh, recomputed.dh));
    CHECK(same_bits(kept.dw, recomputed.dw));
  }
}

TEST_CASE_TEMPLATE("lm_head_chunked: kept logits serve only the backward of the same inputs", B, PREFOPT_CPU_BACKENDS) {
  B be;
  const problem p(3), q(11);
  const result want_q = reference(q);
  for (int chunk : {8, 100}) {
    CAPTURE(chunk);
    models::lm_head_chunked<B> head(chunk);
    result out;
    // A kept forward on p, then a forward on q that keeps nothing: backward on q recomputes.
    result scratch;
    head.forward(be, p.h, p.w, p.targets, rows, hidden, vocab, {scratch.lse, scratch.logp, {}, {}, {}, {}}, true);
    head.forward(be, q.h, q.w, q.targets, rows, hidden, vocab, {out.lse, out.logp, {}, {}, {}, {}}, false);
    head.backward(be, q.h, q.w, q.targets, out.lse, q.dlogp, rows, hidden, vocab, out.dh, out.dw);
    check_close(out, want_q);
    // A kept forward on p, then a backward on other inputs: recomputed, not taken from p.
    result other;
    head.forward(be, p.h, p.w, p.targets, rows, hidden, vocab, {scratch.lse, scratch.logp, {}, {}, {}, {}}, true);
    head.backward(be, q.h, q.w, q.targets, out.lse, q.dlogp, rows, hidden, vocab, other.dh, other.dw);
    check_close(other.dh, want_q.dh, "dh");
    check_close(other.dw, want_q.dw, "dw");
  }
}

TEST_CASE("lm_head_chunked: automatic chunks hold at most 2^24 logits, and at least 128 rows") {
  models::lm_head_chunked<backends::eigen> head;
  CHECK(head.chunk_rows() == 0);
  CHECK(head.rows_per_chunk(8192) == 2048);
  CHECK(head.rows_per_chunk(32000) == 524);
  CHECK(head.rows_per_chunk(151936) == 128);
  CHECK(head.peak_floats(100, 32000) == 100u * 32000u);
  head.set_chunk_rows(5);
  CHECK(head.rows_per_chunk(32000) == 5);
  CHECK(head.peak_floats(100, 32000) == 5u * 32000u);
}
