// prefopt/losses/any_loss.hpp — a loss chosen at run time from TRL-style settings.
//
// The compile-time composition (`0.8 * sigmoid{} + 0.2 * bco_pair{}`) is what C++ users write;
// configuration files and the command line name losses by TRL's loss_type strings instead.
// any_loss builds the same concrete loss types from loss_settings (reflected, so run.json reads
// it) and evaluates them through one virtual call per term and batch — nothing per pair.
//   type: ["sigmoid"] | several TRL names with weights (a mixture); f_divergence_type and
//   use_weighting wrap every term as TRL does; constraints apply to the whole loss.
// Names: sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, sppo_hard, aot, aot_unpaired,
// apo_zero, apo_down, discopop, sigmoid_norm, sft, probabilistic, simpo, cpo, orpo.
#pragma once

#include <boost/hana/define_struct.hpp>
#include <memory>
#include <string>
#include <vector>

#include "prefopt/losses.hpp"

namespace prefopt::losses {

struct constraint_settings {
  BOOST_HANA_DEFINE_STRUCT(constraint_settings,
    (std::string, type),                       // chosen_floor, length_difference, pair_cost
    (double, lambda),
    (double, bound),
    (double, rate));                           // > 0: dual ascent toward bound
};

struct loss_settings {
  BOOST_HANA_DEFINE_STRUCT(loss_settings,
    (std::vector<std::string>, type),          // TRL loss_type names; several = a weighted mixture
    (std::vector<double>, weights),            // TRL loss_weights (default 1 each)
    (double, beta),
    (double, label_smoothing),                 // robust, exo_pair, aot*, probabilistic, simpo, cpo
    (bool, ipo_normalize_by_length),
    (double, simpo_gamma),
    (double, cpo_alpha),
    (double, discopop_tau),
    (std::string, label_source),               // probabilistic: constant, column, scores
    (double, score_temperature),
    (std::string, f_divergence_type),          // reverse_kl, forward_kl, js_divergence, alpha_divergence
    (double, f_alpha_divergence_coef),
    (bool, use_weighting),                     // WPO
    (std::optional<double>, ld_alpha),         // LD-DPO (applied by the model; carried here for configs)
    (std::vector<constraint_settings>, constraints),
    (double, desirable_weight),                // kto: λ_D
    (double, undesirable_weight));             // kto: λ_U
};

inline constraint_settings default_for(std::type_identity<constraint_settings>) { return {"", 1.0, 0.0, 0.0}; }
inline loss_settings default_for(std::type_identity<loss_settings>) {
  return {{"sigmoid"}, {}, 0.1, 0.0, true, 0.5, 1.0, 0.05, "constant", 1.0, "reverse_kl", 0.5, false, std::nullopt, {}, 1.0, 1.0};
}

class any_loss {
public:
  static constexpr std::string_view name = "any";

  explicit any_loss(const loss_settings& s) : settings_(s) {
    if (s.type.empty()) throw config_error("loss: field 'type'", "name at least one loss");
    if (!s.weights.empty() && s.weights.size() != s.type.size())
      throw config_error("loss: field 'weights'", "one weight per loss type");
    for (std::size_t i = 0; i < s.type.size(); ++i)
      terms_.push_back({s.weights.empty() ? 1.0 : s.weights[i], make_term(s.type[i], s)});
    for (const auto& c : s.constraints) {
      if (c.type != "chosen_floor" && c.type != "length_difference" && c.type != "pair_cost")
        throw config_error("loss: field 'constraints.type'", "'" + c.type + "' is not one of chosen_floor, length_difference, pair_cost");
      if (c.type != "pair_cost" && !terms_.front().second->scores_based)
        throw config_error("loss: field 'constraints'", "a margin constraint (" + c.type +
                                                            ") needs score-based losses (sigmoid, ipo, hinge, robust, ...)");
    }
    constraints_ = s.constraints;
  }

