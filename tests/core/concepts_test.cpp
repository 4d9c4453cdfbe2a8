// Minimal user types model each of prefopt's concepts, as docs/models.md, docs/backends.md and
// docs/training.md show them ("copy this"); and the concepts reject what does not fit.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/losses.hpp"
#include "prefopt/models/concepts.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"

using namespace prefopt;

// A policy over K responses with one score each: π(y) = softmax(θ)_y.
template <Backend B> struct table_model {
  using backend_type = B;
  using input_type = std::vector<int>;
  static std::size_t input_sequences(const input_type& in) { return in.size(); }
  explicit table_model(int k) : theta_(std::size_t(k), 0.0f), grad_(std::size_t(k), 0.0f), slices_{{"theta", 0, {std::size_t(k)}}} {}
  double log_z() const {
    double s = 0.0;
    for (float t : theta_) s += std::exp(double(t));
    return std::log(s);
  }
  void forward(const input_type& in, models::sequence_logps& out, const models::forward_options&) {
    last_ = in;
    out.logp.clear();
    out.tokens.assign(in.size(), 1);
    for (int y : in) out.logp.push_back(double(theta_[std::size_t(y)]) - log_z());
  }
  void backward(std::span<const double> d) {
    const double lz = log_z();
    for (std::size_t s = 0; s < last_.size(); ++s)
      for (std::size_t k = 0; k < theta_.size(); ++k)
        grad_[k] += float(d[s] * ((int(k) == last_[s] ? 1.0 : 0.0) - std::exp(double(theta_[k]) - lz)));
  }
  void zero_grad() { std::fill(grad_.begin(), grad_.end(), 0.0f); }
  std::span<float> parameters() { return theta_; }
  std::span<float> gradients() { return grad_; }
  const std::vector<models::parameter_slice>& parameter_slices() const { return slices_; }
  B& backend() { return be_; }

  B be_{};
  std::vector<float> theta_, grad_;
  std::vector<models::parameter_slice> slices_;
  input_type last_;
};

// Plain gradient descent as a user writes it.
struct plain_gd {
  double lr = 0.1;
  template <Backend B> struct state {
    long steps = 0;
    std::vector<optim::state_view> buffers() { return {}; }
  };
  template <Backend B> state<B> make_state(B&, std::size_t) const { return {}; }
  void validate() const {}
  template <Backend B>
  void step(B& be, state<B>& st, std::span<float> p, std::span<const float> g, const std::vector<models::parameter_slice>&,
            double lr_now) const {
    be.axpy(float(-lr_now), g, p);
    ++st.steps;
  }
};

// A backend that changes one op of an existing one.
struct my_backend : backends::eigen {
  static constexpr std::string_view name = "mine";
  void gemm(const gemm_args& g, std::span<const float> a, std::span<const float> b, std::span<float> c) const {
    backends::eigen::gemm(g, a, b, c);
  }
};

static_assert(models::PolicyModel<table_model<backends::eigen>>);
static_assert(optim::Optimizer<plain_gd, backends::eigen>);
static_assert(optim::Optimizer<optim::adamw, backends::eigen>);
static_assert(Backend<my_backend> && backend_ops::transformer<my_backend>);
static_assert(!models::PolicyModel<int>);
static_assert(!losses::PreferenceLoss<optim::adamw>);
static_assert(!Backend<int>);

TEST_CASE("a user's model, optimizer and backend train together") {
  using M = table_model<my_backend>;
  M policy(4), ref(4);
  train::trainer<M, losses::sigmoid, plain_gd, train::reference::frozen<M>> t(policy, losses::sigmoid{.beta = 1.0},
                                                                               plain_gd{.lr = 0.5}, {&ref});
  // response 2 preferred over every other one
  train::preference_batch<std::vector<int>> b{{2, 2, 2, 0, 1, 3}, 3};
  double first = 0.0, last = 0.0;
  for (int i = 0; i < 50; ++i) {
    last = t.step(b).metrics.at("loss");
    if (i == 0) first = last;
  }
  CHECK(first == doctest::Approx(std::log(2.0)));
  CHECK(last < 0.1);
  CHECK(policy.theta_[2] > policy.theta_[0]);
}
