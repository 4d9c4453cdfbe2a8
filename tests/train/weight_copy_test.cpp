// precision bf16's weight copy and stored norm outputs (core/bf16.hpp, "The weight copy", "Stored
// norm outputs") in DPO training: two trainer steps (sigmoid loss, AdamW) on the golden GPT-2 and
// Llama checkpoints, full fine-tuning (frozen reference) and LoRA (the adapters-off reference), the
// fused LM head on and off, gradient checkpointing on and off, LoRA with and without adapter
// dropout (0.1; the norm outputs then stay fp32 in the policy's training forward). With both (the
// default) and without them (set_weight_copy(false), set_activation_copy(false): every gemm rounds
// its inputs) every metric, the whole gradient and the updated weights agree bit for bit; the
// second step starts from the first step's update, so a stale copy would show. The counting
// backend confirms which path ran.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/backends.hpp"
#include "support/bf16_counting.hpp"
#include "support/data.hpp"
#include "support/golden_models.hpp"

using namespace prefopt;

namespace {

using batch_t = train::preference_batch<models::token_batch>;

struct outcome {
  std::vector<std::map<std::string, double>> metrics;
  std::vector<float> grad, weights;
  std::size_t conversions = 0, weight_gemms = 0, act_conversions = 0;
};

// The bf16 storage under test: the weight copy and the stored norm outputs on (or both off), with
// gradient checkpointing on or off, LoRA adapter dropout (then the trainer draws masks).
struct setting {
  bool stored = true, checkpointing = false;
  double dropout = 0.0;
};

template <class M, class Ref> outcome two_steps(M& m, Ref ref, const batch_t& batch, bool fused, double dropout) {
  using BE = typename M::backend_type;
  train::training_args args;
  args.fused_head = fused;
  args.disable_dropout = dropout == 0.0;
  train::trainer<M, losses::sigmoid, optim::adamw, Ref> t(m, losses::sigmoid{.beta = 0.1}, optim::adamw{.lr = 1e-2}, std::move(ref),
                                                          args);
  BE::reset(m.base_parameters());
  outcome o;
  for (int s = 0; s < 2; ++s) {
    const auto r = t.step(batch);
    REQUIRE(!r.skipped);
    o.metrics.push_back(r.metrics);
  }
  o.conversions = BE::conversions;
  o.weight_gemms = BE::weight_gemms;
  o.act_conversions = BE::act_conversions;
  o.grad.resize(m.gradients().size());
  m.backend().download(m.gradients(), std::span<float>(o.grad));
  o.weights.resize(m.base_parameters().size());
  m.backend().download(std::span<const float>(m.base_parameters()), std::span<float>(o.weights));
  if (m.parameters().data() != m.base_parameters().data()) {  // LoRA: the adapters too
    std::vector<float> a(m.parameters().size());
    m.backend().download(m.parameters(), std::span<float>(a));
    o.weights.insert(o.weights.end(), a.begin(), a.end());
  }
  return o;
}

void same(const outcome& on, const outcome& off) {
  CHECK(on.conversions > 0);  // the copy was made ...
  CHECK(on.weight_gemms == 0);  // ... and read by every product with a base weight
  CHECK(on.act_conversions > 0);  // norm outputs were kept as bf16 (with dropout: the reference's)
  CHECK(off.conversions == 0);
  CHECK(off.weight_gemms > 0);
  CHECK(off.act_conversions == 0);
  REQUIRE(on.metrics.size() == off.metrics.size());
  for (std::size_t s = 0; s < on.metrics.size(); ++s) {
    CAPTURE(s);
    CHECK(on.metrics[s] == off.metrics[s]);
  }
  CHECK(on.metrics[1].at("loss") != on.metrics[0].at("loss"));
  CHECK(on.grad == off.grad);
  CHECK(on.weights == off.weights);
}

template <class M> M load(const char* arch, const setting& s) {
  typename M::backend_type be;
  be.matmul_precision = precision::bf16;
  M m = models::from_pretrained<M>(be, test::data_path(std::string("models/") + arch));
  m.set_weight_copy(s.stored);
  m.set_activation_copy(s.stored);
  m.set_gradient_checkpointing(s.checkpointing);
  return m;
}

template <class M> void full(const char* arch, const batch_t& batch, bool fused, bool checkpointing) {
  auto run = [&](bool stored) {
    const setting s{.stored = stored, .checkpointing = checkpointing};
    M m = load<M>(arch, s), ref = load<M>(arch, s);
    return two_steps(m, train::reference::frozen<M>{&ref}, batch, fused, 0.0);
  };
  const outcome on = run(true), off = run(false);
  same(on, off);
}

template <class Base>
void lora(const char* arch, const batch_t& batch, bool fused, bool checkpointing, double dropout, std::vector<std::string> targets) {
  using M = models::lora<Base>;
  auto run = [&](bool stored) {
    const setting s{.stored = stored, .checkpointing = checkpointing, .dropout = dropout};
    M m(load<Base>(arch, s), {.r = 2, .alpha = 4.0, .dropout = dropout, .target_modules = targets}, 3);
    return two_steps(m, train::reference::adapter_disabled<M>{&m}, batch, fused, dropout);
  };
  const outcome on = run(true), off = run(false);
  same(on, off);
}

} // namespace

TEST_CASE_TEMPLATE("weight copy and stored norm outputs: bf16 DPO steps on the golden checkpoints equal per-call rounding bit for bit",
                   B, PREFOPT_CPU_BACKENDS) {
  using BE = test::bf16_counting<B>;
  for (const char* arch : {"gpt2", "llama"}) {
    const test::reference_case rc(arch);
    const batch_t batch{.sequences = models::pack_pairs(rc.pairs, false), .pairs = rc.pairs.size()};
    for (bool fused : {false, true})
      for (bool ckpt : {false, true}) {
        CAPTURE(arch);
        CAPTURE(fused);
        CAPTURE(ckpt);
        if (std::string(arch) == "gpt2") {
          full<models::gpt2<BE>>(arch, batch, fused, ckpt);
          for (double dropout : {0.0, 0.1}) lora<models::gpt2<BE>>(arch, batch, fused, ckpt, dropout, {"c_attn", "c_fc"});
        } else {
          full<models::llama<BE>>(arch, batch, fused, ckpt);
          for (double dropout : {0.0, 0.1})
            lora<models::llama<BE>>(arch, batch, fused, ckpt, dropout, {"q_proj", "v_proj", "up_proj", "down_proj"});
        }
      }
  }
}
