// Hyperparameter and batch validation: impossible settings and malformed batches are exceptions
// that name the loss and field, or the batch column and pair (never NaN, never an abort).
//
// Expected values: the rules in each loss header (β > 0, robust ε ∈ [0, 0.5), exo ε ∈ (0, 1), ...)
// and in evaluate.hpp's validate_batch.
#include <doctest/doctest.h>

#include <limits>
#include <string>

#include "losses/loss_cases.hpp"

namespace L = prefopt::losses;
namespace pt = prefopt::test;
using prefopt::evaluate;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// evaluate() must throw E, and its where() must name every string in `names`.
template <class E, class F> void throws_naming(F&& f, std::initializer_list<std::string> names) {
  bool thrown = false;
  try {
    f();
  } catch (const E& e) {
    thrown = true;
    for (const auto& n : names) {
      INFO("message: ", e.what(), " should name ", n);
      CHECK(std::string(e.where()).find(n) != std::string::npos);
    }
  } catch (const std::exception& e) {
    FAIL("wrong exception type: ", e.what());
  }
  CHECK_MESSAGE(thrown, "no exception");
}

template <class Loss> void bad_config(const Loss& loss, const std::string& loss_name, const std::string& field) {
  const auto b = pt::random_batch<double>(7, 3);
  INFO(loss_name, ".", field);
  throws_naming<prefopt::config_error>([&] { (void)evaluate(loss, b); },
                                       {"loss '" + loss_name + "'", "field '" + field + "'"});
  throws_naming<prefopt::config_error>([&] { loss.validate(); }, {"loss '" + loss_name + "'"});
}

} // namespace

TEST_CASE_TEMPLATE("β must be a positive number, for every loss that has one", Loss, L::sigmoid, L::hinge, L::ipo,
                   L::exo_pair, L::nca_pair, L::robust, L::bco_pair, L::sppo_hard, L::aot, L::aot_unpaired,
                   L::apo_zero, L::apo_down, L::discopop, L::sigmoid_norm, L::probabilistic, L::cpo, L::simpo, L::orpo) {
  for (double beta : {0.0, -0.1, kNaN, -kInf}) {
    Loss l{};
    l.beta = beta;
    bad_config(l, std::string(Loss::name), "beta");
  }
  Loss ok{};
  ok.beta = 1e-6;
  CHECK_NOTHROW(ok.validate());
}

TEST_CASE("label smoothing ranges: robust and aot [0, 0.5), exo_pair (0, 1), probabilistic [0, 1]") {
  for (double e : {0.5, 0.7, -0.01, kNaN}) {
    bad_config(L::robust{.label_smoothing = e}, "robust", "label_smoothing");
    bad_config(L::aot{.label_smoothing = e}, "aot", "label_smoothing");
    bad_config(L::aot_unpaired{.label_smoothing = e}, "aot_unpaired", "label_smoothing");
    bad_config(L::cpo{.label_smoothing = e}, "cpo", "label_smoothing");
    bad_config(L::simpo{.label_smoothing = e}, "simpo", "label_smoothing");
  }
  for (double e : {0.0, 1.0, -0.1, 1.5, kNaN}) bad_config(L::exo_pair{.label_smoothing = e}, "exo_pair", "label_smoothing");
  for (double e : {-0.1, 1.01, kNaN}) bad_config(L::probabilistic{.label_smoothing = e}, "probabilistic", "label_smoothing");
  CHECK_NOTHROW(L::robust{.label_smoothing = 0.0}.validate());
  CHECK_NOTHROW(L::robust{.label_smoothing = 0.499}.validate());
  CHECK_NOTHROW(L::exo_pair{.label_smoothing = 1e-9}.validate());
  CHECK_NOTHROW(L::probabilistic{.label_smoothing = 1.0}.validate());
}

TEST_CASE("other hyperparameters") {
  for (double t : {0.0, -1.0, kNaN}) {
    bad_config(L::discopop{.tau = t}, "discopop", "tau");
    bad_config(L::probabilistic{.source = L::label_source::scores, .score_temperature = t}, "probabilistic",
               "score_temperature");
  }
  bad_config(L::cpo{.alpha = -0.5}, "cpo", "alpha");
  bad_config(L::with_divergence(L::sigmoid{}, L::divergence::alpha, kNaN), "sigmoid", "alpha");
  bad_config(L::with_divergence(L::ipo{}, L::divergence::alpha, kInf), "ipo", "alpha");
  bad_config(L::with_divergence(L::sigmoid{.beta = -1.0}, L::divergence::js), "sigmoid", "beta");
  bad_config(L::wpo(L::hinge{.beta = 0.0}), "hinge", "beta");
}

