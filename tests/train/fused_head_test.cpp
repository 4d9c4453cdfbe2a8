// The fused LM head in a trainer step (training_args::fused_head; models/lm_head.hpp fused(),
// detail/transformer_head.hpp). Expected values: the same step with fused_head = false (the head's
// forward, then its backward recomputing the logits) — loss and every metric (token metrics
// included) to 1e-6 relative, the whole flat gradient and the updated weights to 1e-5 of their
// largest magnitude (an SGD update). Head flops are counted by a backend that wraps gemm: the fused step must
// execute exactly reference forward + logits + dh (+ dW) over the scored rows, plus the recompute
// of pairs larger than a chunk alone (the fallback); the unfused step adds the recompute of every
// chunk but the first. Element-wise losses sigmoid, ipo, simpo, orpo, cpo, WPO, rpo (sigmoid + sft),
// LD-DPO; tiny random GPT-2 (tied head) and Llama (untied), the golden GPT-2 and Llama
// checkpoints; two-row and prefix-shared layouts; LoRA; 2 micro-batches; chunk sizes that force
// the fallback; aot (batch-coupled) takes today's path either way.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "prefopt/losses.hpp"
#include "prefopt/losses/any_loss.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/sgd.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/backends.hpp"
#include "support/data.hpp"
#include "support/golden_models.hpp"
#include "support/tiny_transformer.hpp"

using namespace prefopt;

namespace {

// A CPU backend that adds up the flops of the gemms with a vocabulary-sized dimension (the head's).
template <class B> struct counting : B {
  static inline int vocab = 0;
  static inline double head_flops = 0.0;
  void gemm(const gemm_args& g, std::span<const float> a, std::span<const float> b, std::span<float> c) const {
    if (g.m == vocab || g.n == vocab || g.k == vocab) head_flops += 2.0 * g.m * g.n * g.k;
    B::gemm(g, a, b, c);
  }
};

using batch_t = train::preference_batch<models::token_batch>;

std::vector<batch_t> batches(const std::vector<models::tokenized_pair>& p, bool shared, int micro) {
  if (micro == 1) return {{.sequences = models::pack_pairs(p, shared), .pairs = p.size()}};
  const std::size_t half = p.size() / 2;
  const std::vector<models::tokenized_pair> a(p.begin(), p.begin() + std::ptrdiff_t(half)), b(p.begin() + std::ptrdiff_t(half), p.end());
  return {{.sequences = models::pack_pairs(a, shared), .pairs = a.size()}, {.sequences = models::pack_pairs(b, shared), .pairs = b.size()}};
}

struct outcome {
  std::map<std::string, double> metrics;
  std::vector<float> grad, weights;
  double flops = 0.0;
};

template <class M, class Loss, class Ref>
outcome step_of(M& m, Loss loss, Ref ref, const std::vector<batch_t>& micro, bool fused, std::optional<double> ld) {
  using BE = typename M::backend_type;
  train::training_args args;
  args.max_grad_norm = 0.0;  // the gradient stays as backward left it
  args.fused_head = fused;
  args.ld_alpha = ld;
  train::trainer<M, Loss, optim::sgd, Ref> t(m, loss, optim::sgd{.lr = 0.1}, std::move(ref), args);
  BE::vocab = m.config().vocab_size;
  BE::head_flops = 0.0;
  outcome o;
  const auto r = t.step(std::span<const batch_t>(micro));
  REQUIRE(!r.skipped);
  o.metrics = r.metrics;
  o.flops = BE::head_flops;
  o.grad.resize(m.gradients().size());
  m.backend().download(m.gradients(), std::span<float>(o.grad));
  o.weights.resize(m.parameters().size());
  m.backend().download(m.parameters(), std::span<float>(o.weights));
  return o;
}

void close_vectors(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double big = 0.0, diff = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) big = std::max(big, double(std::abs(b[i]))), diff = std::max(diff, double(std::abs(a[i] - b[i])));
  CHECK(big > 0.0);
  CHECK(diff <= 1e-5 * big);
}

