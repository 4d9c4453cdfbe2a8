// prefopt/losses/mixture.hpp — weighted sums of losses, composed at compile time.
//
//   L = Σ_k w_k·L_k        e.g. MPO (Wang et al., "Enhancing the Reasoning Ability of Multimodal
//                          LLMs via Mixed Preference Optimization", 2024) = 0.8·sigmoid + 0.2·bco_pair + 1·sft
// TRL spells this loss_type=[...] with loss_weights=[...]. In prefopt:
//   auto mpo = 0.8 * losses::sigmoid{} + 0.2 * losses::bco_pair{} + 1.0 * losses::sft{};
// The terms live in a boost::hana::tuple, so the composition costs nothing at run time and every
// term keeps its own type. If every term is pointwise the mixture is pointwise (any backend maps
// it); if one couples the batch, the mixture does too. Metrics add each term's mean loss as
// "loss/<name>".
#pragma once

#include <array>
#include <boost/hana/fold_left.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/length.hpp>
#include <boost/hana/range.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/unpack.hpp>
#include <boost/hana/zip.hpp>
#include <vector>

#include "prefopt/losses/common.hpp"

namespace prefopt::losses {

template <PreferenceLoss Loss> struct term {
  double weight = 1.0;
  Loss loss{};
};
// term{0.5, my_loss} deduces term<decltype(my_loss)>.
template <PreferenceLoss Loss> term(double, Loss) -> term<Loss>;

template <PreferenceLoss... Losses> struct mixture {
  static_assert(sizeof...(Losses) >= 1, "prefopt: a mixture needs at least one loss");
  boost::hana::tuple<term<Losses>...> terms;

  static constexpr std::string_view name = "mixture";
  static constexpr bool elementwise = (ElementwiseLoss<Losses> && ...);
  static constexpr bool reference_free = (reference_free_v<Losses> && ...);

  unsigned required_columns() const {
    unsigned c = 0;
    boost::hana::for_each(terms, [&](const auto& t) { c |= t.loss.required_columns(); });
    return c;
  }
  void validate() const {
    boost::hana::for_each(terms, [](const auto& t) {
      t.loss.validate();
      if (!(t.weight == t.weight) || t.weight < 0.0)
        detail::bad_hyperparameter(std::remove_cvref_t<decltype(t.loss)>::name, "weight", t.weight, "must be >= 0");
    });
  }
  // TRL has one β for all terms; the rewards/* metrics use the first term that has one.
  double reward_beta() const {
    double b = 0.0;
    boost::hana::for_each(terms, [&](const auto& t) {
      if (b == 0.0 && requires { t.loss.beta; }) b = losses::reward_beta(t.loss);
    });
    return b == 0.0 ? 1.0 : b;
  }

  template <class T>
  PREFOPT_HD pair_output<T> pair(const pair_input<T>& x) const
    requires elementwise
  {
    pair_output<T> sum{T(0), T(0), T(0)};
    detail::for_each_term(terms, [&](const auto& t) {
      const pair_output<T> o = detail::pair_of(t.loss, x);
      const T w = T(t.weight);
      sum.value += w * o.value;
      sum.d_chosen += w * o.d_chosen;
      sum.d_rejected += w * o.d_rejected;
    });
    return sum;
  }

  template <class T>
  void batch(const pair_batch<T>& b, const batch_context<T>& ctx, std::span<T> per_pair, std::span<T> d_chosen,
             std::span<T> d_rejected) const
    requires(!elementwise)
  {
    const std::size_t n = b.size();
    std::vector<T> p(n), dc(n), dr(n);
    for (std::size_t i = 0; i < n; ++i) per_pair[i] = d_chosen[i] = d_rejected[i] = T(0);
    boost::hana::for_each(terms, [&](const auto& t) {
      term_sum(t.loss, b, ctx, p, dc, dr);
      const T w = T(t.weight);
      for (std::size_t i = 0; i < n; ++i) {
        per_pair[i] += w * p[i];
        d_chosen[i] += w * dc[i];
        d_rejected[i] += w * dr[i];
      }
    });
  }

  template <class T> void add_metrics(const pair_batch<T>& b, std::map<std::string, double>& m) const {
    const std::size_t n = b.size();
    if (n == 0) return;
    const batch_context<T> c = context_of(b);
    std::vector<T> p(n), dc(n), dr(n);
    boost::hana::for_each(terms, [&](const auto& t) {
      term_sum(t.loss, b, c, p, dc, dr);
      double s = 0.0;
      for (const T& v : p) s += num::to_double(v);
      m["loss/" + std::string(std::remove_cvref_t<decltype(t.loss)>::name)] = s / double(n);
    });
  }

private:
  template <class L, class T>
  static void term_sum(const L& loss, const pair_batch<T>& b, const batch_context<T>& ctx, std::vector<T>& p,
                       std::vector<T>& dc, std::vector<T>& dr) {
    if constexpr (ElementwiseLoss<L>) {
      for (std::size_t i = 0; i < b.size(); ++i) {
        const pair_output<T> o = detail::pair_of(loss, input_of(b, i, ctx));
        p[i] = o.value;
        dc[i] = o.d_chosen;
        dr[i] = o.d_rejected;
      }
    } else {
      loss.batch(b, ctx, std::span<T>(p), std::span<T>(dc), std::span<T>(dr));
    }
  }
};

// `w * loss` is found by argument-dependent lookup for prefopt's own losses. For a loss declared
// in another namespace, bring the operator in (`using prefopt::losses::operator*;`) or start the
// sum with a term: `term{0.5, my_loss} + 0.5 * losses::sigmoid{}`.
template <PreferenceLoss L> term<L> operator*(double w, const L& loss) { return {w, loss}; }
template <PreferenceLoss A, PreferenceLoss B> mixture<A, B> operator+(const term<A>& a, const term<B>& b) {
  return {boost::hana::make_tuple(a, b)};
}
template <PreferenceLoss... A, PreferenceLoss B> mixture<A..., B> operator+(const mixture<A...>& m, const term<B>& b) {
  return {boost::hana::unpack(m.terms, [&](const auto&... t) { return boost::hana::make_tuple(t..., b); })};
}
// mix(term{0.8, sigmoid{}}, term{0.2, bco_pair{}}) — the same without operators.
template <PreferenceLoss... L> mixture<L...> mix(const term<L>&... t) { return {boost::hana::make_tuple(t...)}; }

} // namespace prefopt::losses
