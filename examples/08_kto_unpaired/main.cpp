// KTO on unpaired data, with the lower-level API: each example is one response labelled
// desirable or not; the KL baseline z₀ comes from mismatched (prompt, response) pairs. The loop
// is written out: model forward, evaluate(kto, unpaired_batch), backward, clip, AdamW step.
#include <cmath>
#include <cstdio>
#include <random>

#include "common.hpp"
#include "prefopt/losses/kto.hpp"
#include "prefopt/optim/clip.hpp"

int main() {
  using namespace prefopt;
  example::setup s(0);
  auto& policy = s.policy;
  const losses::kto loss{.beta = 0.5};
  const optim::adamw opt{.lr = 0.05};
  auto state = opt.make_state(policy.backend(), policy.parameters().size());
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> px(0, s.problem.prompts - 1), py(0, s.problem.responses - 1);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 300; ++step) {
    // 256 examples: desirable with probability σ(r) — a thumbs-up from a noisy rater.
    models::log_linear_input seq, kl_seq;
    unpaired_batch<double> b;
    for (int i = 0; i < 256; ++i) {
      const int x = px(rng), y = py(rng);
      seq.prompt.push_back(x);
      seq.response.push_back(y);
      b.desirable.push_back(u(rng) < 1.0 / (1.0 + std::exp(-s.problem.r(x, y))));
      kl_seq.prompt.push_back(x);
      kl_seq.response.push_back(py(rng));  // a mismatched response for the KL baseline
    }
    models::sequence_logps pol, ref, pol_kl, ref_kl;
    policy.zero_grad();
    s.reference.forward(seq, ref, {.keep_activations = false});
    s.reference.forward(kl_seq, ref_kl, {.keep_activations = false});
    policy.forward(kl_seq, pol_kl, {.keep_activations = false});
    policy.forward(seq, pol, {});
    b.policy = pol.logp;
    b.reference = ref.logp;
    b.policy_kl = pol_kl.logp;
    b.reference_kl = ref_kl.logp;
    const unpaired_result<double> r = evaluate(loss, b);
    policy.backward(std::span<const double>(r.d_policy));
    optim::clip_grad_norm(policy.backend(), policy.gradients(), 1.0);
    opt.step(policy.backend(), state, policy.parameters(), policy.gradients(), policy.parameter_slices(), opt.lr);
    if (step == 0) first = r.loss;
    last = r.loss;
    if ((step + 1) % 100 == 0)
      std::printf("  step %3d  loss %.4f  kl %.4f  rewards/margins %+.3f\n", step + 1, r.loss, r.kl,
                  r.metrics.at("rewards/margins"));
  }
  // The trained policy should put more mass on high-reward responses than the reference.
  const auto lp = policy.all_logps(), rp = s.reference.all_logps();
  double gain = 0.0;
  for (std::size_t i = 0; i < lp.size(); ++i) gain += (std::exp(lp[i]) - std::exp(rp[i])) * s.problem.reward[i];
  std::printf("KTO: loss %.4f -> %.4f, expected reward gain over the reference %+.3f\n", first, last, gain / s.problem.prompts);
  return last < first && gain > 0.0 ? 0 : 1;
}
