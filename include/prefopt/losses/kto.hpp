// prefopt/losses/kto.hpp — Kahneman–Tversky Optimization on unpaired data (TRL KTOTrainer).
//
// Each example is one completion labelled desirable or undesirable. With r = log π_θ − log π_ref,
//   desirable:    ℓ = λ_D·(1 − σ(β(r − z₀)))
//   undesirable:  ℓ = λ_U·(1 − σ(β(z₀ − r)))
//   z₀ = max(0, mean_j (log π_θ(y'_j|x_j) − log π_ref(y'_j|x_j)))  over mismatched pairs (x_j, y'_j)
// Ethayarajh et al., "KTO: Model Alignment as Prospect Theoretic Optimization", ICML 2024, eq. 7.
// The KL baseline z₀ is detached (no gradient), as in the paper and TRL. L = mean over examples.
// apo_zero_unpaired (TRL loss_type "apo_zero_unpaired"): desirable 1 − σ(βr), undesirable σ(βr).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "prefopt/losses/common.hpp"

namespace prefopt {

template <class T> struct unpaired_batch {
  std::vector<T> policy{};           // log π_θ(y|x) of each example's completion
  std::vector<T> reference{};        // log π_ref(y|x)
  std::vector<char> desirable{};     // 1 = desirable (TRL label True), 0 = undesirable
  std::vector<T> policy_kl{};        // log π_θ(y'|x) of mismatched pairs for z₀; empty: z₀ = 0
  std::vector<T> reference_kl{};     // log π_ref(y'|x)
  [[nodiscard]] std::size_t size() const noexcept { return policy.size(); }
};

template <class T> struct unpaired_result {
  T loss = T(0);
  T kl = T(0);                     // z₀ as used
  std::vector<T> per_example{};
  std::vector<T> d_policy{};         // d loss / d policy[i]
  std::map<std::string, double> metrics;
};

namespace losses {

struct kto {
  double beta = 0.1;
  double desirable_weight = 1.0;
  double undesirable_weight = 1.0;

  static constexpr std::string_view name = "kto";
  static constexpr bool uses_kl = true;
  void validate() const {
    detail::require_positive(name, "beta", beta);
    detail::require_nonnegative(name, "desirable_weight", desirable_weight);
    detail::require_nonnegative(name, "undesirable_weight", undesirable_weight);
  }
  // Loss and d/dr of one example given r = log π_θ − log π_ref and the baseline z₀.
  template <class T> PREFOPT_HD pair_output<T> example(const T& r, const T& z0, bool good) const {
    const T b = T(beta);
    if (good) {
      const T u = b * (r - z0), w = T(desirable_weight);
      return {w * (T(1) - num::sigmoid<T>(u)), -w * b * num::sigmoid<T>(u) * num::sigmoid<T>(-u), T(0)};
    }
    const T u = b * (z0 - r), w = T(undesirable_weight);
    return {w * (T(1) - num::sigmoid<T>(u)), w * b * num::sigmoid<T>(u) * num::sigmoid<T>(-u), T(0)};
  }
};

struct apo_zero_unpaired {
  double beta = 0.1;
  static constexpr std::string_view name = "apo_zero_unpaired";
  static constexpr bool uses_kl = false;
  void validate() const { detail::require_positive(name, "beta", beta); }
  template <class T> PREFOPT_HD pair_output<T> example(const T& r, const T&, bool good) const {
    const T b = T(beta), u = b * r, s = num::sigmoid<T>(u), ds = b * s * num::sigmoid<T>(-u);
    if (good) return {T(1) - s, -ds, T(0)};
    return {s, ds, T(0)};
  }
};

template <class L>
concept UnpairedLoss = requires(const L& l, double r) {
  { L::name } -> std::convertible_to<std::string_view>;
  { L::uses_kl } -> std::convertible_to<bool>;
  l.validate();
  { l.example(r, r, true) } -> std::same_as<pair_output<double>>;
};

} // namespace losses

template <losses::UnpairedLoss L, class T> unpaired_result<T> evaluate(const L& loss, const unpaired_batch<T>& b) {
  loss.validate();
  const std::size_t n = b.size();
  auto check = [n](std::size_t got, const char* col) {
    if (got != n)
      throw shape_error(std::string("unpaired_batch: column '") + col + "'",
                        "has " + std::to_string(got) + " entries for " + std::to_string(n) + " examples");
  };
  check(b.reference.size(), "reference");
  check(b.desirable.size(), "desirable");
  if (b.policy_kl.size() != b.reference_kl.size())
    throw shape_error("unpaired_batch: columns 'policy_kl'/'reference_kl'", "must have the same length");

  unpaired_result<T> r;
  if constexpr (L::uses_kl) {
    if (!b.policy_kl.empty()) {
      T s(0);
      for (std::size_t j = 0; j < b.policy_kl.size(); ++j) s += b.policy_kl[j] - b.reference_kl[j];
      s /= T(b.policy_kl.size());
      r.kl = s > T(0) ? s : T(0);
    }
  }
  r.per_example.resize(n);
  r.d_policy.resize(n);
  T sum(0);
  double rc = 0, rr = 0, lc = 0, lr = 0;
  std::size_t nc = 0, nr = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const T ratio = b.policy[i] - b.reference[i];
    const pair_output<T> o = loss.example(ratio, r.kl, b.desirable[i] != 0);
    r.per_example[i] = o.value;
    r.d_policy[i] = n ? o.d_chosen / T(n) : T(0);
    sum += o.value;
    const double reward = losses::reward_beta(loss) * num::to_double(ratio);
    if (b.desirable[i]) { rc += reward; lc += num::to_double(b.policy[i]); ++nc; }
    else { rr += reward; lr += num::to_double(b.policy[i]); ++nr; }
  }
  r.loss = n ? sum / T(n) : T(0);
  r.metrics["kl"] = num::to_double(r.kl);
  if (nc) { r.metrics["rewards/chosen"] = rc / double(nc); r.metrics["logps/chosen"] = lc / double(nc); }
  if (nr) { r.metrics["rewards/rejected"] = rr / double(nr); r.metrics["logps/rejected"] = lr / double(nr); }
  if (nc && nr) r.metrics["rewards/margins"] = rc / double(nc) - rr / double(nr);
  return r;
}

} // namespace prefopt
