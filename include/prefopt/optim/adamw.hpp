// prefopt/optim/adamw.hpp — AdamW with decoupled weight decay and bias correction.
//
// Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019; the update is
// torch.optim.AdamW's (see core/backend.hpp, adamw_args). Defaults are Hugging Face's
// TrainingArguments/DPOConfig ones: lr 1e-6 (DPOConfig), betas (0.9, 0.999), eps 1e-8, weight
// decay 0. Weight decay skips slices marked weight_decay = false (biases, norm weights), and frozen
// slices (trainable = false) are not touched.
#pragma once

#include <cmath>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/optim/concepts.hpp"

namespace prefopt::optim {

struct adamw {
  double lr = 1e-6;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;

  template <Backend B> struct state {
    typename B::template buffer<float> m, v;  // torch names: exp_avg, exp_avg_sq
    long steps = 0;
    std::vector<state_view> buffers() { return {{"exp_avg", m.span()}, {"exp_avg_sq", v.span()}}; }
  };

  template <Backend B> state<B> make_state(B& be, std::size_t n) const {
    return {be.template allocate<float>(n), be.template allocate<float>(n), 0};
  }

  void validate() const {
    auto bad = [](const char* f, double v, const char* rule) {
      throw config_error(std::string("optimizer 'adamw': field '") + f + "'", "value " + std::to_string(v) + " " + rule);
    };
    if (!(lr >= 0.0)) bad("lr", lr, "must be >= 0");
    if (!(beta1 >= 0.0 && beta1 < 1.0)) bad("beta1", beta1, "must lie in [0, 1)");
    if (!(beta2 >= 0.0 && beta2 < 1.0)) bad("beta2", beta2, "must lie in [0, 1)");
    if (!(eps > 0.0)) bad("eps", eps, "must be > 0");
    if (!(weight_decay >= 0.0)) bad("weight_decay", weight_decay, "must be >= 0");
  }

  template <Backend B>
  void step(B& be, state<B>& st, std::span<float> params, std::span<const float> grads,
            const std::vector<models::parameter_slice>& slices, double lr_now) const {
    ++st.steps;
    adamw_args a;
    a.lr = float(lr_now);
    a.beta1 = float(beta1);
    a.beta2 = float(beta2);
    a.eps = float(eps);
    a.bias_correction1 = float(1.0 - std::pow(beta1, double(st.steps)));
    a.bias_correction2 = float(1.0 - std::pow(beta2, double(st.steps)));
    for (const auto& r : detail::runs_of(slices, params.size())) {
      a.weight_decay = r.decay ? float(weight_decay) : 0.0f;
      be.adamw_step(params.subspan(r.offset, r.size), grads.subspan(r.offset, r.size), st.m.span().subspan(r.offset, r.size),
                    st.v.span().subspan(r.offset, r.size), a);
    }
  }
};

} // namespace prefopt::optim