  unsigned required_columns() const {
    unsigned c = 0;
    for (const auto& t : terms_) c |= t.second->columns();
    for (const auto& k : constraints_) c |= k.type == "pair_cost" ? columns::cost | columns::reference
                                          : k.type == "length_difference" ? columns::token_counts : columns::reference;
    return c;
  }
  void validate() const {
    for (const auto& t : terms_) {
      t.second->validate();
      if (!(t.first >= 0.0)) detail::bad_hyperparameter("mixture", "weights", t.first, "must be >= 0");
    }
    for (const auto& k : constraints_) {
      detail::require_nonnegative(k.type, "lambda", k.lambda);
      detail::require_nonnegative(k.type, "rate", k.rate);
    }
  }
  double reward_beta() const { return settings_.type.size() == 1 && settings_.type[0] == "sft" ? 1.0 : settings_.beta; }
  bool is_elementwise() const {
    for (const auto& t : terms_)
      if (!t.second->elementwise) return false;
    return true;
  }
  bool reference_free() const {
    for (const auto& t : terms_)
      if (!t.second->reference_free) return false;
    return constraints_.empty();
  }
  const loss_settings& settings() const { return settings_; }

  template <class T>
    requires std::same_as<T, double>
  void batch(const pair_batch<T>& b, const batch_context<T>& ctx, std::span<T> per_pair, std::span<T> d_chosen,
             std::span<T> d_rejected) const {
    const std::size_t n = b.size();
    std::vector<double> p(n), dc(n), dr(n);
    for (std::size_t i = 0; i < n; ++i) per_pair[i] = d_chosen[i] = d_rejected[i] = 0.0;
    for (const auto& [w, t] : terms_) {
      if (constraints_.empty()) t->batch(b, ctx, p, dc, dr);
      else t->constrained_batch(b, ctx, constraints_, p, dc, dr);
      for (std::size_t i = 0; i < n; ++i) {
        per_pair[i] += w * p[i];
        d_chosen[i] += w * dc[i];
        d_rejected[i] += w * dr[i];
      }
    }
  }

  void add_metrics(const pair_batch<double>& b, std::map<std::string, double>& m) const {
    if (terms_.size() > 1 && b.size() > 0) {
      const batch_context<double> ctx = context_of(b);
      std::vector<double> p(b.size()), dc(b.size()), dr(b.size());
      for (const auto& [w, t] : terms_) {
        t->batch(b, ctx, p, dc, dr);
        double s = 0.0;
        for (double v : p) s += v;
        m["loss/" + t->name] = s / double(b.size());
      }
    }
    for (const auto& t : terms_) t.second->metrics(b, m);
    const batch_context<double> ctx = context_of(b);
    for (const auto& k : constraints_) {
      double s = 0.0;
      for (std::size_t i = 0; i < b.size(); ++i) s += g_of(k, input_of(b, i, ctx)).value;
      m["constraints/" + k.type] = b.size() ? s / double(b.size()) : 0.0;
      m["lambdas/" + k.type] = k.lambda;
    }
  }

  // Dual ascent: λ ← max(0, λ + η(mean g − b)) for constraints with rate > 0.
  void update(const pair_batch<double>& b) {
    if (b.size() == 0) return;
    const batch_context<double> ctx = context_of(b);
    for (auto& k : constraints_) {
      if (k.rate <= 0.0) continue;
      double s = 0.0;
      for (std::size_t i = 0; i < b.size(); ++i) s += g_of(k, input_of(b, i, ctx)).value;
      k.lambda = std::max(0.0, k.lambda + k.rate * (s / double(b.size()) - k.bound));
    }
  }
  const std::vector<constraint_settings>& constraints() const { return constraints_; }
  // The multipliers, for checkpoints.
  std::vector<double> state() const {
    std::vector<double> s;
    for (const auto& k : constraints_) s.push_back(k.lambda);
    return s;
  }
  void set_state(const std::vector<double>& s) {
    if (s.size() != constraints_.size())
      throw format_error("trainer_state.json: field 'loss_state'", "holds " + std::to_string(s.size()) + " multipliers for " +
                                                                       std::to_string(constraints_.size()) + " constraints");
    for (std::size_t i = 0; i < s.size(); ++i) constraints_[i].lambda = s[i];
  }

private:
  static pair_output<double> g_of(const constraint_settings& k, const pair_input<double>& x) {
    if (k.type == "chosen_floor") return chosen_floor{}.g(x);
    if (k.type == "length_difference") return length_difference{}.g(x);
    return pair_cost{}.g(x);
  }

