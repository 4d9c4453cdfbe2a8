// IPO on the known-optimum problem. IPO does not assume Bradley–Terry: its optimum is
// π*(y|x) ∝ π_ref(y|x)·exp(p(y ≻ μ | x)/τ) (Azar et al. 2024), bounded however strong the
// preferences — compare with DPO's π* ∝ π_ref·exp(r/β). We train IPO and check which it reaches.
#include <cstdio>

#include "common.hpp"
#include "prefopt/losses/ipo.hpp"

int main() {
  using namespace prefopt;
  example::setup s(60000);
  const double tau = 0.5;
  const auto ref = s.reference.all_logps();
  const auto ipo_target = s.problem.ipo_optimum(ref, tau), dpo_target = s.problem.dpo_optimum(ref, tau);

  using trainer = train::trainer<example::model, losses::ipo, optim::adamw, train::reference::frozen<example::model>>;
  train::training_args args;
  args.schedule = {.kind = optim::schedule_kind::cosine, .total_steps = example::steps_for(s.pairs.size(), 500, 4)};
  // One "token" per response here, so the length-normalized and summed forms coincide.
  trainer t(s.policy, losses::ipo{.beta = tau, .normalize_by_length = false}, optim::adamw{.lr = 0.1}, {&s.reference}, args);
  std::printf("IPO (tau = %.1f)\n", tau);
  example::train(t, s, 4, 500);
  const auto lp = s.policy.all_logps();
  const double kl_ipo = s.problem.mean_kl(ipo_target, lp), kl_dpo = s.problem.mean_kl(dpo_target, lp);
  std::printf("  KL to IPO's optimum %.5f, to DPO's optimum %.4f\n", kl_ipo, kl_dpo);
  return kl_ipo < 5e-3 && kl_ipo < kl_dpo ? 0 : 1;
}
