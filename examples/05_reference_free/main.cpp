// Reference-free losses need no reference model at all (reference::none): SimPO, CPO and ORPO.
// Their optimum is not DPO's, so we check what matters to a user: the policy ranks each prompt's
// responses in the order of the hidden reward.
#include <cstdio>

#include "common.hpp"
#include "prefopt/losses/cpo.hpp"
#include "prefopt/losses/orpo.hpp"
#include "prefopt/losses/simpo.hpp"

template <class Loss> double ranking_accuracy(Loss loss, const char* name) {
  using namespace prefopt;
  example::setup s(40000);
  using trainer = train::trainer<example::model, Loss, optim::adamw, train::reference::none>;
  trainer t(s.policy, loss, optim::adamw{.lr = 0.05});
  example::train(t, s, 3, 500, 1000000);
  const auto lp = s.policy.all_logps();
  int right = 0, total = 0;
  for (int x = 0; x < s.problem.prompts; ++x)
    for (int a = 0; a < s.problem.responses; ++a)
      for (int b = a + 1; b < s.problem.responses; ++b, ++total)
        right += (s.problem.r(x, a) > s.problem.r(x, b)) == (lp[std::size_t(x * s.problem.responses + a)] >
                                                             lp[std::size_t(x * s.problem.responses + b)]);
  const double acc = double(right) / total;
  std::printf("  %-6s ranks %d of %d response pairs like the reward (%.0f%%)\n", name, right, total, 100 * acc);
  return acc;
}

int main() {
  using namespace prefopt::losses;
  std::printf("Reference-free preference optimization\n");
  const double a = ranking_accuracy(simpo{.beta = 2.0, .gamma = 0.5}, "simpo");
  const double b = ranking_accuracy(cpo{.beta = 1.0, .alpha = 0.1}, "cpo");
  const double c = ranking_accuracy(orpo{.beta = 1.0}, "orpo");
  return a > 0.9 && b > 0.9 && c > 0.7 ? 0 : 1;
}
