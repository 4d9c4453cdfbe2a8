// reference::initial_adapter (train/reference.hpp): a LoRA policy continued from an adapter has
// that adapter as its reference, as TRL's frozen "ref" copy — equal to the policy before training,
// unchanged while the policy trains, and the policy's trained values put back after each use.
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/train/reference_dynamic.hpp"
#include "support/golden_models.hpp"

namespace {
using namespace prefopt;
using B = backends::eigen;
using base = models::gpt2<B>;
using policy_t = models::lora<base>;

void randomize(policy_t& m, std::uint64_t seed) {
  std::vector<float> v(m.parameters().size());
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.05f);
  for (auto& x : v) x = n(rng);
  m.backend().upload(std::span<const float>(v), m.parameters());
}
std::vector<float> host(policy_t& m) {
  std::vector<float> v(m.parameters().size());
  m.backend().download(m.parameters(), std::span<float>(v));
  return v;
}
} // namespace

TEST_CASE("initial_adapter: the reference is the adapter training started from") {
  const test::reference_case rc("gpt2");
  policy_t policy(models::from_pretrained<base>(B{}, test::data_path("models/gpt2")),
                  models::lora_config{.r = 4, .alpha = 8.0, .target_modules = {"c_attn"}});
  randomize(policy, 1);  // a trained adapter (B ≠ 0), as a continued run loads it
  train::preference_batch<models::token_batch> b;
  b.sequences = models::pack_pairs(rc.pairs, false);
  b.pairs = rc.n();
  models::forward_options inference;
  inference.keep_activations = false;
  models::sequence_logps start;
  policy.forward(b.sequences, start, inference);

  using any_ref = train::reference::any<policy_t, base>;
  any_ref ref(train::reference::initial_adapter<policy_t>::of(policy));
  CHECK(ref.name() == "initial_adapter");
  std::vector<double> chosen, rejected;
  ref.compute(b, {}, chosen, rejected);
  REQUIRE(chosen.size() == rc.n());
  for (std::size_t i = 0; i < rc.n(); ++i) {  // step 0: reference = policy, so rewards are 0 at step 1
    CHECK(chosen[i] == start.logp[i]);
    CHECK(rejected[i] == start.logp[rc.n() + i]);
  }

  randomize(policy, 2);  // the policy trains on
  const auto trained = host(policy);
  std::vector<double> chosen2, rejected2;
  ref.compute(b, {}, chosen2, rejected2);
  CHECK(chosen2 == chosen);  // still the initial adapter
  CHECK(rejected2 == rejected);
  CHECK(host(policy) == trained);  // and the trained values are back
  models::sequence_logps now;
  policy.forward(b.sequences, now, inference);
  CHECK(now.logp[0] != start.logp[0]);

  // adapters off (the base) is a different reference once the adapter is not zero
  train::reference::adapter_disabled<policy_t> off{&policy};
  std::vector<double> base_chosen, base_rejected;
  off.compute(b, {}, base_chosen, base_rejected);
  CHECK(base_chosen[0] != chosen[0]);

  train::reference::initial_adapter<policy_t> unmade;
  CHECK_THROWS_AS(unmade.compute(b, {}, chosen, rejected), error);
}
