// training.precision bf16 (core/bf16.hpp) against fp32: a 20-step DPO run (sigmoid loss, AdamW,
// frozen reference) on tiny random GPT-2 and Llama models, the eigen backend emulating bf16 matrix
// products and attention. The bf16 run's loss tracks the fp32 run's within a tolerance (below);
// the runs still differ (the rounding acts) and both learn (so the tolerance says something).
//
// The tolerance. The loss is −log σ(β·h), h the reference-adjusted margin, and |d loss / d h| ≤ 1,
// so |Δloss| ≤ β·|Δh|. bf16 rounds each matrix-product input by at most 2^-9 relative (fp32
// accumulation adds nothing comparable), which moves a token's log-prob by ≈ 2^-9·|its logits'
// spread| (a few nats here) — ≈ 10^-2 nats per token, partly cancelled in h because the reference
// is rounded alike, and random in sign across the 3-5 tokens of a completion; the 20 AdamW steps
// then start from slightly different gradients. We allow |Δloss| ≤ 0.01 per step (β = 0.5:
// |Δh| ≤ 0.02 nats), 1.4% of the starting loss log 2. Measured here (eigen, lr 3e-3): largest gap
// over the 20 steps 2.4e-4 (GPT-2) and 1.4e-3 (Llama) — the test prints them. Each run must also
// lower its loss by at least ten times the tolerance, so that tracking within it says something.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/clone.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/tiny_transformer.hpp"

using namespace prefopt;

namespace {

constexpr double tolerance = 0.01;

template <class Model> std::vector<double> dpo_losses(models::architecture arch, precision p, std::vector<float>* weights) {
  using trainer = train::trainer<Model, losses::sigmoid, optim::adamw, train::reference::frozen<Model>>;
  backends::eigen be;
  be.matmul_precision = p;
  Model m(be, test::tiny_transformer(arch, 2));
  models::init_weights(m, 21, {.initializer_range = 0.2});
  Model ref = models::clone(m);
  CHECK(ref.backend().matmul_precision == p);  // the reference computes as the policy does
  trainer t(m, losses::sigmoid{.beta = 0.5}, optim::adamw{.lr = 3e-3}, {&ref});
  const auto& pairs = test::tiny_pairs();
  const train::preference_batch<models::token_batch> batch{.sequences = models::pack_pairs(pairs, true),
                                                           .pairs = pairs.size()};
  std::vector<double> loss;
  for (int s = 0; s < 20; ++s) loss.push_back(t.step(batch).metrics.at("loss"));
  weights->resize(m.parameters().size());
  m.backend().download(m.parameters(), std::span<float>(*weights));
  return loss;
}

template <class Model> void check_tracks(models::architecture arch) {
  std::vector<float> w32, w16;
  const auto fp32 = dpo_losses<Model>(arch, precision::fp32, &w32);
  const auto bf16 = dpo_losses<Model>(arch, precision::bf16, &w16);
  REQUIRE(fp32.size() == 20);
  REQUIRE(bf16.size() == 20);
  double worst = 0.0;
  for (std::size_t s = 0; s < fp32.size(); ++s) {
    CAPTURE(s);
    CHECK(std::abs(bf16[s] - fp32[s]) <= tolerance);
    worst = std::max(worst, std::abs(bf16[s] - fp32[s]));
  }
  std::printf("bf16 vs fp32, %s: loss %.4f -> %.4f (fp32), %.4f -> %.4f (bf16), largest gap %.2e\n",
              arch == models::architecture::gpt2 ? "gpt2" : "llama", fp32.front(), fp32.back(), bf16.front(),
              bf16.back(), worst);
  // Step 0: policy = reference under the same precision, so both losses are log 2.
  CHECK(fp32.front() == doctest::Approx(std::log(2.0)).epsilon(1e-6));
  CHECK(bf16.front() == doctest::Approx(std::log(2.0)).epsilon(1e-6));
  CHECK(fp32.back() < fp32.front() - 10 * tolerance);
  CHECK(bf16.back() < bf16.front() - 10 * tolerance);
  CHECK(w16 != w32);  // the rounding acted
  for (float x : w16) REQUIRE(std::isfinite(x));
}

} // namespace

TEST_CASE("bf16: a 20-step DPO run on a tiny GPT-2 tracks the fp32 run's loss") {
  check_tracks<models::gpt2<backends::eigen>>(models::architecture::gpt2);
}

TEST_CASE("bf16: a 20-step DPO run on a tiny Llama (grouped-query attention) tracks the fp32 run's loss") {
  check_tracks<models::llama<backends::eigen>>(models::architecture::llama);
}

TEST_CASE("bf16: the master weights stay fp32 (not bf16 values) after an optimizer step") {
  using Model = models::gpt2<backends::eigen>;
  std::vector<float> w;
  dpo_losses<Model>(models::architecture::gpt2, precision::bf16, &w);
  std::size_t not_bf16 = 0;
  for (float x : w) not_bf16 += round_bf16(x) != x;
  CHECK(not_bf16 > w.size() / 2);  // AdamW updates of ≈ lr land between bf16 values
}
