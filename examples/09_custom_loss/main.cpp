// A loss of your own in a dozen lines: the squared hinge on the DPO margin,
//   ℓ = max(0, 1 − β·(s_w − s_l))²,
// written as a ScoreLoss (a function of the chosen and rejected scores), so prefopt's trainer,
// backends, f-divergences and mixtures all accept it. docs/losses.md explains each member.
#include <cstdio>

#include "common.hpp"
#include "prefopt/losses/f_divergence.hpp"
#include "prefopt/losses/mixture.hpp"
#include "prefopt/losses/sft.hpp"

struct squared_hinge {
  double beta = 1.0;
  static constexpr std::string_view name = "squared_hinge";
  unsigned required_columns() const { return prefopt::columns::reference; }
  void validate() const {
    if (!(beta > 0)) throw prefopt::config_error("loss 'squared_hinge': field 'beta'", "must be > 0");
  }
  template <class T> PREFOPT_HD prefopt::pair_output<T> scores(const T& sw, const T& sl, const prefopt::pair_input<T>&) const {
    const T slack = T(1) - T(beta) * (sw - sl);
    if (!(slack > T(0))) return {T(0), T(0), T(0)};
    const T d = -T(2) * slack * T(beta);  // dℓ/ds_w; dℓ/ds_l = −dℓ/ds_w
    return {slack * slack, d, -d};
  }
};
static_assert(prefopt::losses::PreferenceLoss<squared_hinge>);
static_assert(prefopt::losses::ScoreLoss<squared_hinge>);

template <class Loss> double train_with(Loss loss, const char* name) {
  using namespace prefopt;
  example::setup s(20000);
  using trainer = train::trainer<example::model, Loss, optim::adamw, train::reference::frozen<example::model>>;
  trainer t(s.policy, loss, optim::adamw{.lr = 0.05}, {&s.reference});
  std::map<std::string, double> m;
  for (const auto& b : s.minibatches(500, 0)) m = t.step(b).metrics;
  std::printf("  %-28s loss %.4f  rewards/accuracies %.3f\n", name, m.at("loss"), m.at("rewards/accuracies"));
  return m.at("rewards/accuracies");
}

int main() {
  using namespace prefopt::losses;
  std::printf("A user-defined loss, alone and composed\n");
  const double a = train_with(squared_hinge{}, "squared_hinge");
  const double b = train_with(with_divergence(squared_hinge{}, divergence::js), "squared_hinge + JS divergence");
  const double c = train_with(1.0 * squared_hinge{} + 0.1 * sft{}, "squared_hinge + 0.1 sft");
  return a > 0.6 && b > 0.6 && c > 0.6 ? 0 : 1;
}