void same_step(const outcome& fused, const outcome& plain) {
  REQUIRE(fused.metrics.size() == plain.metrics.size());
  CHECK(plain.metrics.count("entropy") == 1);
  for (const auto& kv : plain.metrics) {
    const std::string& k = kv.first;
    const double v = kv.second;
    CAPTURE(k);
    REQUIRE(fused.metrics.count(k) == 1);
    CHECK(std::abs(fused.metrics.at(k) - v) <= 1e-6 * (1.0 + std::abs(v)));
  }
  close_vectors(fused.grad, plain.grad);
  close_vectors(fused.weights, plain.weights);
}

// Scored rows of each micro-batch and of each pair.
struct rows_of {
  std::vector<int> micro, pairs;
  explicit rows_of(const std::vector<batch_t>& mb) {
    for (const auto& b : mb) {
      micro.push_back(int(b.sequences.predict_from.size()));
      const auto t = b.sequences.completion_tokens();
      for (std::size_t i = 0; i < b.pairs; ++i) pairs.push_back(t[i] + t[b.pairs + i]);
    }
  }
  int total() const {
    int h = 0;
    for (int x : micro) h += x;
    return h;
  }
};

// Expected head flops: ref (0 or 2) + logits 2 + dh 2 + dW 2 (trainable head) per row·V·C, plus the
// rows recomputed: fused, those of pairs beyond a chunk; unfused, every micro-batch's beyond its first chunk.
void check_flops(const outcome& fused, const outcome& plain, const std::vector<batch_t>& mb, int chunk, double V, double C,
                 bool reference, bool head_trained) {
  const rows_of r(mb);
  const double base = double((reference ? 2 : 0) + 4 + (head_trained ? 2 : 0)) * r.total() * V * C;
  double fused_extra = 0.0, plain_extra = 0.0;
  for (int p : r.pairs) fused_extra += std::max(0, p - chunk);
  for (int m : r.micro) plain_extra += std::max(0, m - chunk);
  CHECK(fused.flops == base + 2.0 * fused_extra * V * C);
  CHECK(plain.flops == base + 2.0 * plain_extra * V * C);
  CHECK(fused.flops < plain.flops);
}

// Full fine-tuning: fused and unfused steps on identical fresh models (make()), each with a frozen
// reference (unless the loss is reference-free) of the same shape and other weights: with the policy
// itself as reference every reward would be 0 up to rounding, and rewards/accuracies a coin toss.
template <class M, class Loss, class Make>
void full_case(Make make, Loss loss, const std::vector<batch_t>& mb, int chunk, std::optional<double> ld = std::nullopt) {
  auto run = [&](bool fused) {
    M m = make();
    m.head().set_chunk_rows(chunk);
    if constexpr (losses::reference_free_v<Loss>) {
      return step_of(m, loss, train::reference::none{}, mb, fused, ld);
    } else {
      M ref = make();
      models::init_weights(ref, 99, {.initializer_range = 0.2});
      return step_of(m, loss, train::reference::frozen<M>{&ref}, mb, fused, ld);
    }
  };
  const outcome f = run(true), p = run(false);
  same_step(f, p);
  M probe = make();
  check_flops(f, p, mb, chunk, probe.config().vocab_size, probe.config().hidden, !losses::reference_free_v<Loss>, true);
}

template <class M> M tiny_model(models::architecture arch, std::uint64_t seed) {
  M m(typename M::backend_type{}, test::tiny_transformer(arch, 2, 64));
  models::init_weights(m, seed, {.initializer_range = 0.2});
  return m;
}

