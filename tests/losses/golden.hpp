// tests/losses/golden.hpp — checking prefopt's losses against TRL 1.16's golden values.
//
// Shared by golden_test.cpp (float64) and golden_float_test.cpp (float32), one scalar type each
// so that neither translation unit instantiates every loss twice.
//
// Expected values: tests/data/losses/trl_float{64,32}.json, written by
// tools/reference/losses_make_reference.py, which runs TRL's DPOTrainer._compute_loss,
// CPOTrainer / ORPOTrainer.get_batch_loss_metrics and KTOTrainer._compute_loss on stand-in models
// (see the script's docstring; `probabilistic` comes from its formula in torch autograd, since
// TRL 1.16's sigmoid has no label smoothing any more). Each case gives TRL's configuration;
// check_file() builds the prefopt loss TRL's names map to and compares the batch loss, per-pair
// losses, d loss / d policy log-prob and the metrics TRL logs (rewards/*, logps/*, kl, nll_loss, ...).
//
// Tolerance: |prefopt − TRL| ≤ rel·|TRL| + floor·scale, where scale is the largest |value| of the
// vector compared (1 for a scalar loss), and for gradients at least their natural size β/B (KTO:
// β·w/N): the losses are sums and differences of terms of that size, so a correctly rounded result
// near zero carries an error of about ε·scale. float64: rel 1e-6, floor 1e-12 (four orders above
// ε = 1.1e-16). float32: rel 2e-5 (about 170 ulp: the two sides sum and average in different
// orders), floor 1e-6 (TRL's float32 1 − σ(u) cancels for saturated sigmoids, e.g. KTO's gradient
// at u = 8.55 is 4e-4 off in relative terms; prefopt's value there equals the exact one).
// Where TRL's own value is inf or NaN (discopop's e^{−z}·m once e^{−z} overflows, forward_kl's
// e^{−r} overflow, IPO on overflowing alpha scores), prefopt's value must be finite and is not
// compared. Deliberate differences, checked for finiteness only: prefopt caps forward_kl's
// exponent at 80 (as TRL does for alpha's) and holds exponential f-divergence scores within ±2^60
// in float (f_divergence.hpp); sft has no β, so its rewards/* are compared after scaling by TRL's β.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "losses/loss_cases.hpp"
#include "support/data.hpp"

namespace L = prefopt::losses;
namespace pt = prefopt::test;
using json = nlohmann::json;

namespace {  // each golden test includes this header once

double number(const json& v) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    FAIL("unexpected string in golden data: ", s);
  }
  return v.get<double>();
}
std::vector<double> numbers(const json& v) {
  std::vector<double> out;
  for (const auto& x : v) out.push_back(number(x));
  return out;
}

json load(const std::string& file) {
  std::ifstream in(pt::data_path("losses/" + file));
  REQUIRE_MESSAGE(in.good(), "missing golden file ", file);
  return json::parse(in);
}

struct tally {
  double rel, floor;           // tolerance: rel·|b| + floor·scale
  double max_rel_err = 0.0;       // largest |a − b| / |b| seen where |b| > floor·scale
  double max_rel_err_bulk = 0.0;  // the same over entries at least 1% of their vector's scale
  std::size_t compared = 0, trl_nonfinite = 0, capped = 0, cases = 0;

  void compare(const std::string& what, double got, double want, double scale) {
    if (!std::isfinite(want)) {
      INFO(what, ": TRL gives ", want, ", prefopt ", got);
      CHECK(std::isfinite(got));
      ++trl_nonfinite;
      return;
    }
    INFO(what, ": prefopt ", got, ", TRL ", want);
    CHECK(std::isfinite(got));
    CHECK(pt::close(got, want, rel, floor * scale));
    const double err = std::fabs(got - want) / std::fabs(want);
    if (std::fabs(want) > floor * scale) max_rel_err = std::max(max_rel_err, err);
    if (std::fabs(want) >= 1e-2 * scale) max_rel_err_bulk = std::max(max_rel_err_bulk, err);
    ++compared;
  }
  // `natural` is the size the entries would have without saturation (a gradient's prefactor
  // β/B, ...): TRL's float32 values carry errors of ε·natural even where the entry is tiny
  // (1 − σ(u) cancels), so the floor is taken relative to it as well as to the largest entry.
  void compare_all(const std::string& what, const std::vector<double>& got, const std::vector<double>& want,
                   const std::vector<bool>& skip = {}, double natural = 0.0) {
    REQUIRE(got.size() == want.size());
    double scale = natural;
    for (double w : want)
      if (std::isfinite(w)) scale = std::max(scale, std::fabs(w));
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (!skip.empty() && skip[i]) {
        CHECK(std::isfinite(got[i]));
        ++capped;
        continue;
      }
      compare(what + "[" + std::to_string(i) + "]", got[i], want[i], scale);
    }
  }
};

