// losses::any_loss (a loss chosen at run time by TRL's names) equals the compile-time types it
// stands for: every name, mixtures, f-divergences, WPO and constraints with dual ascent.
#include <doctest/doctest.h>

#include "prefopt/losses/any_loss.hpp"

using namespace prefopt;
using namespace prefopt::losses;

namespace {
pair_batch<double> batch() {
  return {.policy_chosen = {-3, -5, -2.5, -7}, .policy_rejected = {-4, -4.5, -7, -6},
          .reference_chosen = {-3.2, -5.5, -2, -7.5}, .reference_rejected = {-3.9, -4, -6, -5},
          .chosen_tokens = {3, 5, 2, 4}, .rejected_tokens = {4, 4, 7, 3}, .preference_prob = {1, 0.8, 0.6, 0.9},
          .score_chosen = {}, .score_rejected = {}, .cost = {1, 0, 2, 0}, .weight = {0.5, 1, 2, 1}};
}
loss_settings settings(std::vector<std::string> type) {
  loss_settings s = default_for(std::type_identity<loss_settings>{});
  s.type = std::move(type);
  s.beta = 0.3;
  return s;
}
template <class L> void same(const any_loss& a, const L& l) {
  const auto b = batch();
  const auto x = evaluate(a, b), y = evaluate(l, b);
  CHECK(x.loss == doctest::Approx(y.loss).epsilon(1e-12));
  for (std::size_t i = 0; i < b.size(); ++i) {
    CHECK(x.d_policy_chosen[i] == doctest::Approx(y.d_policy_chosen[i]).epsilon(1e-12));
    CHECK(x.d_policy_rejected[i] == doctest::Approx(y.d_policy_rejected[i]).epsilon(1e-12));
  }
}
} // namespace

TEST_CASE("every TRL name builds the loss it names") {
  same(any_loss(settings({"sigmoid"})), sigmoid{0.3});
  same(any_loss(settings({"hinge"})), hinge{0.3});
  same(any_loss(settings({"ipo"})), ipo{0.3});
  same(any_loss(settings({"exo_pair"})), exo_pair{0.3, 1e-3});
  same(any_loss(settings({"nca_pair"})), nca_pair{0.3});
  same(any_loss(settings({"bco_pair"})), bco_pair{0.3});
  same(any_loss(settings({"sppo_hard"})), sppo_hard{0.3});
  same(any_loss(settings({"aot"})), aot{0.3});
  same(any_loss(settings({"aot_unpaired"})), aot_unpaired{0.3});
  same(any_loss(settings({"apo_zero"})), apo_zero{0.3});
  same(any_loss(settings({"apo_down"})), apo_down{0.3});
  same(any_loss(settings({"discopop"})), discopop{0.3});
  same(any_loss(settings({"sigmoid_norm"})), sigmoid_norm{0.3});
  same(any_loss(settings({"sft"})), sft{});
  same(any_loss(settings({"simpo"})), simpo{0.3});
  same(any_loss(settings({"cpo"})), cpo{0.3});
  same(any_loss(settings({"orpo"})), orpo{0.3});
  auto r = settings({"robust"});
  r.label_smoothing = 0.1;
  same(any_loss(r), robust{0.3, 0.1});
  auto p = settings({"probabilistic"});
  p.label_source = "column";
  same(any_loss(p), probabilistic{.beta = 0.3, .source = label_source::column});
}

TEST_CASE("mixtures, f-divergences and WPO as TRL's loss_type lists and flags") {
  auto m = settings({"sigmoid", "bco_pair", "sft"});
  m.weights = {0.8, 0.2, 1.0};
  same(any_loss(m), 0.8 * sigmoid{0.3} + 0.2 * bco_pair{0.3} + 1.0 * sft{});
  auto f = settings({"ipo"});
  f.f_divergence_type = "alpha_divergence";
  f.f_alpha_divergence_coef = 0.3;
  same(any_loss(f), with_divergence(ipo{0.3}, divergence::alpha, 0.3));
  auto w = settings({"sigmoid"});
  w.use_weighting = true;
  same(any_loss(w), wpo(sigmoid{0.3}));
}

TEST_CASE("constraints at run time equal constrained<> and follow dual ascent") {
  auto c = settings({"sigmoid"});
  c.constraints = {{"chosen_floor", 5.0, 0.0, 0.0}, {"pair_cost", 0.5, -0.1, 0.2}};
  any_loss a(c);
  const auto typed = constrain(sigmoid{0.3}, chosen_floor{.lambda = 5.0}, pair_cost{.lambda = 0.5, .bound = -0.1, .rate = 0.2});
  same(a, typed);
  auto typed2 = typed;
  a.update(batch());
  typed2.update(batch());
  CHECK(a.state()[1] == doctest::Approx(boost::hana::at_c<1>(typed2.constraints).lambda));
  same(a, typed2);
}

TEST_CASE("bad settings name the field") {
  CHECK_THROWS_WITH_AS(any_loss(settings({"dpo"})), doctest::Contains("unknown loss 'dpo'"), config_error);
  auto f = settings({"nca_pair"});
  f.f_divergence_type = "js_divergence";
  CHECK_THROWS_WITH_AS(any_loss{f}, doctest::Contains("f_divergence_type"), config_error);
  auto w = settings({"aot"});
  w.use_weighting = true;
  CHECK_THROWS_WITH_AS(any_loss{w}, doctest::Contains("use_weighting"), config_error);
  auto c = settings({"bco_pair"});
  c.constraints = {{"chosen_floor", 1.0, 0.0, 0.0}};
  CHECK_THROWS_WITH_AS(any_loss{c}, doctest::Contains("margin constraint"), config_error);
  auto m = settings({"sigmoid", "sft"});
  m.weights = {1.0};
  CHECK_THROWS_WITH_AS(any_loss{m}, doctest::Contains("weights"), config_error);
  auto r = settings({"robust"});
  r.label_smoothing = 0.5;
  CHECK_THROWS_WITH_AS(any_loss(r).validate(), doctest::Contains("label_smoothing"), config_error);
}
