// prefopt/losses/constrained.hpp — a base loss under constraints, with fixed or dual-ascent multipliers.
//
//   L(θ, λ) = base(θ) + Σ_k λ_k·(g_k(θ) − b_k)           (additive constraints: a Lagrangian)
// or, for margin constraints, the base loss's chosen score is shifted by Σ_k λ_k·g_k before the
// loss is applied (how DPOP and R-DPO place their terms inside the sigmoid).
// Each constraint carries its multiplier: `lambda` (start value), `bound` b_k and `rate` η_k.
// rate = 0 keeps λ fixed (a penalty). rate > 0 makes it a Lagrange multiplier adapted by dual
// ascent after every optimizer step, on the batch mean of g_k:
//   λ_k ← max(0, λ_k + η_k·(mean g_k − b_k))       (update(batch); trainers call it)
// Shipped constraints (a user's own: the same members and g()):
//   chosen_floor       g = max(0, log π_ref(y_w) − log π_θ(y_w)); margin. DPOP (Pal et al.,
//                      "Smaug: Fixing Failure Modes of Preference Optimisation with DPO-Positive",
//                      2024, eq. 3): the chosen likelihood must not fall below the reference's.
//   length_difference  g = n_w − n_l; margin. R-DPO (Park et al., "Disentangling Length from
//                      Quality in Direct Preference Optimization", 2024, eq. 9) with λ = α/β.
//   pair_cost          g = c_i·(log π_θ(y_w) − log π_ref(y_w)), c_i the batch's per-pair cost;
//                      additive: bounds how much probability mass moves toward costly chosen
//                      responses (a safety budget, as in constrained RLHF).
// Metrics: constraints/<name> = mean g, lambdas/<name> = λ.
#pragma once

#include <boost/hana/for_each.hpp>
#include <boost/hana/tuple.hpp>
#include <string>

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

enum class placement { margin, additive };

struct chosen_floor {
  double lambda = 50.0, bound = 0.0, rate = 0.0;
  static constexpr std::string_view name = "chosen_floor";
  static constexpr placement where = placement::margin;
  unsigned required_columns() const { return columns::reference; }
  template <class T> PREFOPT_HD pair_output<T> g(const pair_input<T>& x) const {
    const T v = x.rc - x.pc;
    if (v > T(0)) return {v, T(-1), T(0)};
    return {T(0), T(0), T(0)};
  }
};

struct length_difference {
  double lambda = 0.0, bound = 0.0, rate = 0.0;
  static constexpr std::string_view name = "length_difference";
  static constexpr placement where = placement::margin;
  unsigned required_columns() const { return columns::token_counts; }
  template <class T> PREFOPT_HD pair_output<T> g(const pair_input<T>& x) const { return {x.nc - x.nr, T(0), T(0)}; }
};

struct pair_cost {
  double lambda = 1.0, bound = 0.0, rate = 0.0;
  static constexpr std::string_view name = "pair_cost";
  static constexpr placement where = placement::additive;
  unsigned required_columns() const { return columns::cost | columns::reference; }
  template <class T> PREFOPT_HD pair_output<T> g(const pair_input<T>& x) const {
    return {x.cost * (x.pc - x.rc), x.cost, T(0)};
  }
};

template <class C>
concept Constraint = requires(const C& c, const pair_input<double>& x) {
  { C::name } -> std::convertible_to<std::string_view>;
  { C::where } -> std::convertible_to<placement>;
  { c.g(x) } -> std::same_as<pair_output<double>>;
  { c.required_columns() } -> std::same_as<unsigned>;
  c.lambda;
  c.bound;
  c.rate;
};

