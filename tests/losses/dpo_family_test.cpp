// The DPO family (sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, sppo_hard, apo_zero,
// apo_down, discopop, sigmoid_norm, probabilistic) against a second, independent transcription of
// each paper's formula in long double, in double and float; TRL's names; which losses are written
// on scores (the ones TRL lets f_divergence_type change); the rewards/* metrics by hand.
//
// Expected values: the formulas below, written from the papers cited in each header (not from the
// headers' rearranged, overflow-safe forms), evaluated in long double.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "losses/loss_cases.hpp"

namespace L = prefopt::losses;
namespace pt = prefopt::test;
using ld = long double;

namespace {

ld sig(ld x) { return 1.0L / (1.0L + std::exp(-x)); }
ld logsig(ld x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

struct point {
  double pc, rc, pr, rr;
  int nc, nr;
  double p;  // soft label for probabilistic
};

// Ordinary points: margins of both signs, small and large, short and long completions.
constexpr point points[] = {
    {-12.0, -14.5, -30.0, -27.0, 8, 20, 0.9},   {-40.0, -35.0, -22.0, -25.0, 31, 12, 0.3},
    {-5.5, -5.5, -6.25, -6.25, 3, 4, 0.5},      {-80.0, -140.0, -95.0, -60.0, 40, 38, 1.0},
    {-2.0, -2.5, -150.0, -90.0, 1, 50, 0.0},    {-18.0, -17.0, -18.5, -19.0, 9, 9, 0.75},
};

struct formulas {
  double beta, eps, tau;
  ld rw(const point& x) const { return beta * ((ld)x.pc - x.rc); }
  ld rl(const point& x) const { return beta * ((ld)x.pr - x.rr); }
  ld z(const point& x) const { return rw(x) - rl(x); }  // β·h
  ld half() const { return 1.0L / (2.0L * beta); }
};

template <class Loss, class F> void against(const Loss& loss, F&& expected, double rel_double = 1e-13) {
  const std::string name(Loss::name);
  for (const point& x : points) {
    prefopt::pair_batch<double> b;
    b.policy_chosen = {x.pc};
    b.reference_chosen = {x.rc};
    b.policy_rejected = {x.pr};
    b.reference_rejected = {x.rr};
    b.chosen_tokens = {x.nc};
    b.rejected_tokens = {x.nr};
    b.preference_prob = {x.p};
    const double want = static_cast<double>(expected(x));
    const auto r = prefopt::evaluate(loss, b);
    const auto f = prefopt::evaluate(loss, pt::convert<float>(b, [](double v) { return float(v); }));
    INFO(name, " at pc=", x.pc, " rc=", x.rc, " pr=", x.pr, " rr=", x.rr, ": prefopt ", r.loss, " formula ", want);
    CHECK(pt::close(r.loss, want, rel_double, 1e-15));
    CHECK(pt::close(double(f.loss), want, 2e-5, 1e-6));
  }
}

} // namespace

TEST_CASE("each loss equals its paper's formula") {
  const formulas F{0.1, 0.0, 0.0};
  against(L::sigmoid{.beta = 0.1}, [&](const point& x) { return -logsig(F.z(x)); });
  against(L::hinge{.beta = 0.1}, [&](const point& x) { return std::max(0.0L, 1.0L - F.z(x)); });
  against(L::ipo{.beta = 0.1, .normalize_by_length = false}, [&](const point& x) {
    const ld h = F.z(x) / 0.1L - F.half();
    return h * h;
  });
  against(L::ipo{.beta = 0.1}, [&](const point& x) {
    const ld h = F.rw(x) / 0.1L / x.nc - F.rl(x) / 0.1L / x.nr - F.half();
    return h * h;
  });
  for (double eps : {1e-3, 0.2}) {
    // EXO: KL(Bernoulli(σ(βh)) ‖ Bernoulli(1 − ε)).
    against(L::exo_pair{.beta = 0.1, .label_smoothing = eps}, [&](const point& x) {
      const ld q = sig(F.z(x));
      return q * std::log(q / (1.0L - eps)) + (1.0L - q) * std::log((1.0L - q) / eps);
    });
  }
  against(L::nca_pair{.beta = 0.1}, [&](const point& x) {
    return -logsig(F.rw(x)) - 0.5L * logsig(-F.rw(x)) - 0.5L * logsig(-F.rl(x));
  });
  for (double eps : {0.0, 0.1, 0.4}) {
    // rDPO, eq. 8: [(1−ε)·ℓ(h) − ε·ℓ(−h)] / (1 − 2ε), ℓ(h) = −log σ(βh).
    against(L::robust{.beta = 0.1, .label_smoothing = eps}, [&](const point& x) {
      return ((1.0L - eps) * -logsig(F.z(x)) - eps * -logsig(-F.z(x))) / (1.0L - 2.0L * eps);
    });
  }
  against(L::bco_pair{.beta = 0.1}, [&](const point& x) { return -logsig(F.rw(x)) - logsig(-F.rl(x)); });
  against(L::sppo_hard{.beta = 0.1}, [&](const point& x) {
    const ld a = F.rw(x) / 0.1L - F.half(), c = F.rl(x) / 0.1L + F.half();
    return a * a + c * c;
  });
  against(L::apo_zero{.beta = 0.1}, [&](const point& x) { return 1.0L - sig(F.rw(x)) + sig(F.rl(x)); });
  against(L::apo_down{.beta = 0.1}, [&](const point& x) { return sig(F.rw(x)) + 1.0L - sig(F.rw(x) - F.rl(x)); });
  for (double tau : {0.05, 0.5}) {
    // DiscoPOP, eq. 5, in its literal form (finite at these margins).
    against(L::discopop{.beta = 0.1, .tau = tau}, [&](const point& x) {
      const ld m = sig(F.z(x) / tau);
      return -logsig(F.z(x)) * (1.0L - m) + std::exp(-F.z(x)) * m;
    });
  }
  against(L::sigmoid_norm{.beta = 0.1}, [&](const point& x) {
    return -logsig(0.1L * (((ld)x.pc - x.rc) / x.nc - ((ld)x.pr - x.rr) / x.nr));
  });
  against(L::probabilistic{.beta = 0.1, .source = L::label_source::column}, [&](const point& x) {
    return -(x.p * logsig(F.z(x)) + (1.0L - x.p) * logsig(-F.z(x)));
  });
  against(L::probabilistic{.beta = 0.1, .label_smoothing = 0.25}, [&](const point& x) {
    return -(0.75L * logsig(F.z(x)) + 0.25L * logsig(-F.z(x)));
  });
}

TEST_CASE("β scales every reward-based loss; the same formulas at β = 2") {
  const formulas F{2.0, 0.0, 0.0};
  against(L::sigmoid{.beta = 2.0}, [&](const point& x) { return -logsig(F.z(x)); });
  against(L::bco_pair{.beta = 2.0}, [&](const point& x) { return -logsig(F.rw(x)) - logsig(-F.rl(x)); });
  against(L::apo_down{.beta = 2.0}, [&](const point& x) { return sig(F.rw(x)) + 1.0L - sig(F.rw(x) - F.rl(x)); });
}

TEST_CASE("names are TRL's loss_type strings") {
  CHECK(L::sigmoid::name == "sigmoid");
  CHECK(L::hinge::name == "hinge");
  CHECK(L::ipo::name == "ipo");
  CHECK(L::exo_pair::name == "exo_pair");
  CHECK(L::nca_pair::name == "nca_pair");
  CHECK(L::robust::name == "robust");
  CHECK(L::bco_pair::name == "bco_pair");
  CHECK(L::sppo_hard::name == "sppo_hard");
  CHECK(L::aot::name == "aot");
  CHECK(L::aot_unpaired::name == "aot_unpaired");
  CHECK(L::apo_zero::name == "apo_zero");
  CHECK(L::apo_down::name == "apo_down");
  CHECK(L::discopop::name == "discopop");
  CHECK(L::sft::name == "sft");
  CHECK(L::sigmoid_norm::name == "sigmoid_norm");
  CHECK(L::kto::name == "kto");
  CHECK(L::apo_zero_unpaired::name == "apo_zero_unpaired");
}

TEST_CASE("the losses written on scores are the ones TRL lets f_divergence_type change") {
  // TRL 1.16: {sigmoid, sigmoid_norm, hinge, ipo, exo_pair, robust, discopop, sft}. sft ignores
  // the scores (f-divergence has no effect on it in TRL); prefopt's sft is a pair loss, so
  // f_divergence<sft> does not compile rather than silently doing nothing.
  static_assert(L::ScoreLoss<L::sigmoid> && L::ScoreLoss<L::sigmoid_norm> && L::ScoreLoss<L::hinge> &&
                L::ScoreLoss<L::ipo> && L::ScoreLoss<L::exo_pair> && L::ScoreLoss<L::robust> &&
                L::ScoreLoss<L::discopop> && L::ScoreLoss<L::probabilistic>);
  static_assert(!L::ScoreLoss<L::nca_pair> && !L::ScoreLoss<L::bco_pair> && !L::ScoreLoss<L::sppo_hard> &&
                !L::ScoreLoss<L::apo_zero> && !L::ScoreLoss<L::apo_down> && !L::ScoreLoss<L::aot> &&
                !L::ScoreLoss<L::aot_unpaired> && !L::ScoreLoss<L::sft>);
  static_assert(L::BatchLoss<L::aot> && L::BatchLoss<L::aot_unpaired> && !L::ElementwiseLoss<L::aot>);
  CHECK(true);
}

TEST_CASE("required columns") {
  namespace c = prefopt::columns;
  CHECK(L::sigmoid{}.required_columns() == c::reference);
  CHECK(L::ipo{}.required_columns() == (c::reference | c::token_counts));
  CHECK(L::ipo{.normalize_by_length = false}.required_columns() == c::reference);
  CHECK(L::sigmoid_norm{}.required_columns() == (c::reference | c::token_counts));
  CHECK(L::probabilistic{}.required_columns() == c::reference);
  CHECK(L::probabilistic{.source = L::label_source::column}.required_columns() == (c::reference | c::preference_prob));
  CHECK(L::probabilistic{.source = L::label_source::scores}.required_columns() == (c::reference | c::scores));
}

TEST_CASE("rewards/* and logps/* metrics, by hand") {
  prefopt::pair_batch<double> b;
  b.policy_chosen = {-10.0, -20.0, -7.0};
  b.reference_chosen = {-12.0, -19.0, -7.5};
  b.policy_rejected = {-30.0, -18.0, -9.0};
  b.reference_rejected = {-28.0, -19.0, -9.5};
  const auto r = prefopt::evaluate(L::sigmoid{.beta = 0.5}, b);
  // rewards: chosen 0.5·(2, −1, 0.5), rejected 0.5·(−2, 1, 0.5)
  CHECK(r.metrics.at("rewards/chosen") == doctest::Approx(0.5 * 1.5 / 3));
  CHECK(r.metrics.at("rewards/rejected") == doctest::Approx(0.5 * -0.5 / 3));
  CHECK(r.metrics.at("rewards/margins") == doctest::Approx(0.5 * 2.0 / 3));
  CHECK(r.metrics.at("rewards/accuracies") == doctest::Approx(1.0 / 3));  // only pair 0 (pair 2 is a tie)
  CHECK(r.metrics.at("logps/chosen") == doctest::Approx(-37.0 / 3));
  CHECK(r.metrics.at("logps/rejected") == doctest::Approx(-57.0 / 3));
}
