// Activation checkpointing on the cuda backend: log-probs and every gradient bit-equal with and
// without it (tests/models/checkpointing_test.cpp runs the same on the CPU backends) on the golden
// GPT-2, Llama and Qwen2 checkpoints, full and LoRA with adapter dropout on. The backend's kernels
// and cuBLAS calls are deterministic for a fixed shape (no atomics), so the recompute reproduces
// the kept activations exactly. Runs only where a GPU is visible.
#include "cuda/support.hpp"

#include <cstring>

#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "support/data.hpp"

using namespace prefopt;
using backends::cuda;

namespace {

const std::vector<models::tokenized_pair> pairs{{{1, 2, 3, 4}, {5, 6, 7}, {8, 9}},
                                                {{10, 11}, {12, 13, 14, 15}, {16, 17, 18}},
                                                {{19, 20, 21}, {22}, {23, 24, 25, 26, 27}}};

template <class M> std::pair<std::vector<double>, std::vector<float>> run(M& m, bool shared, bool checkpointing,
                                                                          std::optional<std::uint64_t> seed) {
  m.set_gradient_checkpointing(checkpointing);
  m.zero_grad();
  models::sequence_logps out;
  m.forward(models::pack_pairs(pairs, shared), out, {.dropout_seed = seed});
  std::vector<double> c(out.size());
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = 0.3 + 0.7 * double(i % 3) - 0.9 * double(i % 2);
  m.backward(std::span<const double>(c));
  std::vector<float> g(m.gradients().size());
  m.backend().download(m.gradients(), std::span<float>(g));
  return {out.logp, g};
}

template <class M> void check_bit_equal(M& m, std::optional<std::uint64_t> seed) {
  for (bool shared : {false, true}) {
    CAPTURE(shared);
    const auto plain = run(m, shared, false, seed), ckpt = run(m, shared, true, seed);
    CHECK(ckpt.first == plain.first);
    REQUIRE(ckpt.second.size() == plain.second.size());
    CHECK(std::memcmp(ckpt.second.data(), plain.second.data(), plain.second.size() * sizeof(float)) == 0);
  }
}

template <template <class> class Model> void golden(const std::string& arch, std::vector<std::string> targets) {
  auto m = models::from_pretrained<Model<cuda>>(cuda{}, test::data_path("models/" + arch));
  check_bit_equal(m, std::nullopt);
  models::lora<Model<cuda>> lm(std::move(m), {.r = 4, .alpha = 8.0, .dropout = 0.3, .target_modules = targets}, 5);
  std::vector<float> w(lm.parameters().size());
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = 0.05f * float(int(i % 17) - 8);  // B ≠ 0: every adapter weight has a gradient
  lm.backend().upload(std::span<const float>(w), lm.parameters());
  check_bit_equal(lm, 1234);
}

} // namespace

TEST_CASE("checkpointing on the GPU: GPT-2, full and LoRA with dropout, bit-equal") { golden<models::gpt2>("gpt2", {"c_attn", "c_proj"}); }
TEST_CASE("checkpointing on the GPU: Llama, full and LoRA with dropout, bit-equal") {
  golden<models::llama>("llama", {"q_proj", "v_proj", "o_proj", "gate_proj"});
}
TEST_CASE("checkpointing on the GPU: Qwen2, full and LoRA with dropout, bit-equal") {
  golden<models::llama>("qwen2", {"q_proj", "k_proj", "down_proj"});
}
