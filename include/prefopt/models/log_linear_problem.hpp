// prefopt/models/log_linear_problem.hpp — synthetic preference problems with a known optimum.
//
// X prompts with K responses each; features φ(x, y) ∈ R^D drawn N(0, 1) with D = X·K (so every
// function of (x, y) is a linear function of the features: both DPO's and IPO's optimum lie in
// the log_linear family); a reference policy θ_ref ~ N(0, σ_ref²); a true reward r(x, y) ~ N(0, σ_r²).
// Pairs: x uniform, two distinct responses uniform, the preferred one drawn by Bradley–Terry,
// P(y ≻ y') = σ(r(x, y) − r(x, y')).
// Known optima of the KL-regularized objectives for this sampling distribution:
//   DPO (sigmoid, β):  π*(y|x) ∝ π_ref(y|x)·exp(r(x, y)/β)          (Rafailov et al. 2023, eq. 4)
//   IPO (τ = β):       π*(y|x) ∝ π_ref(y|x)·exp(p(y ≻ μ | x)/τ),  p(y ≻ μ | x) = mean_{y'} P(y ≻ y')
//                      (Azar et al. 2024, sec. 5, μ uniform over responses, y' = y counting ½)
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "prefopt/models/log_linear.hpp"

namespace prefopt::models {

struct sampled_pair {
  std::int32_t prompt, chosen, rejected;
};

struct log_linear_problem {
  int prompts = 4, responses = 4, dims = 16;
  std::vector<float> features;   // X·K·D
  std::vector<float> theta_ref;  // D
  std::vector<double> reward;    // X·K

  static log_linear_problem make(int prompts, int responses, std::uint64_t seed, double reward_scale = 1.0,
                                 double reference_scale = 0.3) {
    log_linear_problem p;
    p.prompts = prompts;
    p.responses = responses;
    p.dims = prompts * responses;
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> n01(0.0, 1.0);
    p.features.resize(std::size_t(p.prompts) * p.responses * p.dims);
    for (auto& f : p.features) f = float(n01(rng));
    p.theta_ref.resize(std::size_t(p.dims));
    for (auto& t : p.theta_ref) t = float(reference_scale * n01(rng) / std::sqrt(double(p.dims)));
    p.reward.resize(std::size_t(p.prompts) * p.responses);
    for (auto& r : p.reward) r = reward_scale * n01(rng);
    return p;
  }

  double r(int x, int y) const { return reward[std::size_t(x) * responses + y]; }

  std::vector<sampled_pair> sample_pairs(std::size_t n, std::mt19937_64& rng) const {
    std::uniform_int_distribution<int> px(0, prompts - 1), py(0, responses - 1), pz(0, responses - 2);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<sampled_pair> out(n);
    for (auto& s : out) {
      const int x = px(rng), a = py(rng);
      int b = pz(rng);
      if (b >= a) ++b;
      const double p_a = 1.0 / (1.0 + std::exp(-(r(x, a) - r(x, b))));
      const bool a_wins = u(rng) < p_a;
      s = {x, a_wins ? a : b, a_wins ? b : a};
    }
    return out;
  }

  // log π*(y|x) for every (x, y) given the reference log-probs (X·K): log π_ref + shift, normalized.
  std::vector<double> optimum(const std::vector<float>& ref_logp, const std::vector<double>& shift) const {
    std::vector<double> out(ref_logp.size());
    for (int x = 0; x < prompts; ++x) {
      double mx = -INFINITY;
      for (int y = 0; y < responses; ++y) {
        const std::size_t i = std::size_t(x) * responses + y;
        out[i] = double(ref_logp[i]) + shift[i];
        mx = std::max(mx, out[i]);
      }
      double s = 0.0;
      for (int y = 0; y < responses; ++y) s += std::exp(out[std::size_t(x) * responses + y] - mx);
      const double lse = mx + std::log(s);
      for (int y = 0; y < responses; ++y) out[std::size_t(x) * responses + y] -= lse;
    }
    return out;
  }
  std::vector<double> dpo_optimum(const std::vector<float>& ref_logp, double beta) const {
    std::vector<double> shift(reward.size());
    for (std::size_t i = 0; i < shift.size(); ++i) shift[i] = reward[i] / beta;
    return optimum(ref_logp, shift);
  }
  std::vector<double> ipo_optimum(const std::vector<float>& ref_logp, double tau) const {
    std::vector<double> shift(reward.size());
    for (int x = 0; x < prompts; ++x)
      for (int y = 0; y < responses; ++y) {
        double s = 0.0;
        for (int z = 0; z < responses; ++z) s += 1.0 / (1.0 + std::exp(-(r(x, y) - r(x, z))));
        shift[std::size_t(x) * responses + y] = s / double(responses) / tau;
      }
    return optimum(ref_logp, shift);
  }

  // mean over prompts of KL(p ‖ q), both given as log-probs (X·K).
  double mean_kl(const std::vector<double>& logp, const std::vector<float>& logq) const {
    double kl = 0.0;
    for (std::size_t i = 0; i < logp.size(); ++i) kl += std::exp(logp[i]) * (logp[i] - double(logq[i]));
    return kl / double(prompts);
  }

  // The model input of a list of pairs: chosen sequences first, then rejected.
  static log_linear_input input_of(const std::vector<sampled_pair>& pairs) {
    log_linear_input in;
    const std::size_t n = pairs.size();
    in.prompt.resize(2 * n);
    in.response.resize(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
      in.prompt[i] = in.prompt[n + i] = pairs[i].prompt;
      in.response[i] = pairs[i].chosen;
      in.response[n + i] = pairs[i].rejected;
    }
    return in;
  }
};

} // namespace prefopt::models
