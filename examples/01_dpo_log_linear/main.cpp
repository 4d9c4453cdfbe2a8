// DPO on a problem whose answer is known: a log-linear policy over 4 responses for 4 prompts,
// preferences sampled from a hidden reward by Bradley–Terry. DPO's optimum is
// π*(y|x) ∝ π_ref(y|x)·exp(r(x, y)/β); we train with minibatches and watch KL(π* ‖ π_θ) fall.
#include <cstdio>

#include "common.hpp"
#include "prefopt/losses/sigmoid.hpp"

int main() {
  using namespace prefopt;
  example::setup s(60000);
  const double beta = 1.0;
  const auto target = s.problem.dpo_optimum(s.reference.all_logps(), beta);
  std::printf("DPO (sigmoid, beta = %.1f) on %zu sampled preference pairs\n", beta, s.pairs.size());
  std::printf("  KL(pi* || pi_theta) before: %.4f\n", s.problem.mean_kl(target, s.policy.all_logps()));

  using trainer = train::trainer<example::model, losses::sigmoid, optim::adamw, train::reference::frozen<example::model>>;
  train::training_args args;
  args.schedule = {.kind = optim::schedule_kind::cosine, .total_steps = example::steps_for(s.pairs.size(), 500, 4),
                   .warmup_ratio = 0.05};
  trainer t(s.policy, losses::sigmoid{.beta = beta}, optim::adamw{.lr = 0.1}, {&s.reference}, args);
  example::train(t, s, 4, 500);

  const double kl = s.problem.mean_kl(target, s.policy.all_logps());
  std::printf("  KL(pi* || pi_theta) after:  %.5f\n", kl);
  return kl < 5e-3 ? 0 : 1;
}
