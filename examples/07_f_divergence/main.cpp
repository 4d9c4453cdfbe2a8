// f-DPO: the same preferences regularized by different f-divergences to the reference
// (Wang et al. 2024). Reverse KL (standard DPO) is mode-seeking; forward KL and JS keep more of
// the reference's mass. We report each policy's KL(π_θ ‖ π_ref) and its expected reward.
#include <cmath>
#include <cstdio>

#include "common.hpp"
#include "prefopt/losses/f_divergence.hpp"
#include "prefopt/losses/sigmoid.hpp"

int main() {
  using namespace prefopt;
  using losses::divergence;
  std::printf("sigmoid loss (beta = 0.5) under four f-divergences\n");
  double kl_reverse = 0.0, kl_forward = 0.0;
  for (auto [kind, name] : {std::pair{divergence::reverse_kl, "reverse_kl"}, std::pair{divergence::forward_kl, "forward_kl"},
                            std::pair{divergence::js, "js"}, std::pair{divergence::alpha, "alpha 0.5"}}) {
    example::setup s(30000);
    const auto loss = losses::with_divergence(losses::sigmoid{.beta = 0.5}, kind, 0.5);
    using trainer = train::trainer<example::model, std::remove_const_t<decltype(loss)>, optim::adamw,
                                   train::reference::frozen<example::model>>;
    trainer t(s.policy, loss, optim::adamw{.lr = 0.05}, {&s.reference});
    example::train(t, s, 3, 500, 1000000);
    const auto lp = s.policy.all_logps(), ref = s.reference.all_logps();
    double kl = 0.0, reward = 0.0;
    for (std::size_t i = 0; i < lp.size(); ++i) {
      kl += std::exp(lp[i]) * (lp[i] - ref[i]);
      reward += std::exp(lp[i]) * s.problem.reward[i];
    }
    kl /= s.problem.prompts;
    reward /= s.problem.prompts;
    std::printf("  %-11s KL(pi || pi_ref) %.3f   expected reward %+.3f\n", name, kl, reward);
    if (kind == divergence::reverse_kl) kl_reverse = kl;
    if (kind == divergence::forward_kl) kl_forward = kl;
  }
  return kl_forward < kl_reverse ? 0 : 1;
}
