// prefopt/models/log_linear.hpp — a softmax policy over K responses per prompt, from features.
//
//   π_θ(y | x) = exp(θᵀφ(x, y)) / Σ_{y'} exp(θᵀφ(x, y')),   x ∈ {0..X−1}, y ∈ {0..K−1}, φ ∈ R^D
// The smallest model with a known answer: the KL-regularized optimum π* ∝ π_ref·exp(r/β) lies in
// the family whenever r(x, ·) − r(x, ·)' is in the span of the features, so DPO and IPO can be
// checked against the truth (see tests/models/log_linear_test.cpp and examples/01_dpo_log_linear).
// Each "sequence" is one response with one "token"; its log-prob is log π_θ(y | x).
// Forward/backward run entirely on backend ops (gemm, log_softmax_rows, gather, scatter_add).
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "prefopt/core/backend.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/models/concepts.hpp"

namespace prefopt::models {

// Sequences as (prompt, response) index pairs.
struct log_linear_input {
  std::vector<std::int32_t> prompt;
  std::vector<std::int32_t> response;
};

template <Backend B> class log_linear {
  static_assert(require_core_backend_ops<B>());

public:
  using backend_type = B;
  using input_type = log_linear_input;

  // features: X·K·D floats, φ(x, y) at ((x·K) + y)·D. theta: D floats (zeros when empty).
  log_linear(B backend, int prompts, int responses, int dims, std::span<const float> features,
             std::span<const float> theta = {})
      : be_(std::move(backend)), x_(prompts), k_(responses), d_(dims),
        phi_(be_.template allocate<float>(std::size_t(prompts) * responses * dims)),
        theta_(be_.template allocate<float>(std::size_t(dims))), grad_(be_.template allocate<float>(std::size_t(dims))),
        scores_(be_.template allocate<float>(std::size_t(prompts) * responses)),
        logp_(be_.template allocate<float>(std::size_t(prompts) * responses)),
        dlogp_(be_.template allocate<float>(std::size_t(prompts) * responses)) {
    if (prompts <= 0 || responses <= 1 || dims <= 0)
      throw shape_error("log_linear", "needs prompts ≥ 1, responses ≥ 2, dims ≥ 1");
    if (features.size() != phi_.size())
      throw shape_error("log_linear: features", "has " + std::to_string(features.size()) + " values, expected X·K·D = " +
                                                    std::to_string(phi_.size()));
    be_.upload(features, phi_.span());
    if (!theta.empty()) {
      if (theta.size() != std::size_t(dims)) throw shape_error("log_linear: theta", "must have D values");
      be_.upload(theta, theta_.span());
    }
    slices_.push_back({"theta", 0, {std::size_t(dims)}, true, true});
  }

  static std::size_t input_sequences(const input_type& in) { return in.prompt.size(); }
  // Completion tokens per sequence, known before any forward pass: one each.
  static std::vector<int> completion_tokens(const input_type& in) { return std::vector<int>(in.prompt.size(), 1); }
  int prompts() const { return x_; }
  int responses() const { return k_; }
  int dims() const { return d_; }

  // log π_θ(y | x) for every prompt and response (X·K, host), computed now.
  std::vector<float> all_logps() {
    compute_logp();
    std::vector<float> out(logp_.size());
    be_.download(logp_.span(), std::span<float>(out));
    return out;
  }

  void forward(const input_type& in, sequence_logps& out, const forward_options& opt = {}) {
    const std::size_t s = check(in);
    compute_logp();
    idx_ = be_.template allocate<std::int32_t>(s);
    std::vector<std::int32_t> flat(s);
    for (std::size_t i = 0; i < s; ++i) flat[i] = in.prompt[i] * k_ + in.response[i];
    be_.upload(std::span<const std::int32_t>(flat), idx_.span());
    auto picked = be_.template allocate<float>(s);
    be_.gather(logp_.span(), idx_.span(), picked.span());
    std::vector<float> host(s);
    be_.download(picked.span(), std::span<float>(host));
    out.logp.assign(host.begin(), host.end());
    out.tokens.assign(s, 1);
    out.wpo_aligned.clear();
    if (opt.wpo_weights) {
      std::vector<float> all(logp_.size());
      be_.download(logp_.span(), std::span<float>(all));
      out.wpo_aligned.resize(s);
      for (std::size_t i = 0; i < s; ++i) {
        double sq = 0.0;
        for (int y = 0; y < k_; ++y) sq += std::exp(2.0 * all[std::size_t(in.prompt[i]) * k_ + y]);
        out.wpo_aligned[i] = out.logp[i] - std::log(sq);
      }
    }
    has_activations_ = opt.keep_activations;
  }

  // d loss / d log π(y_s | x_s) for every sequence of the last forward → θ's gradient (accumulated).
  void backward(std::span<const double> d) {
    if (!has_activations_) throw error("log_linear::backward", "the last forward did not keep activations");
    if (d.size() != idx_.size()) throw shape_error("log_linear::backward", "one gradient per sequence expected");
    std::vector<float> df(d.begin(), d.end());
    auto dseq = be_.template allocate<float>(d.size());
    be_.upload(std::span<const float>(df), dseq.span());
    be_.fill(dlogp_.span(), 0.0f);
    be_.scatter_add(dseq.span(), idx_.span(), dlogp_.span());
    // d scores = d logp − softmax · Σ d logp (per prompt)
    be_.log_softmax_rows_backward(x_, k_, logp_.span(), dlogp_.span(), scores_.span());
    // grad θ += Φᵀ · d scores   ([D × XK] · [XK × 1])
    be_.gemm({.trans_a = true, .trans_b = false, .m = d_, .n = 1, .k = x_ * k_, .lda = d_, .ldb = 1, .ldc = 1,
              .alpha = 1.0f, .beta = 1.0f},
             phi_.span(), scores_.span(), grad_.span());
    has_activations_ = false;
  }

  void zero_grad() { be_.fill(grad_.span(), 0.0f); }
  std::span<float> parameters() { return theta_.span(); }
  std::span<float> gradients() { return grad_.span(); }
  const std::vector<parameter_slice>& parameter_slices() const { return slices_; }
  B& backend() { return be_; }

private:
  std::size_t check(const input_type& in) const {
    if (in.prompt.size() != in.response.size()) throw shape_error("log_linear_input", "prompt/response sizes differ");
    for (std::size_t i = 0; i < in.prompt.size(); ++i)
      if (in.prompt[i] < 0 || in.prompt[i] >= x_ || in.response[i] < 0 || in.response[i] >= k_)
        throw shape_error("log_linear_input: sequence " + std::to_string(i), "prompt or response index out of range");
    return in.prompt.size();
  }
  void compute_logp() {
    // scores = Φ · θ   ([XK × D] · [D × 1]), then log-softmax over each prompt's K responses
    be_.gemm({.trans_a = false, .trans_b = false, .m = x_ * k_, .n = 1, .k = d_, .lda = d_, .ldb = 1, .ldc = 1},
             phi_.span(), theta_.span(), scores_.span());
    be_.log_softmax_rows(x_, k_, scores_.span(), logp_.span());
  }

  B be_;
  int x_, k_, d_;
  typename B::template buffer<float> phi_, theta_, grad_, scores_, logp_, dlogp_;
  typename B::template buffer<std::int32_t> idx_;
  std::vector<parameter_slice> slices_;
  bool has_activations_ = false;
};

} // namespace prefopt::models