TEST_CASE("mixture: a negative or NaN weight names the term's loss; its terms are validated") {
  bad_config(0.8 * L::sigmoid{} + (-0.2) * L::bco_pair{}, "bco_pair", "weight");
  bad_config(kNaN * L::sigmoid{} + 0.2 * L::bco_pair{}, "sigmoid", "weight");
  bad_config(0.8 * L::sigmoid{} + 0.2 * L::robust{.label_smoothing = 0.6}, "robust", "label_smoothing");
  CHECK_NOTHROW((0.0 * L::sigmoid{} + 1.0 * L::sft{}).validate());
}

TEST_CASE("constrained: negative λ or rate, NaN bound name the constraint") {
  bad_config(L::constrain(L::sigmoid{}, L::chosen_floor{.lambda = -1.0}), "chosen_floor", "lambda");
  bad_config(L::constrain(L::sigmoid{}, L::length_difference{.lambda = 0.1, .rate = -0.1}), "length_difference", "rate");
  bad_config(L::constrain(L::sigmoid{}, L::pair_cost{.bound = kNaN}), "pair_cost", "bound");
  bad_config(L::constrain(L::ipo{.beta = 0.0}, L::pair_cost{}), "ipo", "beta");
}

TEST_CASE("kto: β and the class weights") {
  prefopt::unpaired_batch<double> u;
  u.policy = {-3.0, -4.0};
  u.reference = {-3.5, -3.0};
  u.desirable = {1, 0};
  auto bad = [&](const auto& loss, const std::string& name, const std::string& field) {
    throws_naming<prefopt::config_error>([&] { (void)evaluate(loss, u); }, {"loss '" + name + "'", "field '" + field + "'"});
  };
  bad(L::kto{.beta = 0.0}, "kto", "beta");
  bad(L::kto{.desirable_weight = -1.0}, "kto", "desirable_weight");
  bad(L::kto{.undesirable_weight = kNaN}, "kto", "undesirable_weight");
  bad(L::apo_zero_unpaired{.beta = -2.0}, "apo_zero_unpaired", "beta");
}

// ---------------------------------------------------------------------------------------------
// Batches.

TEST_CASE("batch: a column whose size differs from the number of pairs names the column") {
  const auto good = pt::random_batch<double>(8, 4);
  auto check = [&](auto mutate, const std::string& column) {
    auto b = good;
    mutate(b);
    throws_naming<prefopt::shape_error>([&] { (void)evaluate(L::sigmoid{}, b); }, {"'" + column + "'"});
  };
  check([](auto& b) { b.policy_rejected.pop_back(); }, "policy_rejected");
  check([](auto& b) { b.reference_chosen.push_back(-1.0); }, "reference_chosen");
  check([](auto& b) { b.reference_rejected.pop_back(); }, "reference_rejected");
  check([](auto& b) { b.chosen_tokens.pop_back(); }, "chosen_tokens");
  check([](auto& b) { b.rejected_tokens.push_back(3); }, "rejected_tokens");
  check([](auto& b) { b.preference_prob.pop_back(); }, "preference_prob");
  check([](auto& b) { b.score_chosen.pop_back(); }, "score_chosen");
  check([](auto& b) { b.score_rejected.push_back(0.0); }, "score_rejected");
  check([](auto& b) { b.cost.pop_back(); }, "cost");
  check([](auto& b) { b.weight.pop_back(); }, "weight");
  auto half = good;
  half.reference_rejected.clear();  // a reference-free loss reads neither, but half a reference is a mistake
  throws_naming<prefopt::shape_error>([&] { (void)evaluate(L::cpo{}, half); }, {"'reference_chosen'/'reference_rejected'"});
}