template <class T> std::vector<double> as_double(const std::vector<T>& v) { return {v.begin(), v.end()}; }

template <class T> std::vector<T> column(const json& v) {
  std::vector<T> out;
  for (double x : numbers(v)) out.push_back(static_cast<T>(x));
  return out;
}

template <class T> prefopt::pair_batch<T> paired(const json& d) {
  prefopt::pair_batch<T> b;
  b.policy_chosen = column<T>(d["pc"]);
  b.policy_rejected = column<T>(d["pr"]);
  b.chosen_tokens = d["nc"].get<std::vector<int>>();
  b.rejected_tokens = d["nr"].get<std::vector<int>>();
  if (d.contains("rc")) {
    b.reference_chosen = column<T>(d["rc"]);
    b.reference_rejected = column<T>(d["rr"]);
    b.preference_prob = column<T>(d["p"]);
    b.score_chosen = column<T>(d["sc"]);
    b.score_rejected = column<T>(d["sr"]);
    // WPO: the model reports each sequence's aligned mean log-prob; the pair's weight is
    // exp(ā_w)·exp(ā_l) (detached), which is what the trainer puts in the weight column.
    const auto ac = column<T>(d["ac"]), ar = column<T>(d["ar"]);
    for (std::size_t i = 0; i < ac.size(); ++i) b.weight.push_back(L::wpo_weight(ac[i], ar[i]));
  }
  return b;
}

L::divergence divergence_of(const std::string& s) {
  if (s == "forward_kl") return L::divergence::forward_kl;
  if (s == "js_divergence") return L::divergence::js;
  if (s == "alpha_divergence") return L::divergence::alpha;
  REQUIRE(s == "reverse_kl");
  return L::divergence::reverse_kl;
}

// Calls f with the prefopt loss that TRL's DPOConfig `cfg` names.
template <class F> void with_dpo_loss(const json& cfg, F&& f) {
  const double beta = cfg["beta"], ls = cfg["label_smoothing"];
  const auto types = cfg["loss_type"].get<std::vector<std::string>>();
  const auto weights = cfg["loss_weights"].get<std::vector<double>>();
  const std::string fdiv = cfg["f_divergence_type"];
  const bool weighting = cfg["use_weighting"];
  if (types.size() > 1) {
    REQUIRE(types == std::vector<std::string>{"sigmoid", "bco_pair", "sft"});
    REQUIRE((fdiv == "reverse_kl" && !weighting));
    f(weights[0] * L::sigmoid{.beta = beta} + weights[1] * L::bco_pair{.beta = beta} + weights[2] * L::sft{});
    return;
  }
  auto finish = [&](auto loss) {
    if (weighting) {
      if constexpr (L::ElementwiseLoss<decltype(loss)>) f(L::wpo(loss));
      else FAIL("WPO weighting on a batch-coupled loss");
    } else {
      f(loss);
    }
  };
  auto wrap = [&](auto base) {
    if (fdiv == "reverse_kl") return finish(base);
    if constexpr (L::ScoreLoss<decltype(base)>)
      finish(L::with_divergence(base, divergence_of(fdiv), cfg["f_alpha_divergence_coef"].get<double>()));
    else FAIL("f-divergence on a loss that is not written on scores");
  };
  const std::string& t = types[0];
  if (t == "sigmoid") wrap(L::sigmoid{.beta = beta});
  else if (t == "hinge") wrap(L::hinge{.beta = beta});
  else if (t == "ipo") wrap(L::ipo{.beta = beta});
  else if (t == "exo_pair") wrap(L::exo_pair{.beta = beta, .label_smoothing = ls});
  else if (t == "nca_pair") wrap(L::nca_pair{.beta = beta});
  else if (t == "robust") wrap(L::robust{.beta = beta, .label_smoothing = ls});
  else if (t == "bco_pair") wrap(L::bco_pair{.beta = beta});
  else if (t == "sppo_hard") wrap(L::sppo_hard{.beta = beta});
  else if (t == "aot") wrap(L::aot{.beta = beta, .label_smoothing = ls});
  else if (t == "aot_unpaired") wrap(L::aot_unpaired{.beta = beta, .label_smoothing = ls});
  else if (t == "apo_zero") wrap(L::apo_zero{.beta = beta});
  else if (t == "apo_down") wrap(L::apo_down{.beta = beta});
  else if (t == "discopop") wrap(L::discopop{.beta = beta, .tau = cfg["discopop_tau"].get<double>()});
  else if (t == "sft") wrap(L::sft{});
  else if (t == "sigmoid_norm") wrap(L::sigmoid_norm{.beta = beta});
  else FAIL("no prefopt loss for TRL loss_type ", t);
}