template <class M> void every_loss(models::architecture arch) {
  auto make = [&] { return tiny_model<M>(arch, 3); };
  const auto& pairs = test::tiny_pairs();  // pair rows 5, 7, 6
  auto each = [&](auto loss, int micro, int chunk, std::optional<double> ld = std::nullopt) {
    for (bool shared : {false, true}) {
      CAPTURE(shared);
      full_case<M>(make, loss, batches(pairs, shared, micro), chunk, ld);
    }
  };
  SUBCASE("sigmoid") { each(losses::sigmoid{.beta = 0.5}, 1, 8); }
  SUBCASE("ipo") { each(losses::ipo{.beta = 0.5}, 1, 8); }
  SUBCASE("simpo") { each(losses::simpo{.beta = 2.0, .gamma = 0.3}, 1, 8); }
  SUBCASE("orpo") { each(losses::orpo{.beta = 0.5}, 1, 8); }
  SUBCASE("cpo") { each(losses::cpo{.beta = 0.5}, 1, 8); }
  SUBCASE("wpo") { each(losses::wpo(losses::sigmoid{.beta = 0.5}), 1, 8); }
  SUBCASE("rpo_alpha = 0.7 (sigmoid + 0.7·sft)") { each(1.0 * losses::sigmoid{.beta = 0.5} + 0.7 * losses::sft{}, 1, 8); }
  SUBCASE("LD-DPO, ld_alpha = 0.4") { each(losses::sigmoid{.beta = 0.5}, 1, 8, 0.4); }
  SUBCASE("2 micro-batches") { each(losses::sigmoid{.beta = 0.5}, 2, 8); }
  SUBCASE("2 micro-batches, WPO and LD-DPO") { each(losses::wpo(losses::ipo{.beta = 0.5}), 2, 4, 0.6); }
  SUBCASE("chunk of 6 rows: the 7-row pair falls back to two passes") { each(losses::sigmoid{.beta = 0.5}, 1, 6); }
  SUBCASE("chunk of 13 rows: two pairs in one chunk") { each(losses::orpo{.beta = 0.5}, 1, 13); }
  SUBCASE("chunk of 2 rows: every pair falls back") { each(losses::simpo{.beta = 2.0}, 1, 2); }
  SUBCASE("prefopt train's run-time loss: sigmoid + 0.5·sft with WPO weights") {
    losses::loss_settings ls = losses::default_for(std::type_identity<losses::loss_settings>{});
    ls.type = {"sigmoid", "sft"}, ls.weights = {1.0, 0.5}, ls.beta = 0.5, ls.use_weighting = true;
    each(losses::any_loss(ls), 2, 6);
  }
}

} // namespace

TEST_CASE_TEMPLATE("fused head: tiny GPT-2 (tied head), every element-wise loss, both layouts", B, PREFOPT_CPU_BACKENDS) {
  every_loss<models::gpt2<counting<B>>>(models::architecture::gpt2);
}

TEST_CASE_TEMPLATE("fused head: tiny Llama (untied head), every element-wise loss, both layouts", B, PREFOPT_CPU_BACKENDS) {
  every_loss<models::llama<counting<B>>>(models::architecture::llama);
}

TEST_CASE_TEMPLATE("fused head: golden GPT-2 and Llama checkpoints, sigmoid, both layouts", B, PREFOPT_CPU_BACKENDS) {
  for (const char* arch : {"gpt2", "llama"}) {
    CAPTURE(arch);
    const test::reference_case rc(arch);
    int biggest = 0;
    for (const auto& p : rc.pairs) biggest = std::max(biggest, int(p.chosen.size() + p.rejected.size()));
    for (bool shared : {false, true}) {
      CAPTURE(shared);
      const auto mb = batches(rc.pairs, shared, 1);
      if (std::string(arch) == "gpt2") {
        using M = models::gpt2<counting<B>>;
        full_case<M>([&] { return models::from_pretrained<M>(counting<B>{}, test::data_path("models/gpt2")); },
                     losses::sigmoid{.beta = 0.1}, mb, biggest);
      } else {
        using M = models::llama<counting<B>>;
        full_case<M>([&] { return models::from_pretrained<M>(counting<B>{}, test::data_path("models/llama")); },
                     losses::ipo{.beta = 0.1}, mb, biggest);
      }
    }
  }
}

