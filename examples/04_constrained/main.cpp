// A Lagrangian constraint with dual ascent. Some chosen responses carry a cost (say, unsafe
// content). pair_cost's g = cost·(log π_θ(y_w) − log π_ref(y_w)) measures how much probability
// the policy moves toward costly chosen responses; we ask for mean g ≤ 0 and let dual ascent
// find the multiplier λ, instead of guessing a penalty weight.
#include <cmath>
#include <cstdio>

#include "common.hpp"
#include "prefopt/losses/constrained.hpp"
#include "prefopt/losses/sigmoid.hpp"

int main() {
  using namespace prefopt;
  auto run = [](double rate) {
    example::setup s(40000);
    // The costly response of each prompt is its highest-reward one: DPO wants it most.
    std::vector<int> best(std::size_t(s.problem.prompts), 0);
    for (int x = 0; x < s.problem.prompts; ++x)
      for (int y = 1; y < s.problem.responses; ++y)
        if (s.problem.r(x, y) > s.problem.r(x, best[std::size_t(x)])) best[std::size_t(x)] = y;
    auto loss = losses::constrain(losses::sigmoid{.beta = 1.0}, losses::pair_cost{.lambda = 0.0, .bound = 0.0, .rate = rate});
    using trainer = train::trainer<example::model, decltype(loss), optim::adamw, train::reference::frozen<example::model>>;
    trainer t(s.policy, loss, optim::adamw{.lr = 0.05}, {&s.reference});
    double g = 0.0;
    for (int e = 0; e < 4; ++e)
      for (auto b : s.minibatches(500, unsigned(e))) {
        b.cost.resize(b.pairs);
        for (std::size_t i = 0; i < b.pairs; ++i) b.cost[i] = best[std::size_t(b.sequences.prompt[i])] == b.sequences.response[i];
        g = t.step(b).metrics.at("constraints/pair_cost");
      }
    std::printf("  dual ascent rate %.2f: mean g = %+.4f, lambda = %.3f\n", rate, g,
                boost::hana::at_c<0>(t.loss().constraints).lambda);
    return g;
  };
  std::printf("DPO with the constraint mean cost-weighted chosen log-ratio <= 0\n");
  const double free = run(0.0);   // λ stays 0: plain DPO
  const double held = run(0.05);  // λ adapts
  return free > 0.1 && std::abs(held) < 0.1 ? 0 : 1;
}