TEST_CASE("batch: a column the loss needs and the batch lacks names the column and the loss") {
  const auto full = pt::random_batch<double>(9, 4);
  auto missing = [&](const auto& loss, auto strip, const std::string& column) {
    auto b = full;
    strip(b);
    const std::string name(std::remove_cvref_t<decltype(loss)>::name);
    bool thrown = false;
    try {
      (void)evaluate(loss, b);
    } catch (const prefopt::shape_error& e) {
      thrown = true;
      INFO(e.what());
      CHECK(std::string(e.where()).find("'" + column + "'") != std::string::npos);
      CHECK(std::string(e.why()).find("'" + name + "'") != std::string::npos);
    }
    CHECK_MESSAGE(thrown, "missing column ", column, " for ", name, " not reported");
  };
  auto no_ref = [](auto& b) { b.reference_chosen.clear(); b.reference_rejected.clear(); };
  missing(L::sigmoid{}, no_ref, "reference_chosen");
  missing(L::bco_pair{}, no_ref, "reference_chosen");
  missing(L::aot{}, no_ref, "reference_chosen");
  missing(L::probabilistic{.source = L::label_source::column}, [](auto& b) { b.preference_prob.clear(); },
          "preference_prob");
  missing(L::probabilistic{.source = L::label_source::scores}, [](auto& b) { b.score_chosen.clear(); b.score_rejected.clear(); },
          "score_chosen");
  auto no_tokens = [](auto& b) { b.chosen_tokens.clear(); b.rejected_tokens.clear(); };
  missing(L::ipo{}, no_tokens, "chosen_tokens");
  missing(L::sigmoid_norm{}, no_tokens, "chosen_tokens");
  missing(L::sft{}, no_tokens, "chosen_tokens");
  missing(L::orpo{}, no_tokens, "chosen_tokens");
  missing(L::simpo{}, no_tokens, "chosen_tokens");
  missing(L::wpo(L::sigmoid{}), [](auto& b) { b.weight.clear(); }, "weight");
  missing(L::constrain(L::sigmoid{}, L::pair_cost{}), [](auto& b) { b.cost.clear(); }, "cost");
  missing(0.5 * L::sigmoid{} + 0.5 * L::sft{}, no_tokens, "chosen_tokens");
  // What a loss does not need may be absent.
  auto bare = full;
  no_ref(bare);
  bare.preference_prob.clear();
  bare.weight.clear();
  CHECK_NOTHROW((void)evaluate(L::cpo{}, bare));
  CHECK_NOTHROW((void)evaluate(L::ipo{.normalize_by_length = false}, [&] { auto b = full; no_tokens(b); return b; }()));
}

TEST_CASE("batch: preference_prob outside [0, 1] and empty completions are data errors naming column and pair") {
  auto b = pt::random_batch<double>(10, 5);
  const L::probabilistic soft{.source = L::label_source::column};
  for (double p : {1.5, -0.1, kNaN}) {
    auto c = b;
    c.preference_prob[3] = p;
    throws_naming<prefopt::data_error>([&] { (void)evaluate(soft, c); }, {"'preference_prob'", "pair 3"});
  }
  auto c = b;
  c.chosen_tokens[2] = 0;
  throws_naming<prefopt::data_error>([&] { (void)evaluate(L::ipo{}, c); }, {"'chosen_tokens'", "pair 2"});
  auto r = b;
  r.rejected_tokens[4] = -3;
  throws_naming<prefopt::data_error>([&] { (void)evaluate(L::sigmoid{}, r); }, {"'rejected_tokens'", "pair 4"});
  // Only the rejected counts given: still checked.
  auto o = b;
  o.chosen_tokens.clear();
  o.rejected_tokens[0] = 0;
  throws_naming<prefopt::data_error>([&] { (void)evaluate(L::sigmoid{}, o); }, {"'rejected_tokens'", "pair 0"});
  // The probability bounds themselves are fine.
  auto edge = b;
  edge.preference_prob = {0.0, 1.0, 0.5, 1.0, 0.0};
  CHECK_NOTHROW((void)evaluate(soft, edge));
}

TEST_CASE("batch: a batch_context with no pairs, and unpaired batches") {
  const auto b = pt::random_batch<double>(11, 3);
  throws_naming<prefopt::shape_error>([&] { (void)evaluate(L::sigmoid{}, b, prefopt::batch_context<double>{0.0, 10.0}); },
                                      {"batch_context"});
  prefopt::unpaired_batch<double> u;
  u.policy = {-3.0, -4.0};
  u.reference = {-3.5};
  u.desirable = {1, 0};
  throws_naming<prefopt::shape_error>([&] { (void)evaluate(L::kto{}, u); }, {"'reference'"});
  u.reference.push_back(-1.0);
  u.desirable.pop_back();
  throws_naming<prefopt::shape_error>([&] { (void)evaluate(L::kto{}, u); }, {"'desirable'"});
  u.desirable.push_back(0);
  u.policy_kl = {-1.0, -2.0};
  u.reference_kl = {-1.0};
  throws_naming<prefopt::shape_error>([&] { (void)evaluate(L::kto{}, u); }, {"'policy_kl'/'reference_kl'"});
}

TEST_CASE("an empty batch (an empty micro-batch) evaluates to zero, without NaN") {
  prefopt::pair_batch<double> b;
  const auto r = evaluate(L::sigmoid{}, b);
  CHECK(r.loss == 0.0);
  CHECK(r.per_pair.empty());
  CHECK(evaluate(L::sft{}, b, prefopt::batch_context<double>{8.0, 100.0}).loss == 0.0);
  CHECK(evaluate(L::aot{}, b).loss == 0.0);
}
