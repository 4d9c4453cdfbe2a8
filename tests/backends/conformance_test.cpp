// Conformance of every CPU backend's core ops against plain loops written from the op's
// definition (core/backend.hpp), in double. Random inputs, odd sizes, strides and transposes.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "prefopt/losses.hpp"
#include "support/backends.hpp"

using namespace prefopt;
using test::cspan;
using test::mspan;

namespace {
std::vector<float> randn(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
double max_rel(const std::vector<float>& a, const std::vector<double>& b) {
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i]) / (1.0 + std::abs(b[i])));
  return m;
}
} // namespace

TEST_CASE_TEMPLATE("gemm matches the definition for all transposes, strides and beta", B, PREFOPT_CPU_BACKENDS) {
  B be;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (float beta : {0.0f, 1.0f, -0.5f}) {
        const int m = 7, n = 5, k = 9;
        const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
        const int lda = ac + 3, ldb = bc + 1, ldc = n + 2;
        auto a = randn(std::size_t(ar) * lda, 1), b = randn(std::size_t(br) * ldb, 2), c = randn(std::size_t(m) * ldc, 3);
        if (beta == 0.0f) c[0] = NAN;  // beta = 0 must overwrite, not propagate NaN
        std::vector<double> want(c.begin(), c.end());
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < n; ++j) {
            double s = 0.0;
            for (int p = 0; p < k; ++p) {
              const double av = ta ? a[std::size_t(p) * lda + i] : a[std::size_t(i) * lda + p];
              const double bv = tb ? b[std::size_t(j) * ldb + p] : b[std::size_t(p) * ldb + j];
              s += av * bv;
            }
            double& w = want[std::size_t(i) * ldc + j];
            w = 1.5 * s + (beta == 0.0f ? 0.0 : beta * w);
          }
        be.gemm({.trans_a = bool(ta), .trans_b = bool(tb), .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
                 .alpha = 1.5f, .beta = beta},
                cspan(a), cspan(b), mspan(c));
        CAPTURE(ta);
        CAPTURE(tb);
        CAPTURE(beta);
        CHECK(max_rel(c, want) < 1e-5);
      }
}

TEST_CASE_TEMPLATE("gemm rejects buffers that are too small, naming the argument", B, PREFOPT_CPU_BACKENDS) {
  B be;
  std::vector<float> a(5), b(20), c(20);
  CHECK_THROWS_WITH_AS(be.gemm({.m = 2, .n = 2, .k = 3, .lda = 3, .ldb = 2, .ldc = 2}, cspan(a), cspan(b), mspan(c)),
                       doctest::Contains("argument 'A'"), shape_error);
}

TEST_CASE_TEMPLATE("axpy, scale, dot and sum_squares", B, PREFOPT_CPU_BACKENDS) {
  B be;
  auto x = randn(1001, 4), y = randn(1001, 5);
  double dot = 0.0, ss = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    dot += double(x[i]) * y[i];
    ss += double(x[i]) * x[i];
  }
  CHECK(be.dot(cspan(x), cspan(y)) == doctest::Approx(dot).epsilon(1e-12));
  CHECK(be.sum_squares(cspan(x)) == doctest::Approx(ss).epsilon(1e-12));
  std::vector<double> want(y.begin(), y.end());
  for (std::size_t i = 0; i < x.size(); ++i) want[i] = 0.25f * x[i] + want[i];
  be.axpy(0.25f, cspan(x), mspan(y));
  CHECK(max_rel(y, want) < 1e-6);
  be.scale(mspan(y), -2.0f);
  for (auto& w : want) w *= -2.0;
  CHECK(max_rel(y, want) < 1e-6);
}

TEST_CASE_TEMPLATE("log_softmax_rows and its backward", B, PREFOPT_CPU_BACKENDS) {
  B be;
  const int rows = 13, cols = 37;
  auto x = randn(std::size_t(rows) * cols, 6, 4.0f), dy = randn(std::size_t(rows) * cols, 7);
  x[3] = 80.0f;  // a large logit must not overflow
  std::vector<float> lp(x.size()), dx(x.size());
  be.log_softmax_rows(rows, cols, cspan(x), mspan(lp));
  be.log_softmax_rows_backward(rows, cols, cspan(lp), cspan(dy), mspan(dx));
  std::vector<double> want_lp(x.size()), want_dx(x.size());
  for (int r = 0; r < rows; ++r) {
    double mx = -1e300, s = 0.0, sdy = 0.0;
    for (int j = 0; j < cols; ++j) mx = std::max(mx, double(x[std::size_t(r) * cols + j]));
    for (int j = 0; j < cols; ++j) s += std::exp(double(x[std::size_t(r) * cols + j]) - mx);
    for (int j = 0; j < cols; ++j) sdy += dy[std::size_t(r) * cols + j];
    for (int j = 0; j < cols; ++j) {
      const std::size_t i = std::size_t(r) * cols + j;
      want_lp[i] = double(x[i]) - mx - std::log(s);
      want_dx[i] = double(dy[i]) - std::exp(want_lp[i]) * sdy;  // d/dx of Σ dy·logsoftmax(x)
    }
  }
  CHECK(max_rel(lp, want_lp) < 1e-5);
  CHECK(max_rel(dx, want_dx) < 1e-5);
}