L::probabilistic probabilistic_of(const json& cfg) {
  const std::string src = cfg["source"];
  return {.beta = cfg["beta"],
          .label_smoothing = cfg["label_smoothing"],
          .source = src == "constant" ? L::label_source::constant
                    : src == "column" ? L::label_source::column
                                      : L::label_source::scores,
          .score_temperature = cfg["score_temperature"]};
}

template <class T> void compare_metrics(tally& t, const json& c, const std::map<std::string, double>& got) {
  if (!c.contains("metrics")) return;
  const auto& m = c["metrics"];
  double scale = 1.0;
  for (const auto& kv : m.items()) scale = std::max(scale, std::fabs(number(kv.value())));
  for (const auto& kv : m.items()) {  // (no structured binding: the messages capture the names)
    const std::string k = kv.key();
    const json& v = kv.value();
    REQUIRE_MESSAGE(got.count(k), "prefopt does not report metric ", k);
    t.compare(k, got.at(k), number(v), scale);
  }
}

// Whether prefopt's f-divergence score for log-ratio r departs from TRL's on purpose (see
// f_divergence.hpp): forward_kl's exponent cap at 80, and the score limit (2^60 in float, 2^500
// in double) that keeps squared scores finite.
template <class T> bool held_score(const std::string& kind, double coef, double r) {
  const double limit = std::is_same_v<T, float> ? 0x1p60 : 0x1p500;
  if (kind == "forward_kl") return -r > 80.0 || std::fabs(1.0 - std::exp(-r)) > limit;
  if (kind == "alpha_divergence" && std::fabs(coef - 1.0) >= 1e-6) {
    const double t = std::min((coef - 1.0) * r, 80.0);
    return std::fabs((std::exp(t) - 1.0) / (coef - 1.0)) > limit;
  }
  return false;
}

template <class T> std::vector<bool> capped_pairs(const json& cfg, const prefopt::pair_batch<T>& b) {
  std::vector<bool> skip(b.size(), false);
  if (!cfg.contains("f_divergence_type")) return skip;
  const std::string kind = cfg["f_divergence_type"];
  const double coef = cfg["f_alpha_divergence_coef"];
  for (std::size_t i = 0; i < b.size(); ++i)
    skip[i] = held_score<T>(kind, coef, double(b.policy_chosen[i]) - double(b.reference_chosen[i])) ||
              held_score<T>(kind, coef, double(b.policy_rejected[i]) - double(b.reference_rejected[i]));
  return skip;
}