  struct term_base {
    std::string name;
    bool elementwise = true, scores_based = false, reference_free = false;
    virtual ~term_base() = default;
    virtual unsigned columns() const = 0;
    virtual void validate() const = 0;
    virtual void batch(const pair_batch<double>&, const batch_context<double>&, std::vector<double>&, std::vector<double>&,
                       std::vector<double>&) const = 0;
    virtual void constrained_batch(const pair_batch<double>&, const batch_context<double>&,
                                   const std::vector<constraint_settings>&, std::vector<double>&, std::vector<double>&,
                                   std::vector<double>&) const = 0;
    virtual void metrics(const pair_batch<double>&, std::map<std::string, double>&) const = 0;
  };

  template <class L> struct term final : term_base {
    L loss;
    explicit term(L l, std::string n) : loss(std::move(l)) {
      name = std::move(n);
      elementwise = ElementwiseLoss<L>;
      scores_based = ScoreLoss<L>;
      reference_free = reference_free_v<L>;
    }
    unsigned columns() const override { return loss.required_columns(); }
    void validate() const override { loss.validate(); }
    void batch(const pair_batch<double>& b, const batch_context<double>& ctx, std::vector<double>& p, std::vector<double>& dc,
               std::vector<double>& dr) const override {
      prefopt::detail::sum_gradient(loss, b, ctx, std::span<double>(p), std::span<double>(dc), std::span<double>(dr));
    }
    // The constrained form (see constrained.hpp), with the constraints chosen at run time.
    void constrained_batch(const pair_batch<double>& b, const batch_context<double>& ctx,
                           const std::vector<constraint_settings>& ks, std::vector<double>& p, std::vector<double>& dc,
                           std::vector<double>& dr) const override {
      if constexpr (ElementwiseLoss<L>) {
        for (std::size_t i = 0; i < b.size(); ++i) {
          const pair_input<double> x = input_of(b, i, ctx);
          double shift = 0, shift_c = 0, shift_r = 0, add = 0, add_c = 0, add_r = 0;
          for (const auto& k : ks) {
            const pair_output<double> g = g_of(k, x);
            if (k.type == "pair_cost") {
              add += k.lambda * (g.value - k.bound);
              add_c += k.lambda * g.d_chosen;
              add_r += k.lambda * g.d_rejected;
            } else {
              shift += k.lambda * g.value;
              shift_c += k.lambda * g.d_chosen;
              shift_r += k.lambda * g.d_rejected;
            }
          }
          pair_output<double> o;
          if constexpr (ScoreLoss<L>) {
            o = loss.scores(x.pc - x.rc - shift, x.pr - x.rr, x);
            const double dw = o.d_chosen;
            o.d_chosen = dw * (1.0 - shift_c);
            o.d_rejected -= dw * shift_r;
          } else {
            o = detail::pair_of(loss, x);
          }
          p[i] = o.value + add;
          dc[i] = o.d_chosen + add_c;
          dr[i] = o.d_rejected + add_r;
        }
      } else {
        throw config_error("loss: field 'constraints'", "constraints apply to pointwise losses; '" + name + "' couples the batch");
      }
    }
    void metrics(const pair_batch<double>& b, std::map<std::string, double>& m) const override {
      if constexpr (requires { loss.add_metrics(b, m); }) loss.add_metrics(b, m);
    }
  };