template <PreferenceLoss Base, Constraint... C> struct constrained {
  static constexpr bool has_margin = ((C::where == placement::margin) || ...);
  static_assert(ElementwiseLoss<Base>, "prefopt: constrained<Base, ...> needs a pointwise or score-form base loss");
  static_assert(!has_margin || ScoreLoss<Base>,
                "prefopt: a margin constraint (chosen_floor, length_difference) shifts the chosen score, so the "
                "base loss must be a ScoreLoss (sigmoid, ipo, hinge, robust, ...)");
  Base base{};
  boost::hana::tuple<C...> constraints{};

  static constexpr std::string_view name = Base::name;
  unsigned required_columns() const {
    unsigned c = base.required_columns();
    boost::hana::for_each(constraints, [&](const auto& k) { c |= k.required_columns(); });
    return c;
  }
  void validate() const {
    base.validate();
    boost::hana::for_each(constraints, [](const auto& k) {
      using K = std::remove_cvref_t<decltype(k)>;
      detail::require_nonnegative(K::name, "lambda", k.lambda);
      detail::require_nonnegative(K::name, "rate", k.rate);
      if (!(k.bound == k.bound)) detail::bad_hyperparameter(K::name, "bound", k.bound, "must be a number");
    });
  }
  double reward_beta() const { return losses::reward_beta(base); }

  template <class T> PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const {
    T shift(0), shift_c(0), shift_r(0), add(0), add_c(0), add_r(0);
    detail::for_each_term(constraints, [&](const auto& k) {
      const pair_output<T> gv = k.g(x);
      const T l = T(k.lambda);
      // Each term is formed as a T before it is accumulated (not as a nested expression), so
      // expression-template scalars such as Eigen's AutoDiffScalar combine terms safely.
      const T v = std::remove_cvref_t<decltype(k)>::where == placement::margin ? T(l * gv.value)
                                                                                : T(l * (gv.value - T(k.bound)));
      const T vc = l * gv.d_chosen, vr = l * gv.d_rejected;
      if constexpr (std::remove_cvref_t<decltype(k)>::where == placement::margin) {
        shift += v;
        shift_c += vc;
        shift_r += vr;
      } else {
        add += v;
        add_c += vc;
        add_r += vr;
      }
    });
    pair_output<T> o;
    if constexpr (has_margin) {
      o = base.scores(T(x.pc - x.rc - shift), T(x.pr - x.rr), x);
      const T dw = o.d_chosen;
      o.d_chosen = dw * (T(1) - shift_c);
      o.d_rejected = o.d_rejected - dw * shift_r;
    } else {
      o = detail::pair_of(base, x);
    }
    return {o.value + add, o.d_chosen + add_c, o.d_rejected + add_r};
  }

  // Batch means of every g_k, in declaration order.
  template <class T> std::array<double, sizeof...(C)> constraint_means(const pair_batch<T>& b) const {
    std::array<double, sizeof...(C)> means{};
    const std::size_t n = b.size();
    if (n == 0) return means;
    const batch_context<T> ctx = context_of(b);
    std::size_t k = 0;
    boost::hana::for_each(constraints, [&](const auto& c) {
      double s = 0.0;
      for (std::size_t i = 0; i < n; ++i) s += num::to_double(c.g(input_of(b, i, ctx)).value);
      means[k++] = s / double(n);
    });
    return means;
  }

  // Dual ascent on the multipliers with rate > 0; call once per optimizer step with the full batch.
  template <class T> void update(const pair_batch<T>& b) {
    const auto means = constraint_means(b);
    std::size_t k = 0;
    boost::hana::for_each(constraints, [&](auto& c) {
      if (c.rate > 0.0) c.lambda = std::max(0.0, c.lambda + c.rate * (means[k] - c.bound));
      ++k;
    });
  }

  template <class T> void add_metrics(const pair_batch<T>& b, std::map<std::string, double>& m) const {
    const auto means = constraint_means(b);
    std::size_t k = 0;
    boost::hana::for_each(constraints, [&](const auto& c) {
      std::string key(std::remove_cvref_t<decltype(c)>::name);
      if (m.count("constraints/" + key)) {  // (appended piecewise: "_" + s trips g++ 12's -Wrestrict)
        key += '_';
        key += std::to_string(k);
      }
      m["constraints/" + key] = means[k];
      m["lambdas/" + key] = c.lambda;
      ++k;
    });
  }
};

// constrain(sigmoid{.beta = 0.1}, chosen_floor{.lambda = 50}) — deduces constrained<sigmoid, chosen_floor>.
template <PreferenceLoss Base, Constraint... C> constrained<Base, C...> constrain(Base base, C... c) {
  return {base, boost::hana::make_tuple(c...)};
}

} // namespace prefopt::losses