TEST_CASE_TEMPLATE("fused head: LoRA (frozen head, no dW) with the adapters-off reference", B, PREFOPT_CPU_BACKENDS) {
  using base = models::llama<counting<B>>;
  using M = models::lora<base>;
  for (bool shared : {false, true}) {
    CAPTURE(shared);
    const auto mb = batches(test::tiny_pairs(), shared, 2);
    auto run = [&](bool fused) {
      M lm(tiny_model<base>(models::architecture::llama, 4), {.r = 2, .alpha = 4.0, .target_modules = {"q_proj", "v_proj", "down_proj"}}, 5);
      test::randomize_trainable(lm, 6);
      lm.head().set_chunk_rows(6);
      return step_of(lm, losses::sigmoid{.beta = 0.5}, train::reference::adapter_disabled<M>{&lm}, mb, fused, std::nullopt);
    };
    const outcome f = run(true), p = run(false);
    same_step(f, p);
    const auto cfg = test::tiny_transformer(models::architecture::llama, 2, 64);
    check_flops(f, p, mb, 6, cfg.vocab_size, cfg.hidden, true, false);
  }
}

template <class M, class Loss> void same_path(Loss loss) {
  for (int micro : {1, 2}) {
    CAPTURE(micro);
    const auto mb = batches(test::tiny_pairs(), false, micro);
    auto run = [&](bool fused) {
      M m = tiny_model<M>(models::architecture::gpt2, 8), ref = tiny_model<M>(models::architecture::gpt2, 9);
      m.head().set_chunk_rows(6);
      return step_of(m, loss, train::reference::frozen<M>{&ref}, mb, fused, std::nullopt);
    };
    const outcome f = run(true), p = run(false);
    CHECK(f.flops > 0.0);
    CHECK(f.flops == p.flops);
    CHECK(f.grad == p.grad);
    CHECK(f.metrics == p.metrics);
  }
}

TEST_CASE_TEMPLATE("fused head: a batch-coupled loss (aot) takes today's path whatever fused_head says", B, PREFOPT_CPU_BACKENDS) {
  using M = models::gpt2<counting<B>>;
  SUBCASE("losses::aot") { same_path<M>(losses::aot{.beta = 0.5}); }
  SUBCASE("run-time loss: aot + ipo") {
    losses::loss_settings ls = losses::default_for(std::type_identity<losses::loss_settings>{});
    ls.type = {"aot", "ipo"}, ls.beta = 0.5;
    same_path<M>(losses::any_loss(ls));
  }
}

TEST_CASE("fused head: the model refuses a backward that does not follow its forward") {
  using B = backends::eigen;
  models::gpt2<B> m(B{}, test::tiny_transformer(models::architecture::gpt2));
  models::init_weights(m, 1, {.initializer_range = 0.2});
  const auto batch = models::pack_pairs(test::tiny_pairs(), false);
  models::sequence_logps out;
  int calls = 0;
  const models::gpt2<B>::head_gradient grad = [&](const models::sequence_logps&, std::size_t first, std::size_t count,
                                                   std::span<double> d) {
    ++calls;
    for (std::size_t i = first; i < first + count; ++i) d[i] = 0.5, d[3 + i] = -0.5;
  };
  m.zero_grad();
  CHECK_THROWS_AS(m.forward_fused(batch, out, {.keep_activations = false}, grad), error);
  m.forward_fused(batch, out, {}, grad);
  CHECK(calls == 1);  // 18 rows in one automatic chunk
  const std::vector<double> d(out.size(), 1.0);
  CHECK_THROWS_AS(m.backward(std::span<const double>(d)), error);
  m.backward_fused();
  CHECK_THROWS_AS(m.backward_fused(), error);
  m.forward(batch, out, {});
  CHECK_THROWS_AS(m.backward_fused(), error);
  models::token_batch odd = models::pack_pairs(test::tiny_pairs(), false);
  odd.sequences = 7;  // every index is valid, the count is odd
  CHECK_THROWS_AS(m.forward_fused(odd, out, {}, grad), shape_error);
}
