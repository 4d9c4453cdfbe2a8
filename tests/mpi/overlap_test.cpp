// The gradient all-reduce overlapped with backward equals the one after backward, bit for bit, on
// 2 ranks: the tiny GPT-2 trained 3 AdamW steps with training_args::overlap_reduce on and off
// (small buckets, so many of them start during backward), with one and with two local micro-batches
// (accumulation: only the last backward overlaps), for DPO (sigmoid), a batch-coupled loss (aot:
// two passes) and LoRA. Weights, gradients' effect and every metric must be identical.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/comm/mpi.hpp"
#include "prefopt/losses.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/data.hpp"

using namespace prefopt;
using B = backends::eigen;
using gpt2 = models::gpt2<B>;

namespace {
using batch = train::preference_batch<models::token_batch>;

// 8 pairs per step; this rank's `local` micro-batches of its 4.
std::vector<batch> share(int rank, std::size_t local, int step) {
  std::vector<models::tokenized_pair> all;
  for (int i = 0; i < 8; ++i) {
    const std::int32_t s = 1 + 3 * i + 29 * step;
    all.push_back({{s, s + 1, s + 2}, {s + 3, s + 4}, {s + 5, s + 6, s + 7}});
  }
  std::vector<batch> out;
  const std::size_t per = 4 / local;
  for (std::size_t k = 0; k < local; ++k) {
    const auto from = all.begin() + std::ptrdiff_t(4 * std::size_t(rank) + k * per);
    std::vector<models::tokenized_pair> p(from, from + std::ptrdiff_t(per));
    out.push_back({models::pack_pairs(p, false), p.size()});
  }
  return out;
}

template <class M> std::vector<float> host(M& m) {
  std::vector<float> w(m.parameters().size());
  m.backend().download(m.parameters(), std::span<float>(w));
  return w;
}

// 3 steps; returns the weights and appends every step's metrics.
template <class Loss, class M>
std::vector<float> train(M& policy, Loss loss, bool overlap, std::size_t local, std::vector<std::map<std::string, double>>& metrics) {
  comm::mpi world;
  auto ref = models::from_pretrained<gpt2>(B{}, test::data_path("models/gpt2"));
  train::training_args args{};
  args.overlap_reduce = overlap;
  args.reduce_bucket = 1000;  // ~37 buckets over the 37 152 parameters (LoRA: a few)
  args.weight_check_steps = 1;
  train::trainer<M, Loss, optim::adamw, train::reference::frozen<gpt2>, comm::mpi> t(policy, loss, optim::adamw{.lr = 1e-2},
                                                                                     {&ref}, args, world);
  for (int step = 0; step < 3; ++step) {
    const auto micro = share(world.rank(), local, step);
    metrics.push_back(t.step(std::span<const batch>(micro)).metrics);
  }
  return host(policy);
}

template <class Loss> void same(Loss loss, std::size_t local, bool lora) {
  std::vector<std::map<std::string, double>> ma, mb;
  std::vector<float> wa, wb;
  if (lora) {
    auto make = [] {
      return models::lora<gpt2>(models::from_pretrained<gpt2>(B{}, test::data_path("models/gpt2")),
                                {.r = 2, .alpha = 4.0, .target_modules = {"c_attn", "c_fc"}}, 5);
    };
    auto a = make(), b = make();
    wa = train(a, loss, true, local, ma);
    wb = train(b, loss, false, local, mb);
  } else {
    auto a = models::from_pretrained<gpt2>(B{}, test::data_path("models/gpt2"));
    auto b = models::from_pretrained<gpt2>(B{}, test::data_path("models/gpt2"));
    wa = train(a, loss, true, local, ma);
    wb = train(b, loss, false, local, mb);
  }
  REQUIRE(wa.size() == wb.size());
  CHECK(std::memcmp(wa.data(), wb.data(), wa.size() * sizeof(float)) == 0);
  CHECK(ma == mb);
  REQUIRE(ma.size() == 3);
  CHECK(ma.back().at("grad_norm") > 0.0);  // gradients flowed, so equality says something
}
} // namespace

TEST_CASE("overlapped bucket all-reduce == the all-reduce after backward, bit for bit, on 2 ranks") {
  comm::mpi world;
  REQUIRE(world.size() == 2);
  SUBCASE("sigmoid, one micro-batch per rank") { same(losses::sigmoid{.beta = 0.5}, 1, false); }
  SUBCASE("sigmoid, two micro-batches per rank (accumulation)") { same(losses::sigmoid{.beta = 0.5}, 2, false); }
  SUBCASE("aot (batch-coupled, two passes)") { same(losses::aot{.beta = 0.5}, 2, false); }
  SUBCASE("LoRA") { same(losses::sigmoid{.beta = 0.5}, 1, true); }
}