TEST_CASE_TEMPLATE("gather and scatter_add, with index checks", B, PREFOPT_CPU_BACKENDS) {
  B be;
  std::vector<float> src{1, 2, 3, 4, 5};
  std::vector<std::int32_t> idx{4, 0, 4, 2};
  std::vector<float> g(4);
  be.gather(cspan(src), cspan(idx), mspan(g));
  CHECK(g == std::vector<float>{5, 1, 5, 3});
  std::vector<float> acc(5, 0.0f);
  be.scatter_add(cspan(g), cspan(idx), mspan(acc));
  CHECK(acc == std::vector<float>{1, 0, 3, 0, 10});
  std::vector<std::int32_t> bad{5};
  CHECK_THROWS_AS(be.gather(cspan(src), cspan(bad), mspan(g)), shape_error);
}

TEST_CASE_TEMPLATE("adamw_step and sgd_step follow torch.optim's update", B, PREFOPT_CPU_BACKENDS) {
  B be;
  auto p = randn(257, 8), g = randn(257, 9), m = randn(257, 10, 0.1f), v = randn(257, 11, 0.1f);
  for (auto& x : v) x = std::abs(x);
  const adamw_args a{.lr = 0.01f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f, .weight_decay = 0.1f,
                     .bias_correction1 = 1.0f - 0.8f * 0.8f, .bias_correction2 = 1.0f - 0.99f * 0.99f};
  std::vector<double> wp(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    double pp = p[i], mm = m[i], vv = v[i];
    pp -= 0.01 * 0.1 * pp;
    mm = 0.8 * mm + 0.2 * g[i];
    vv = 0.99 * vv + 0.01 * double(g[i]) * g[i];
    wp[i] = pp - 0.01 * (mm / a.bias_correction1) / (std::sqrt(vv / a.bias_correction2) + 1e-6);
  }
  be.adamw_step(mspan(p), cspan(g), mspan(m), mspan(v), a);
  CHECK(max_rel(p, wp) < 1e-5);

  auto q = randn(100, 12), buf = randn(100, 13);
  std::vector<double> wq(q.size());
  const sgd_args s{.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .weight_decay = 0.01f, .nesterov = false,
                   .first_step = false};
  for (std::size_t i = 0; i < q.size(); ++i) {
    const double gi = double(g[i]) + 0.01 * q[i];
    const double bi = 0.9 * buf[i] + 0.9 * gi;
    wq[i] = q[i] - 0.1 * bi;
  }
  be.sgd_step(mspan(q), std::span<const float>(g.data(), q.size()), mspan(buf), s);
  CHECK(max_rel(q, wq) < 1e-5);
}

TEST_CASE_TEMPLATE("map_pairs equals evaluate() for elementwise losses", B, PREFOPT_CPU_BACKENDS) {
  B be;
  pair_batch<double> b{.policy_chosen = {-3, -5, -2.5}, .policy_rejected = {-4, -4.5, -7},
                       .reference_chosen = {-3.2, -5.5, -2}, .reference_rejected = {-3.9, -4, -6},
                       .chosen_tokens = {3, 5, 2}, .rejected_tokens = {4, 4, 7}};
  auto check = [&](const auto& loss) {
    const loss_result<double> r = evaluate(loss, b);
    std::vector<double> per(3), dc(3), dr(3);
    pair_view<double> v;
    v.n = 3;
    v.pc = b.policy_chosen.data();
    v.pr = b.policy_rejected.data();
    v.rc = b.reference_chosen.data();
    v.rr = b.reference_rejected.data();
    v.nc = b.chosen_tokens.data();
    v.nr = b.rejected_tokens.data();
    v.batch = context_of(b);
    v.per_pair = per.data();
    v.d_chosen = dc.data();
    v.d_rejected = dr.data();
    be.map_pairs(loss, v);
    for (int i = 0; i < 3; ++i) {
      CHECK(per[i] == doctest::Approx(r.per_pair[i]));
      CHECK(dc[i] / 3.0 == doctest::Approx(r.d_policy_chosen[i]));
      CHECK(dr[i] / 3.0 == doctest::Approx(r.d_policy_rejected[i]));
    }
  };
  check(losses::sigmoid{.beta = 0.3});
  check(losses::ipo{});
  check(losses::orpo{});
  check(losses::with_divergence(losses::robust{.label_smoothing = 0.1}, losses::divergence::js));
  check(0.5 * losses::sigmoid{} + 1.0 * losses::sft{});
}
