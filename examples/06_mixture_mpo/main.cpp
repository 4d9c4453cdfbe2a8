// Mixed Preference Optimization: a weighted sum of losses composed at compile time,
// L = 0.8·sigmoid + 0.2·bco_pair + 1.0·sft (TRL: loss_type=["sigmoid","bco_pair","sft"],
// loss_weights=[0.8, 0.2, 1.0]). Each term's mean loss is reported as loss/<name>.
#include <cstdio>

#include "common.hpp"
#include "prefopt/losses/bco_pair.hpp"
#include "prefopt/losses/mixture.hpp"
#include "prefopt/losses/sft.hpp"
#include "prefopt/losses/sigmoid.hpp"

int main() {
  using namespace prefopt;
  const auto mpo = 0.8 * losses::sigmoid{.beta = 0.5} + 0.2 * losses::bco_pair{.beta = 0.5} + 1.0 * losses::sft{};
  using loss_type = std::remove_const_t<decltype(mpo)>;
  example::setup s(20000);
  using trainer = train::trainer<example::model, loss_type, optim::adamw, train::reference::frozen<example::model>>;
  trainer t(s.policy, mpo, optim::adamw{.lr = 0.05}, {&s.reference});
  std::printf("MPO = 0.8 sigmoid + 0.2 bco_pair + 1.0 sft\n");
  std::map<std::string, double> first, last;
  for (int e = 0; e < 2; ++e)
    for (const auto& b : s.minibatches(500, unsigned(e))) {
      last = t.step(b).metrics;
      if (first.empty()) first = last;
    }
  for (const char* k : {"loss/sigmoid", "loss/bco_pair", "loss/sft", "loss"})
    std::printf("  %-14s %.4f -> %.4f\n", k, first.at(k), last.at(k));
  return last.at("loss") < first.at("loss") && last.at("loss/sft") < first.at("loss/sft") ? 0 : 1;
}