  template <class L> std::shared_ptr<const term_base> wrap(L l, const std::string& n, const loss_settings& s) {
    const std::string& f = s.f_divergence_type;
    if (f != "reverse_kl") {
      if constexpr (ScoreLoss<L>) {
        const divergence d = f == "forward_kl" ? divergence::forward_kl
                             : f == "js_divergence" ? divergence::js
                             : f == "alpha_divergence" ? divergence::alpha
                                                       : throw config_error("loss: field 'f_divergence_type'",
                                                                            "'" + f + "' is not one of reverse_kl, forward_kl, js_divergence, alpha_divergence");
        return wrap_weighting(f_divergence<L>{l, d, s.f_alpha_divergence_coef}, n, s);
      } else {
        throw config_error("loss: field 'f_divergence_type'",
                           "'" + n + "' has no f-divergence form (only sigmoid, sigmoid_norm, hinge, ipo, exo_pair, robust, discopop, probabilistic)");
      }
    }
    return wrap_weighting(std::move(l), n, s);
  }
  template <class L> std::shared_ptr<const term_base> wrap_weighting(L l, const std::string& n, const loss_settings& s) {
    if (s.use_weighting) {
      if constexpr (ElementwiseLoss<L>) return std::make_shared<term<weighted<L>>>(weighted<L>{l}, n);
      else throw config_error("loss: field 'use_weighting'", "WPO weighting needs pointwise losses; '" + n + "' couples the batch");
    }
    return std::make_shared<term<L>>(std::move(l), n);
  }

  std::shared_ptr<const term_base> make_term(const std::string& n, const loss_settings& s) {
    const double b = s.beta, e = s.label_smoothing;
    if (n == "sigmoid") return wrap(sigmoid{b}, n, s);
    if (n == "hinge") return wrap(hinge{b}, n, s);
    if (n == "ipo") return wrap(ipo{b, s.ipo_normalize_by_length}, n, s);
    if (n == "exo_pair") return wrap(exo_pair{b, e == 0.0 ? 1e-3 : e}, n, s);
    if (n == "nca_pair") return wrap(nca_pair{b}, n, s);
    if (n == "robust") return wrap(robust{b, e}, n, s);
    if (n == "bco_pair") return wrap(bco_pair{b}, n, s);
    if (n == "sppo_hard") return wrap(sppo_hard{b}, n, s);
    if (n == "aot") return wrap(aot{b, e}, n, s);
    if (n == "aot_unpaired") return wrap(aot_unpaired{b, e}, n, s);
    if (n == "apo_zero") return wrap(apo_zero{b}, n, s);
    if (n == "apo_down") return wrap(apo_down{b}, n, s);
    if (n == "discopop") return wrap(discopop{b, s.discopop_tau}, n, s);
    if (n == "sigmoid_norm") return wrap(sigmoid_norm{b}, n, s);
    if (n == "sft") return wrap(sft{}, n, s);
    if (n == "simpo") return wrap(simpo{b, s.simpo_gamma, e}, n, s);
    if (n == "cpo") return wrap(cpo{b, s.cpo_alpha, e}, n, s);
    if (n == "orpo") return wrap(orpo{b}, n, s);
    if (n == "probabilistic") {
      const label_source src = s.label_source == "column"   ? label_source::column
                               : s.label_source == "scores" ? label_source::scores
                               : s.label_source == "constant"
                                   ? label_source::constant
                                   : throw config_error("loss: field 'label_source'", "'" + s.label_source + "' is not one of constant, column, scores");
      return wrap(probabilistic{b, e, src, s.score_temperature}, n, s);
    }
    if (n == "kto" || n == "apo_zero_unpaired")
      throw config_error("loss: field 'type'", "'" + n + "' trains on unpaired examples; give it alone (prefopt train then reads the data as unpaired)");
    throw config_error("loss: field 'type'", "unknown loss '" + n +
                                                 "' (sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, sppo_hard, aot, "
                                                 "aot_unpaired, apo_zero, apo_down, discopop, sigmoid_norm, sft, probabilistic, simpo, cpo, orpo)");
  }

  loss_settings settings_;
  std::vector<std::pair<double, std::shared_ptr<const term_base>>> terms_;
  std::vector<constraint_settings> constraints_;
};

} // namespace prefopt::losses
