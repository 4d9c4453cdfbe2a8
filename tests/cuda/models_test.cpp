// GPT-2, Llama and Qwen2 on the cuda backend: the Hugging Face parity of
// tests/models/transformer_parity_test.cpp (log-probs 1e-4 absolute, each gradient tensor 1e-3
// relative, with and without LoRA, with and without prefix sharing) and the same numbers as the
// eigen backend on the same checkpoint; then a short DPO run (AdamW, clipping, frozen reference)
// whose metrics and weight updates follow the eigen run's, and which after its first step
// reserves no more device memory. Runs only where a GPU is visible.
#include "cuda/support.hpp"

#include <filesystem>
#include <type_traits>
#include <fstream>
#include <nlohmann/json.hpp>

#include "prefopt/io/safetensors.hpp"
#include "prefopt/losses/evaluate.hpp"
#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/trainer.hpp"
#include "support/data.hpp"
#include "support/golden_models.hpp"

using namespace prefopt;
using test::dpo_step;
using test::reference_case;
using backends::cuda;
using backends::eigen;

namespace {

template <class Model> std::vector<float> grads_of(Model& m) {
  std::vector<float> h(m.gradients().size());
  m.backend().download(m.gradients(), std::span<float>(h));
  return h;
}

void check_logps(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(got[i] - want[i]) < 1e-4);
  }
}
// Each slice within 1e-3 relative (L2) of `want`.
void check_grads(const std::vector<float>& got, const std::vector<float>& want, const std::vector<models::parameter_slice>& slices) {
  REQUIRE(got.size() == want.size());
  for (const auto& s : slices) {
    double num = 0.0, den = 0.0;
    for (std::size_t i = s.offset; i < s.offset + s.size(); ++i) {
      num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
      den += double(want[i]) * want[i];
    }
    CAPTURE(s.name);
    CHECK(std::sqrt(num) / std::max(std::sqrt(den), 1e-12) < 1e-3);
  }
}
std::vector<float> file_grads(const std::filesystem::path& file, const std::vector<models::parameter_slice>& slices, std::size_t n) {
  const io::safetensors_file f(file);
  std::vector<float> g(n, 0.0f);
  for (const auto& s : slices) {
    const auto w = f.read_f32(s.name);
    REQUIRE(w.size() == s.size());
    std::copy(w.begin(), w.end(), g.begin() + std::ptrdiff_t(s.offset));
  }
  return g;
}

template <template <class> class Model> void parity(const std::string& arch) {
  const reference_case rc(arch);
  const auto dir = test::data_path("models/" + arch);
  auto g = models::from_pretrained<Model<cuda>>(cuda{}, dir);
  auto e = models::from_pretrained<Model<eigen>>(eigen{}, dir);
  for (bool shared : {false, true}) {
    CAPTURE(shared);
    const auto lg = dpo_step(g, rc, shared), le = dpo_step(e, rc, shared);
    check_logps(lg, rc.j["logps"].get<std::vector<double>>());
    check_logps(lg, le);
    const auto gg = grads_of(g);
    check_grads(gg, grads_of(e), g.parameter_slices());
    check_grads(gg, file_grads(dir / "grads.safetensors", g.parameter_slices(), gg.size()), g.parameter_slices());
  }
  const auto& L = rc.j["lora"];
  const models::lora_config opt{.r = L["r"].get<int>(), .alpha = L["alpha"].get<double>(),
                                 .target_modules = L["target_modules"].get<std::vector<std::string>>()};
  models::lora<Model<cuda>> lg(std::move(g), opt);
  models::lora<Model<eigen>> le(std::move(e), opt);
  lg.load_adapter(test::data_path("models/" + arch + "_lora"));
  le.load_adapter(test::data_path("models/" + arch + "_lora"));
  for (bool shared : {false, true}) {
    CAPTURE(shared);
    const auto a = dpo_step(lg, rc, shared), b = dpo_step(le, rc, shared);
    check_logps(a, L["logps"].get<std::vector<double>>());
    check_logps(a, b);
    const auto ga = grads_of(lg);
    check_grads(ga, grads_of(le), lg.parameter_slices());
    check_grads(ga, file_grads(test::data_path("models/" + arch + "_lora/grads.safetensors"), lg.parameter_slices(), ga.size()),
                lg.parameter_slices());
    models::sequence_logps off;
    lg.forward(models::pack_pairs(rc.pairs, shared), off, {.keep_activations = false, .adapters = false});
    check_logps(off.logp, L["adapters_disabled_logps"].get<std::vector<double>>());
  }
}

} // namespace