template <class T> void check_paired(tally& t, const json& c, const json& batches) {
  const auto b = paired<T>(batches[c["batch"].get<std::string>()]);
  const std::string trainer = c["trainer"];
  const json& cfg = c["config"];
  auto run = [&](const auto& loss) {
    const auto r = prefopt::evaluate(loss, b);
    const auto skip = capped_pairs(cfg, b);
    const bool any_capped = std::find(skip.begin(), skip.end(), true) != skip.end();
    if (any_capped) {
      CHECK(std::isfinite(double(r.loss)));
      ++t.capped;
    } else {
      t.compare("loss", double(r.loss), number(c["loss"]), 1.0);
    }
    if (c.contains("per_pair")) t.compare_all("per_pair", as_double(r.per_pair), numbers(c["per_pair"]), skip);
    const double natural = cfg.value("beta", 1.0) / double(b.size());
    t.compare_all("d_chosen", as_double(r.d_policy_chosen), numbers(c["d_chosen"]), skip, natural);
    t.compare_all("d_rejected", as_double(r.d_policy_rejected), numbers(c["d_rejected"]), skip, natural);
    if (trainer == "cpo" || trainer == "orpo") {
      // TRL's per-pair preference term and its NLL; prefopt's pair loss is the preference term
      // plus the pair's share of α·NLL, −α·log π(y_w)·P/N.
      const double alpha = trainer == "cpo" ? cfg["cpo_alpha"].get<double>() : 1.0;
      double tokens = 0.0, nll = 0.0;
      for (int n : b.chosen_tokens) tokens += n;
      for (const T& v : b.policy_chosen) nll -= double(v);
      nll /= tokens;
      if (alpha != 0.0) t.compare("nll", nll, number(c["nll"]), 1.0);  // TRL skips the NLL when cpo_alpha = 0
      const auto pref = numbers(c["per_pair_preference"]);
      std::vector<double> got;
      const auto n = double(b.size());
      for (std::size_t i = 0; i < b.size(); ++i) got.push_back(double(r.per_pair[i]) + alpha * double(b.policy_chosen[i]) * n / tokens);
      t.compare_all("per_pair_preference", got, pref);
    }
    // simpo with cpo_alpha > 0 is the mixture simpo + α·sft, whose rewards/* follow its first term
    // (reported by simpo alone; see reference_free_test.cpp), so only the loss is compared here.
    if (trainer == "cpo" && cfg["loss_type"] == "simpo" && cfg["cpo_alpha"].get<double>() != 0.0) return;
    auto metrics = r.metrics;
    if (trainer == "dpo" && cfg["loss_type"] == json{"sft"}) {
      // Deliberate difference: sft has no β, so prefopt scales its rewards/* by 1; TRL by its
      // DPOConfig β. Compare β·prefopt with TRL.
      for (const char* k : {"rewards/chosen", "rewards/rejected", "rewards/margins"}) metrics[k] *= cfg["beta"].get<double>();
    }
    compare_metrics<T>(t, c, metrics);
  };
  if (trainer == "dpo") with_dpo_loss(cfg, run);
  else if (trainer == "probabilistic") run(probabilistic_of(cfg));
  else if (trainer == "cpo") {
    const double beta = cfg["beta"], ls = cfg["label_smoothing"], alpha = cfg["cpo_alpha"];
    if (cfg["loss_type"] == "sigmoid") run(L::cpo{.beta = beta, .alpha = alpha, .label_smoothing = ls});
    else if (alpha == 0.0) run(L::simpo{.beta = beta, .gamma = cfg["simpo_gamma"], .label_smoothing = ls});
    else run(1.0 * L::simpo{.beta = beta, .gamma = cfg["simpo_gamma"], .label_smoothing = ls} + alpha * L::sft{});
  } else if (trainer == "orpo") run(L::orpo{.beta = cfg["beta"]});
  else FAIL("unknown trainer ", trainer);
}

template <class T> void check_kto(tally& t, const json& c, const json& batches) {
  const json& d = batches[c["batch"].get<std::string>()];
  prefopt::unpaired_batch<T> u;
  u.policy = column<T>(d["policy"]);
  u.reference = column<T>(d["reference"]);
  for (int v : d["desirable"].get<std::vector<int>>()) u.desirable.push_back(static_cast<char>(v));
  u.policy_kl = column<T>(d["policy_kl"]);
  u.reference_kl = column<T>(d["reference_kl"]);
  const json& cfg = c["config"];
  auto run = [&](const auto& loss) {
    const auto r = prefopt::evaluate(loss, u);
    t.compare("loss", double(r.loss), number(c["loss"]), 1.0);
    t.compare_all("per_example", as_double(r.per_example), numbers(c["per_pair"]));
    const double w = std::max(cfg["desirable_weight"].get<double>(), cfg["undesirable_weight"].get<double>());
    t.compare_all("d_policy", as_double(r.d_policy), numbers(c["d_policy"]), {},
                  cfg["beta"].get<double>() * w / double(u.size()));
    compare_metrics<T>(t, c, r.metrics);
  };
  if (cfg["loss_type"] == "kto")
    run(L::kto{.beta = cfg["beta"], .desirable_weight = cfg["desirable_weight"],
               .undesirable_weight = cfg["undesirable_weight"]});
  else run(L::apo_zero_unpaired{.beta = cfg["beta"]});
}

template <class T> tally check_file(const std::string& file, double rel, double floor) {
  const json doc = load(file);
  CHECK(doc["trl_version"] == "1.16.0");
  tally t{rel, floor};
  for (const auto& c : doc["cases"]) {
    INFO(file, ": case ", c["name"].get<std::string>(), " on batch ", c["batch"].get<std::string>());
    if (c["trainer"] == "kto") check_kto<T>(t, c, doc["batches"]);
    else check_paired<T>(t, c, doc["batches"]);
    ++t.cases;
  }
  MESSAGE(file, ": ", t.cases, " cases, ", t.compared, " values compared; max relative error ", t.max_rel_err,
          " (", t.max_rel_err_bulk, " on entries >= 1% of their scale); TRL non-finite, prefopt finite: ",
          t.trl_nonfinite, "; held f-divergence scores (finite only): ", t.capped);
  return t;
}

} // namespace
