// prefopt/losses/concepts.hpp — the contract every preference loss satisfies.
//
// A loss is one small aggregate type: hyperparameters as members (`beta` first), TRL's loss_type
// as `name`, and its value and gradient written by hand in one of three shapes:
//
//   PointwiseLoss  pair(x) -> {value, d value/d pc, d value/d pr} for one pair_input x.
//   ScoreLoss      scores(s_w, s_l, x) -> {value, d/d s_w, d/d s_l}: a loss of the chosen and
//                  rejected *scores*, by default the log-ratios s = log π_θ − log π_ref. Writing a
//                  loss this way lets with_divergence<> swap in an f-divergence score and
//                  constrained<> shift the margin. Every ScoreLoss is evaluated as a pointwise loss.
//   BatchLoss      batch(b, ctx, per_pair, d_chosen, d_rejected): losses that couple the pairs
//                  of a batch (aot sorts across it). Writes each pair's loss and the gradient of
//                  the *sum* of per-pair losses.
//
// Pointwise and score code is PREFOPT_HD scalar code templated on the scalar type, so it runs
// on the CPU, in CUDA kernels and on Eigen's AutoDiffScalar (the gradient tests).
// All shapes also provide:
//   static constexpr std::string_view name;   TRL's loss_type ("sigmoid", "ipo", ...)
//   unsigned required_columns() const;        prefopt::columns flags the loss reads
//   void validate() const;                    throws config_error for impossible hyperparameters
// Optional: `static constexpr bool reference_free` (see reference_free_v), `double beta` (used for the rewards/* metrics), `add_metrics(batch, metrics)`,
// `update(batch)` for losses with state that changes between steps (dual ascent): trainers call
// it once per optimizer step with the full batch.
#pragma once

#include <concepts>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "prefopt/losses/batch.hpp"

namespace prefopt::losses {

// Identity, hyperparameter check and the columns read — common to all shapes.
template <class L>
concept LossDescription = requires(const L& l) {
  { L::name } -> std::convertible_to<std::string_view>;  // TRL's loss_type
  { l.required_columns() } -> std::same_as<unsigned>;     // columns:: flags
  l.validate();                                           // throws config_error
};

template <class L>
concept PointwiseLoss = LossDescription<L> && requires(const L& l, const pair_input<double>& xd,
                                                       const pair_input<float>& xf) {
  { l.pair(xd) } -> std::same_as<pair_output<double>>;
  { l.pair(xf) } -> std::same_as<pair_output<float>>;
};

template <class L>
concept ScoreLoss = LossDescription<L> && requires(const L& l, const pair_input<double>& xd,
                                                   const pair_input<float>& xf, double d, float f) {
  { l.scores(d, d, xd) } -> std::same_as<pair_output<double>>;
  { l.scores(f, f, xf) } -> std::same_as<pair_output<float>>;
};

template <class L>
concept BatchLoss = LossDescription<L> && requires(const L& l, const pair_batch<double>& b,
                                                   const batch_context<double>& ctx, std::span<double> s) {
  l.batch(b, ctx, s, s, s);
};

// What trainers, evaluate() and combinators accept.
template <class L>
concept PreferenceLoss = PointwiseLoss<L> || ScoreLoss<L> || BatchLoss<L>;

// Losses whose every pair is independent (pointwise or score form): any backend maps them.
template <class L>
concept ElementwiseLoss = PointwiseLoss<L> || ScoreLoss<L>;

// Optional hooks.
template <class L>
concept HasMetrics = requires(const L& l, const pair_batch<double>& b, std::map<std::string, double>& m) {
  l.add_metrics(b, m);
};
template <class L>
concept StatefulLoss = requires(L& l, const pair_batch<double>& b) { l.update(b); };

// True for losses that never read reference log-probs (simpo, cpo, orpo, sft and mixtures of
// them): `static constexpr bool reference_free = true;` in the loss. Trainers use it to reject a
// reference-based loss paired with reference::none at compile time.
template <class L> inline constexpr bool reference_free_v = [] {
  if constexpr (requires { L::reference_free; }) return bool(L::reference_free);
  else return false;
}();

// The β the rewards/* metrics are scaled with: the loss's own, else 1.
template <class L> double reward_beta(const L& l) {
  if constexpr (requires { l.beta; }) return static_cast<double>(l.beta);
  else if constexpr (requires { l.reward_beta(); }) return l.reward_beta();
  else return 1.0;
}

namespace detail {
// One pair through a pointwise or score loss. The scores of a score loss are the log-ratios
// (reverse KL, i.e. standard DPO); with_divergence<> replaces them.
template <ElementwiseLoss L, class T> PREFOPT_HD pair_output<T> pair_of(const L& l, const pair_input<T>& x) {
  if constexpr (requires { l.pair(x); }) return l.pair(x);
  else return l.scores(T(x.pc - x.rc), T(x.pr - x.rr), x);
}
} // namespace detail

} // namespace prefopt::losses
