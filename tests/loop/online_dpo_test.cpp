// Online DPO (loop/online_dpo.hpp): convergence to the known optimum on the log-linear problem,
// TRL's metrics, judges' answers, and one step on a transformer equal to offline DPO on its pairs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "prefopt/losses/ipo.hpp"
#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/loop/online_dpo.hpp"
#include "prefopt/loop/online_samplers.hpp"
#include "prefopt/models/detail/random.hpp"
#include "prefopt/models/log_linear_problem.hpp"
#include "prefopt/models/transformer.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/sgd.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/backends.hpp"
#include "support/data.hpp"

using namespace prefopt;
using backend = backends::eigen;
using ll_model = models::log_linear<backend>;

namespace {
// Bradley–Terry annotator of the log-linear problem: the first completion wins with probability
// σ(r(x, y₁) − r(x, y₂)), drawn from its own seeded engine.
struct bradley_terry_judge {
  const models::log_linear_problem* problem;
  std::mt19937_64 rng;
  std::vector<int> compare(std::span<const loop::judge_request> batch) {
    std::vector<int> out;
    for (const auto& r : batch) {
      const int x = std::stoi(r.prompt), a = std::stoi(r.completions[0]), b = std::stoi(r.completions[1]);
      const double p = 1.0 / (1.0 + std::exp(-(problem->r(x, a) - problem->r(x, b))));
      out.push_back(models::detail::uniform01(rng) < p ? 0 : 1);
    }
    return out;
  }
  std::string name() const { return "bradley-terry"; }
};
static_assert(loop::pairwise_judge<bradley_terry_judge>);
static_assert(loop::OnlineSampler<loop::log_linear_sampler<backend>>);

std::vector<std::int32_t> repeated_prompts(int prompts, int copies) {
  std::vector<std::int32_t> p;
  for (int c = 0; c < copies; ++c)
    for (int x = 0; x < prompts; ++x) p.push_back(x);
  return p;
}

struct online_run {
  double initial_kl, final_kl, trace_fisher;
};

// tr(F̄): the mean over prompts of tr Cov_{y∼π*}(φ(x, y)), π* given as log-probs.
double trace_fisher(const models::log_linear_problem& prob, const std::vector<double>& log_opt) {
  const std::size_t K = std::size_t(prob.responses), D = std::size_t(prob.dims);
  double tr = 0.0;
  for (std::size_t x = 0; x < std::size_t(prob.prompts); ++x)
    for (std::size_t d = 0; d < D; ++d) {
      double m = 0.0, m2 = 0.0;
      for (std::size_t y = 0; y < K; ++y) {
        const double p = std::exp(log_opt[x * K + y]), f = double(prob.features[(x * K + y) * D + d]);
        m += p * f;
        m2 += p * f * f;
      }
      tr += m2 - m * m;
    }
  return tr / double(prob.prompts);
}

// Online DPO (sigmoid, β) with SGD at lr η₀ decaying linearly to 0 over `steps`, B prompts per step.
online_run run_online(std::uint64_t seed, double beta, double lr, int steps, int copies) {
  const auto prob = models::log_linear_problem::make(4, 4, 7);
  ll_model policy(backend{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  ll_model ref(backend{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  train::training_args args;
  args.max_grad_norm = 0.0;
  args.schedule = {.kind = optim::schedule_kind::linear, .total_steps = steps};
  using trainer_t = train::trainer<ll_model, losses::sigmoid, optim::sgd, train::reference::frozen<ll_model>>;
  trainer_t t(policy, {.beta = beta}, {.lr = lr}, {&ref}, args);
  loop::log_linear_sampler<backend> sampler(policy);
  bradley_terry_judge judge{&prob, std::mt19937_64(seed + 1)};
  loop::online_dpo online(t, sampler, judge);
  const auto ref_logp = ref.all_logps();
  const auto target = prob.dpo_optimum(ref_logp, beta);
  online_run r{prob.mean_kl(target, policy.all_logps()), 0.0, trace_fisher(prob, target)};
  std::mt19937_64 rng(seed);
  const auto prompts = repeated_prompts(prob.prompts, copies);
  for (int s = 0; s < steps; ++s) REQUIRE_FALSE(online.step(prompts, rng).step.skipped);
  r.final_kl = prob.mean_kl(target, policy.all_logps());
  return r;
}
} // namespace

TEST_CASE_TEMPLATE("the log-linear sampler draws exactly from π_θ", B, PREFOPT_CPU_BACKENDS) {
  const auto prob = models::log_linear_problem::make(3, 5, 3, 1.0, 2.0);
  models::log_linear<B> policy(B{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  loop::log_linear_sampler<B> sampler(policy);
  const auto logp = policy.all_logps();
  std::mt19937_64 rng(5);
  const std::vector<std::int32_t> prompts{0, 1, 2};
  std::vector<double> count(logp.size(), 0.0);
  const int draws = 20000;
  for (int d = 0; d < draws; ++d) {
    const auto ys = sampler.sample(prompts, rng);
    REQUIRE(ys.size() == 6);
    for (std::size_t i = 0; i < ys.size(); ++i) count[std::size_t(prompts[i % 3]) * 5 + std::size_t(ys[i])] += 1.0;
  }
  for (std::size_t i = 0; i < logp.size(); ++i) {
    const double p = std::exp(double(logp[i])), freq = count[i] / (2.0 * draws);
    // 4 standard deviations of a frequency over 40 000 draws
    CHECK(std::abs(freq - p) < 4.0 * std::sqrt(p * (1.0 - p) / (2.0 * draws)) + 1e-9);
  }
  CHECK_THROWS_AS(sampler.sample(std::vector<std::int32_t>{3}, rng), data_error);
}

// The proof. Why π* ∝ π_ref·exp(r/β) is the fixed point of online sampling: on the log-linear
// policy, log π_θ(y|x) − log π_θ(y'|x) = θᵀψ with ψ = φ(x, y) − φ(x, y'), so the DPO loss of a
// pair is logistic regression of the Bradley–Terry label on β(θ − θ_ref)ᵀψ. At θ* (features of
// full rank, D = X·K, so π* is in the family) σ(β(θ* − θ_ref)ᵀψ) = σ(r − r') for EVERY pair, so
// the expected gradient of every single pair is zero — whatever distribution the pairs are drawn
// from, the policy's own included. Sampling on-policy moves where the gradient is averaged, not
// where it vanishes.
// The noise floor: the model is well specified, so at θ* the covariance of one pair's gradient
// equals the Hessian H of the expected loss. SGD at a constant rate η on B pairs then fluctuates
// around θ* with covariance Σ solving HΣ + ΣH = (η/B)·H, i.e. Σ = η/(2B)·I on the identifiable
// directions (the others get no gradient at all), and E KL(π*‖π_θ) ≈ ½·tr(F̄Σ) = η·tr(F̄)/(4B),
// F̄ the mean over prompts of Cov_{π*}(φ) (the policy's Fisher information at π*). Measured on
// this problem with constant rates this estimate holds within a factor of 2.
// The run: X = K = 4, β = 1, B = 1024 pairs per step (every prompt 256 times), SGD from θ_ref at
// η₀ = 2 decaying linearly to 0 over 1500 steps (larger rates diverge on this problem: η·λ_max(H)
// must stay below 2). The bound is the noise floor at a tenth of the starting rate,
// η₀/10·tr(F̄)/(4B) (≈ 3.8e-4): the rate is below η₀/10 for the last 150 steps, which damp the
// well-curved directions that carry most of the KL; the runs end at 1.0e-4 and 1.8e-4. The
// initial KL (≈ 0.31, KL(π*‖π_ref)) is asserted to be ≥ 500× the bound — KL is quadratic in the
// distance to θ*, so a policy that stopped 4% short of θ* would already fail — and the test is
// deterministic by its seeds.
TEST_CASE("online DPO with exact sampling and a Bradley–Terry judge converges to π* ∝ π_ref·exp(r/β)") {
  const double lr = 2.0, beta = 1.0;
  const int copies = 256, steps = 1500;
  const double pairs = 4.0 * copies;
  for (const std::uint64_t seed : {1u, 2u}) {
    const online_run r = run_online(seed, beta, lr, steps, copies);
    const double bound = lr / 10.0 * r.trace_fisher / (4.0 * pairs);
    MESSAGE("seed " << seed << ": KL(pi* || pi_theta) " << r.initial_kl << " -> " << r.final_kl << " (bound " << bound << ")");
    CHECK(r.initial_kl > 500.0 * bound);
    CHECK(r.final_kl < bound);
  }
}

TEST_CASE("an online run is reproduced by its seeds") {
  const online_run a = run_online(3, 1.0, 2.0, 60, 4), b = run_online(3, 1.0, 2.0, 60, 4), c = run_online(4, 1.0, 2.0, 60, 4);
  CHECK(a.final_kl == b.final_kl);
  CHECK(a.final_kl != c.final_kl);
}

TEST_CASE("online DPO metrics are TRL's, computed over the sampled completions") {
  const auto prob = models::log_linear_problem::make(4, 4, 7, 1.0);
  ll_model policy(backend{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  ll_model ref(backend{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  using trainer_t = train::trainer<ll_model, losses::sigmoid, optim::sgd, train::reference::frozen<ll_model>>;
  trainer_t t(policy, {.beta = 0.5}, {.lr = 1.0}, {&ref});
  loop::log_linear_sampler<backend> sampler(policy);
  // A scoring judge: the true reward.
  loop::callable_judge reward("reward", [&](const std::string& p, const std::vector<std::string>& cs) {
    std::vector<double> s;
    for (const auto& c : cs) s.push_back(prob.r(std::stoi(p), std::stoi(c)));
    return s;
  });
  loop::online_dpo online(t, sampler, reward);
  std::mt19937_64 rng(3);
  const auto prompts = repeated_prompts(4, 8);
  for (int s = 0; s < 5; ++s) online.step(prompts, rng);  // move away from π_ref
  const auto before = policy.all_logps(), ref_logp = ref.all_logps();
  const auto r = online.step(prompts, rng);
  const auto& m = r.step.metrics;
  const std::size_t n = prompts.size();
  REQUIRE(r.chosen.size() == n);
  double kl = 0, logp = 0, scores = 0, margin = 0, rc = 0, rr = 0, acc = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = std::size_t(prompts[i]) * 4 + std::size_t(r.chosen[i]);
    const std::size_t j = std::size_t(prompts[i]) * 4 + std::size_t(r.rejected[i]);
    CHECK(prob.r(prompts[i], r.chosen[i]) >= prob.r(prompts[i], r.rejected[i]));  // higher score chosen
    kl += double(before[c]) - double(ref_logp[c]) + double(before[j]) - double(ref_logp[j]);
    logp += double(before[c]) + double(before[j]);
    scores += prob.r(prompts[i], r.chosen[i]) + prob.r(prompts[i], r.rejected[i]);
    margin += prob.r(prompts[i], r.chosen[i]) - prob.r(prompts[i], r.rejected[i]);
    rc += 0.5 * (double(before[c]) - double(ref_logp[c]));
    rr += 0.5 * (double(before[j]) - double(ref_logp[j]));
    acc += double(before[c]) - double(ref_logp[c]) > double(before[j]) - double(ref_logp[j]) ? 1.0 : 0.0;
  }
  const double N = double(n);
  CHECK(m.at("objective/kl") == doctest::Approx(kl / (2 * N)).epsilon(1e-5));
  CHECK(std::abs(m.at("objective/kl")) > 1e-3);  // the policy has moved: not a test of zeros
  CHECK(m.at("objective/entropy") == doctest::Approx(-logp / (2 * N)).epsilon(1e-5));
  CHECK(m.at("objective/non_score_reward") == doctest::Approx(-0.5 * kl / (2 * N)).epsilon(1e-5));
  CHECK(m.at("objective/scores") == doctest::Approx(scores / (2 * N)).epsilon(1e-9));
  CHECK(m.at("objective/scores_margin") == doctest::Approx(margin / N).epsilon(1e-9));
  CHECK(m.at("objective/rlhf_reward") == doctest::Approx(scores / (2 * N) - 0.5 * kl / (2 * N)).epsilon(1e-5));
  CHECK(m.at("rewards/chosen") == doctest::Approx(rc / N).epsilon(1e-5));
  CHECK(m.at("rewards/rejected") == doctest::Approx(rr / N).epsilon(1e-5));
  CHECK(m.at("rewards/margins") == doctest::Approx((rc - rr) / N).epsilon(1e-5));
  CHECK(m.at("rewards/accuracies") == doctest::Approx(acc / N));
  CHECK(m.at("val/contain_eos_token") == 1.0);
  CHECK(m.at("beta") == 0.5);
  for (const char* k : {"loss", "grad_norm", "learning_rate", "logps/chosen", "logps/rejected"}) CHECK(m.count(k) == 1);
}

namespace {
// Response 0 never "ends": the missing-EOS penalty applies to it.
struct no_eos_for_zero : loop::log_linear_sampler<backend> {
  using loop::log_linear_sampler<backend>::log_linear_sampler;
  bool ends_with_eos(std::int32_t y) const { return y != 0; }
};
} // namespace

TEST_CASE("scoring judges: ties keep the first, missing_eos_penalty lowers a completion without EOS") {
  const auto prob = models::log_linear_problem::make(2, 3, 4, 1.0, 3.0);
  ll_model policy(backend{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  ll_model ref(backend{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  using trainer_t = train::trainer<ll_model, losses::ipo, optim::sgd, train::reference::frozen<ll_model>>;
  trainer_t t(policy, {.beta = 0.2, .normalize_by_length = false}, {.lr = 0.0}, {&ref});
  no_eos_for_zero sampler(policy);
  // Response 0 scores highest (2), the others 1 (a tie between 1 and 2).
  loop::callable_judge judge("zero-best", [](const std::string&, const std::vector<std::string>& cs) {
    std::vector<double> s;
    for (const auto& c : cs) s.push_back(c == "0" ? 2.0 : 1.0);
    return s;
  });
  std::vector<std::int32_t> prompts(200);
  for (std::size_t i = 0; i < prompts.size(); ++i) prompts[i] = std::int32_t(i % 2);
  std::mt19937_64 rng(9);
  {
    loop::online_dpo online(t, sampler, judge);
    const auto r = online.step(prompts, rng);
    int zeros = 0;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      if (r.rejected[i] == 0) CHECK(r.chosen[i] == 0);  // 0 loses to nothing
      if (r.chosen[i] != 0) CHECK(r.score_chosen[i] == r.score_rejected[i]);
      zeros += r.chosen[i] == 0;
    }
    CHECK(zeros > 0);
    CHECK(r.step.metrics.at("val/contain_eos_token") < 1.0);
  }
  {
    loop::online_dpo online(t, sampler, judge, {.missing_eos_penalty = 5.0});
    const auto r = online.step(prompts, rng);
    int zeros_rejected = 0;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      if (r.chosen[i] == 0) CHECK(r.rejected[i] == 0);  // 0 now scores -3: it wins only against itself
      if (r.rejected[i] == 0 && r.chosen[i] != 0) ++zeros_rejected;
      CHECK(r.score_chosen[i] >= r.score_rejected[i]);
    }
    CHECK(zeros_rejected > 0);
  }
  CHECK_THROWS_AS(loop::online_dpo(t, sampler, judge, {.missing_eos_penalty = -1.0}), config_error);
}

TEST_CASE("pairwise judges: answers 0, 1 and -1 (tie, first kept); other answers are errors naming the judge") {
  const auto prob = models::log_linear_problem::make(2, 3, 4, 1.0, 3.0);
  ll_model policy(backend{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  ll_model ref(backend{}, prob.prompts, prob.responses, prob.dims, prob.features, prob.theta_ref);
  using trainer_t = train::trainer<ll_model, losses::sigmoid, optim::sgd, train::reference::frozen<ll_model>>;
  trainer_t t(policy, {.beta = 0.2}, {.lr = 0.0}, {&ref});
  loop::log_linear_sampler<backend> sampler(policy);
  struct scripted {
    std::vector<int> answers;
    std::vector<loop::judge_request> seen;
    std::vector<int> compare(std::span<const loop::judge_request> b) {
      seen.assign(b.begin(), b.end());
      return answers;
    }
    std::string name() const { return "scripted"; }
  } judge{{0, 1, -1}, {}};
  loop::online_dpo online(t, sampler, judge);
  std::mt19937_64 rng(2);
  const std::vector<std::int32_t> prompts{0, 1, 0};
  const auto r = online.step(prompts, rng);
  REQUIRE(judge.seen.size() == 3);
  CHECK(judge.seen[1].prompt == "1");
  CHECK(std::to_string(r.chosen[0]) == judge.seen[0].completions[0]);
  CHECK(std::to_string(r.chosen[1]) == judge.seen[1].completions[1]);
  CHECK(std::to_string(r.rejected[1]) == judge.seen[1].completions[0]);
  CHECK(std::to_string(r.chosen[2]) == judge.seen[2].completions[0]);
  CHECK(r.score_chosen.empty());
  CHECK(r.step.metrics.count("objective/scores") == 0);  // TRL logs scores only for reward functions
  judge.answers = {0, 1};
  CHECK_THROWS_WITH_AS(online.step(prompts, rng), "judge 'scripted': 2 answers for 3 requests", loop::judge_error);
  judge.answers = {0, 2, 1};
  CHECK_THROWS_WITH_AS(online.step(prompts, rng), "judge 'scripted': request 1: answer 2 is not 0, 1 or -1 (tie)",
                       loop::judge_error);
}

// The transformer path: prompts as text through the tokenizer, two sampled continuations each,
// a text judge, one DPO step — which must equal an offline DPO step on the same pairs.
TEST_CASE("one online DPO step on the tiny GPT-2 equals an offline DPO step on the sampled pairs") {
  using model = models::gpt2<backend>;
  const auto dir = test::data_path("models/gpt2");
  const auto tok = data::tokenizer::from_file(test::data_path("tokenizer/charlevel/tokenizer.json"));
  const auto eos = tok.token_to_id("e");
  REQUIRE(eos);
  using trainer_t = train::trainer<model, losses::sigmoid, optim::sgd, train::reference::frozen<model>>;
  const std::vector<std::string> prompts{"hello world", "the cat sat", "abc"};
  // Judge: more vowels is better, longer is worse.
  loop::callable_judge vowels("vowels", [](const std::string&, const std::vector<std::string>& cs) {
    std::vector<double> s;
    for (const auto& c : cs)
      s.push_back(double(std::count_if(c.begin(), c.end(), [](char ch) { return std::string("aeiou").find(ch) != std::string::npos; })) -
                  0.1 * double(c.size()));
    return s;
  });

  auto policy = models::from_pretrained<model>(backend{}, dir);
  auto ref = models::from_pretrained<model>(backend{}, dir);
  trainer_t online_trainer(policy, {.beta = 0.1}, {.lr = 0.5}, {&ref});
  loop::transformer_sampler<model> sampler(policy, tok, {.temperature = 1.0, .max_new_tokens = 8, .eos_id = *eos});
  static_assert(loop::OnlineSampler<decltype(sampler)>);
  loop::online_dpo online(online_trainer, sampler, vowels);
  std::mt19937_64 rng(17);
  const auto r = online.step(prompts, rng);
  REQUIRE_FALSE(r.step.skipped);

  // The policy equals the reference before the step: KL and rewards are 0, and the entropy is
  // −mean log-prob of the samples as generate() recorded them.
  const auto& m = r.step.metrics;
  CHECK(m.at("objective/kl") == doctest::Approx(0.0));
  double logp = 0.0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    logp += r.chosen[i].logp + r.rejected[i].logp;
    CHECK(r.score_chosen[i] >= r.score_rejected[i]);
    CHECK(vowels.score(std::vector<loop::judge_request>{{prompts[i], {tok.decode(r.chosen[i].tokens, true)}}})[0][0] ==
          r.score_chosen[i]);
  }
  CHECK(m.at("objective/entropy") == doctest::Approx(-logp / (2.0 * double(prompts.size()))).epsilon(1e-4));
  double eos_count = 0.0;
  for (std::size_t i = 0; i < prompts.size(); ++i) eos_count += double(r.chosen[i].stopped) + double(r.rejected[i].stopped);
  CHECK(m.at("val/contain_eos_token") == eos_count / 6.0);

  // Offline: fresh weights, the same pairs packed from the prompts' token ids, one trainer step.
  auto offline_policy = models::from_pretrained<model>(backend{}, dir);
  auto offline_ref = models::from_pretrained<model>(backend{}, dir);
  trainer_t offline(offline_policy, {.beta = 0.1}, {.lr = 0.5}, {&offline_ref});
  std::vector<models::tokenized_pair> pairs;
  for (std::size_t i = 0; i < prompts.size(); ++i) pairs.push_back({tok.encode(prompts[i]), r.chosen[i].tokens, r.rejected[i].tokens});
  const train::preference_batch<models::token_batch> batch{models::pack_pairs(pairs, false), pairs.size()};
  const auto off = offline.step(batch);
  CHECK(off.metrics.at("loss") == m.at("loss"));
  CHECK(off.metrics.at("rewards/margins") == m.at("rewards/margins"));
  const auto a = policy.parameters(), b = offline_policy.parameters();
  REQUIRE(a.size() == b.size());
  double diff = 0.0, moved = 0.0;
  auto initial = models::from_pretrained<model>(backend{}, dir);
  const auto w0 = initial.parameters();
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, double(std::abs(a[i] - b[i])));
    moved = std::max(moved, double(std::abs(a[i] - w0[i])));
  }
  CHECK(diff == 0.0);
  CHECK(moved > 1e-4);  // the step changed the weights
}
