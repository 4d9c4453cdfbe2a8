// A pair whose two rows keep different prompts (models::tokenized_pair::rejected_prompt, as TRL's
// keep_end truncation leaves them: data/collate.hpp). Expected values: the same model's log-probs
// of the two rows packed as ordinary pairs ({prompt, chosen, ·} for the chosen row,
// {rejected_prompt, ·, rejected} for the rejected one), in both layouts; the prefix-shared layout
// gives such a pair two rows, and a training step's gradient is the same in both layouts, with the
// fused head and without (training_args::fused_head).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/sgd.hpp"
#include "prefopt/train/reference.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/backends.hpp"
#include "support/tiny_transformer.hpp"

using namespace prefopt;

namespace {

std::vector<models::tokenized_pair> pairs_with_split() {
  std::vector<models::tokenized_pair> p = test::tiny_pairs();
  p.insert(p.begin() + 1, models::tokenized_pair{{30, 31, 32}, {33, 34}, {35, 36, 37, 38}, {29, 30, 31, 32}});
  p.push_back({{40}, {41, 42, 43}, {44}, {45, 46}});  // a one-token prompt (keep_end: a completion token)
  return p;
}

template <class M> std::vector<double> logps(M& m, const models::token_batch& b) {
  models::sequence_logps out;
  m.forward(b, out, {.keep_activations = false});
  return out.logp;
}

} // namespace

template <class M> void each_row_with_its_prompt(models::architecture arch) {
  M m(typename M::backend_type{}, test::tiny_transformer(arch, 2, 64));
  models::init_weights(m, 7, {.initializer_range = 0.2});
  const auto pairs = pairs_with_split();
  const std::size_t n = pairs.size();
  // Expected: every row as an ordinary pair's row.
  std::vector<models::tokenized_pair> chosen_rows, rejected_rows;
  for (const auto& p : pairs) {
    chosen_rows.push_back({p.prompt, p.chosen, p.chosen});
    rejected_rows.push_back({p.rejected_row_prompt(), p.rejected, p.rejected});
  }
  const auto want_c = logps(m, models::pack_pairs(chosen_rows, false));
  const auto want_r = logps(m, models::pack_pairs(rejected_rows, false));
  for (bool shared : {false, true}) {
    CAPTURE(shared);
    const models::token_batch b = models::pack_pairs(pairs, shared);
    // Prefix sharing: one row per ordinary pair, two per split pair.
    CHECK(b.rows() == int(shared ? n + 2 : 2 * n));
    const auto got = logps(m, b);
    REQUIRE(got.size() == 2 * n);
    for (std::size_t i = 0; i < n; ++i) {
      CAPTURE(i);
      CHECK(got[i] == doctest::Approx(want_c[i]).epsilon(1e-5));
      CHECK(got[n + i] == doctest::Approx(want_r[i]).epsilon(1e-5));
    }
    const auto tokens = b.completion_tokens();
    for (std::size_t i = 0; i < n; ++i) CHECK(tokens[n + i] == int(pairs[i].rejected.size()));
  }
}

TEST_CASE_TEMPLATE("a pair with two prompts: each row scored with its own prompt, in both layouts", B, PREFOPT_CPU_BACKENDS) {
  each_row_with_its_prompt<models::gpt2<B>>(models::architecture::gpt2);
  each_row_with_its_prompt<models::llama<B>>(models::architecture::llama);
}

TEST_CASE_TEMPLATE("a pair with two prompts: one DPO step, both layouts, fused head or not, the same gradient", B,
                   PREFOPT_CPU_BACKENDS) {
  using M = models::llama<B>;
  using batch_t = train::preference_batch<models::token_batch>;
  const auto pairs = pairs_with_split();
  std::vector<float> first;
  for (bool shared : {false, true})
    for (bool fused : {false, true}) {
      CAPTURE(shared);
      CAPTURE(fused);
      M m(B{}, test::tiny_transformer(models::architecture::llama, 2, 64));
      models::init_weights(m, 11, {.initializer_range = 0.2});
      M ref(B{}, test::tiny_transformer(models::architecture::llama, 2, 64));
      models::init_weights(ref, 12, {.initializer_range = 0.2});
      train::training_args args;
      args.max_grad_norm = 0.0;
      args.fused_head = fused;
      train::trainer<M, losses::sigmoid, optim::sgd, train::reference::frozen<M>> t(
          m, losses::sigmoid{.beta = 0.5}, optim::sgd{.lr = 0.1}, train::reference::frozen<M>{&ref}, args);
      const std::vector<batch_t> micro{{.sequences = models::pack_pairs(pairs, shared), .pairs = pairs.size()}};
      const auto r = t.step(std::span<const batch_t>(micro));
      REQUIRE(!r.skipped);
      std::vector<float> g(m.gradients().size());
      m.backend().download(m.gradients(), std::span<float>(g));
      if (first.empty()) {
        first = g;
        continue;
      }
      double big = 0.0, diff = 0.0;
      for (std::size_t i = 0; i < g.size(); ++i)
        big = std::max(big, double(std::abs(first[i]))), diff = std::max(diff, double(std::abs(g[i] - first[i])));
      CHECK(big > 0.0);
      CHECK(diff <= 1e-5 * big);
    }
}
