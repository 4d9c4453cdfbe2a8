// prefopt/train/finish_step.hpp — the rule that ends every optimizer step, one copy for the
// one-copy update (step_update.hpp, clip_and_update), ZeRO-1's split one (zero.hpp, zero_update)
// and the reward trainer's body + head update (reward_trainer.hpp): a step whose loss or gradient
// norm is not finite is skipped (gradients zeroed, the weights untouched, the step counter
// unmoved); otherwise the update runs, the step counts, and `after` runs. Metrics: grad_norm, and
// learning_rate at the step the run is now at.
#pragma once

#include <cmath>
#include <map>
#include <string>

namespace prefopt::train::detail {

// out.metrics gains grad_norm and learning_rate; update() applies the optimizer, after() follows it.
template <class Result, class Model, class Optimizer, class Args, class Update, class After>
void finish_step(Result& out, Model& policy, const Optimizer& opt, const Args& args, long& step, double loss, double norm,
                 Update&& update, After&& after) {
  out.metrics["grad_norm"] = norm;
  if (!std::isfinite(loss) || !std::isfinite(norm)) {
    out.skipped = true;
    out.skip_reason = !std::isfinite(loss) ? "non-finite loss" : "non-finite gradient norm";
    policy.zero_grad();
  } else {
    update(opt.lr * args.schedule.factor(step));
    ++step;
    after();
  }
  out.metrics["learning_rate"] = opt.lr * args.schedule.factor(step);
}

} // namespace prefopt::train::detail