TEST_CASE("GPT-2 on the GPU matches Hugging Face and the eigen backend, with and without LoRA") {
  parity<models::gpt2>("gpt2");
}
TEST_CASE("Llama (GQA, untied head) on the GPU matches Hugging Face and the eigen backend") {
  parity<models::llama>("llama");
}
TEST_CASE("Qwen2 (q/k/v biases, tied head) on the GPU matches Hugging Face and the eigen backend") {
  parity<models::llama>("qwen2");
}

TEST_CASE("a short DPO run on the GPU follows the eigen run: metrics and weight updates over 4 AdamW steps") {
  const reference_case rc("gpt2");
  const auto dir = test::data_path("models/gpt2");
  auto run = [&](auto backend) {
    using B = decltype(backend);
    using model = models::gpt2<B>;
    auto policy = models::from_pretrained<model>(B{}, dir), ref = models::from_pretrained<model>(B{}, dir);
    std::vector<float> w0(policy.parameters().size());
    policy.backend().download(policy.parameters(), std::span<float>(w0));
    train::trainer<model, losses::sigmoid, optim::adamw, train::reference::frozen<model>> t(
        policy, {.beta = 0.1}, {.lr = 1e-3}, {&ref}, {.max_grad_norm = 1.0});
    const train::preference_batch<models::token_batch> b{models::pack_pairs(rc.pairs, true), rc.pairs.size()};
    std::vector<std::map<std::string, double>> metrics;
    std::uint64_t reserved_after_first = 0;
    for (int s = 0; s < 4; ++s) {
      metrics.push_back(t.step(b).metrics);
      if constexpr (std::is_same_v<B, cuda>) {
        // After the first step, the pool serves every allocation: it reserves no more memory.
        policy.backend().synchronize();
        cudaMemPool_t pool = nullptr;
        std::uint64_t reserved = 0;
        REQUIRE(cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess);
        REQUIRE(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved) == cudaSuccess);
        if (s == 0) reserved_after_first = reserved;
        else CHECK(reserved == reserved_after_first);
      }
    }
    std::vector<float> w(policy.parameters().size());
    policy.backend().download(policy.parameters(), std::span<float>(w));
    for (std::size_t i = 0; i < w.size(); ++i) w[i] -= w0[i];  // the change the 4 steps made
    return std::pair{metrics, w};
  };
  const auto [mg, wg] = run(cuda{});
  const auto [me, we] = run(eigen{});
  for (std::size_t s = 0; s < mg.size(); ++s)
    for (const char* k : {"loss", "grad_norm", "rewards/margins", "logps/chosen", "logps/rejected"}) {
      CAPTURE(s);
      CAPTURE(k);
      CHECK(mg[s].at(k) == doctest::Approx(me[s].at(k)).epsilon(1e-3).scale(1e-2));
    }
  CHECK(mg.back().at("loss") < mg.front().at("loss"));  // it trains
  // The weight updates agree. Not to float rounding: Adam's step is ≈ ±lr wherever |g| ≫ eps, so
  // an entry whose gradient is at rounding level may take the other sign on the other backend.
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < wg.size(); ++i) {
    num += (double(wg[i]) - we[i]) * (double(wg[i]) - we[i]);
    den += double(we[i]) * we[i];
  }
  REQUIRE(den > 0.0);
  CHECK(std::sqrt(num / den) < 5e-2);
}
