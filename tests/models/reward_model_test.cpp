// Reward models (models/reward_model.hpp, reward_io.hpp, train/reward_trainer.hpp) against
// Hugging Face transformers: GPT2/Llama/Qwen2ForSequenceClassification with num_labels = 1 built on
// the golden causal LMs, scores of right-padded sequences (1e-4), TRL's RewardTrainer loss with
// margins and center_rewards_coefficient, and every parameter's gradient (1e-3 relative).
// Expected values: tools/reference/reward_make_reference.py → tests/data/reward/<arch>/.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "prefopt/io/safetensors.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/reward_io.hpp"
#include "prefopt/optim/adamw.hpp"
#include "prefopt/train/reward_trainer.hpp"
#include "support/backends.hpp"
#include "support/data.hpp"

using namespace prefopt;
namespace fs = std::filesystem;

namespace {

struct reward_case {
  nlohmann::json j;
  std::vector<std::vector<std::int32_t>> padded, trimmed;
  std::int32_t pad = 0;
  explicit reward_case(const std::string& arch) {
    std::ifstream in(test::data_path("reward/" + arch + "/reference.json"));
    j = nlohmann::json::parse(in);
    pad = j["pad_token_id"].get<std::int32_t>();
    padded = j["sequences"].get<std::vector<std::vector<std::int32_t>>>();
    const auto len = j["lengths"].get<std::vector<std::size_t>>();
    for (std::size_t i = 0; i < padded.size(); ++i) trimmed.emplace_back(padded[i].begin(), padded[i].begin() + std::ptrdiff_t(len[i]));
  }
};

void check_scores(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(got[i] - want[i]) < 1e-4);
  }
}

double rel_error(std::span<const float> got, const std::vector<float>& want) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double d = double(got[i]) - want[i];
    num += d * d, den += double(want[i]) * want[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-12);
}

// Loss of the reference pairs (3 chosen then 3 rejected, margins, centering) and backward.
template <class RM> double loss_and_backward(RM& rm, const reward_case& rc) {
  const auto b = rm.pack(rc.padded);
  rm.zero_grad();
  const auto s = rm.forward(b);
  const train::bradley_terry bt{.center_rewards_coefficient = rc.j["center_rewards_coefficient"].get<double>()};
  const auto margin = rc.j["margin"].get<std::vector<double>>();
  const auto r = train::bradley_terry_loss(bt, std::span(s).first(3), std::span(s).subspan(3), margin);
  std::vector<double> d(r.d_chosen);
  d.insert(d.end(), r.d_rejected.begin(), r.d_rejected.end());
  rm.backward(d);
  return r.loss;
}

template <class Body> void parity(const std::string& arch) {
  using B = typename Body::backend_type;
  const reward_case rc(arch);
  auto rm = models::load_reward_model<Body>(B{}, test::data_path("reward/" + arch));
  REQUIRE(rm.pad_token_id() == rc.pad);
  const auto want = rc.j["scores"].get<std::vector<double>>();
  check_scores(rm.forward(rm.pack(rc.padded), {.keep_activations = false}), want);
  check_scores(rm.forward(rm.pack(rc.trimmed), {.keep_activations = false}), want);  // padding changes nothing
  CHECK(loss_and_backward(rm, rc) == doctest::Approx(rc.j["loss"].get<double>()).epsilon(1e-5));
  const io::safetensors_file f(test::data_path("reward/" + arch + "/grads.safetensors"));
  std::vector<float> g(rm.body_gradients().size()), gh(rm.head_gradients().size());
  rm.backend().download(rm.body_gradients(), std::span<float>(g));
  rm.backend().download(rm.head_gradients(), std::span<float>(gh));
  std::size_t checked = 0;
  for (const auto& s : rm.body_slices()) {
    if (s.name == "lm_head.weight") continue;
    CAPTURE(s.name);
    REQUIRE(f.contains(s.name));
    CHECK(rel_error(std::span<const float>(g).subspan(s.offset, s.size()), f.read_f32(s.name)) < 1e-3);
    ++checked;
  }
  CHECK(rel_error(gh, f.read_f32("score.weight")) < 1e-3);
  CHECK(checked + 1 == f.names().size());
}

} // namespace

TEST_CASE("bradley_terry_loss: value and hand-written gradient against central differences") {
  const std::vector<double> c{0.3, -1.2, 2.0, 0.1}, r{-0.4, 0.5, 1.5, 0.1}, m{0.5, 0.0, -1.0, 2.0};
  for (const bool with_margin : {false, true})
    for (const std::optional<double> coef : {std::optional<double>{}, std::optional<double>{0.05}}) {
      CAPTURE(with_margin);
      const train::bradley_terry bt{.center_rewards_coefficient = coef};
      const std::span<const double> mm = with_margin ? std::span<const double>(m) : std::span<const double>{};
      const auto res = train::bradley_terry_loss(bt, c, r, mm);
      double want = 0.0;
      for (std::size_t i = 0; i < c.size(); ++i) {
        const double z = c[i] - r[i] - (with_margin ? m[i] : 0.0);
        want += std::log1p(std::exp(-z)) / 4.0 + coef.value_or(0.0) * (c[i] + r[i]) * (c[i] + r[i]) / 4.0;
      }
      CHECK(res.loss == doctest::Approx(want).epsilon(1e-12));
      const double h = 1e-6;
      for (std::size_t i = 0; i < c.size(); ++i)
        for (int side = 0; side < 2; ++side) {
          auto up = c, dn = c, ru = r, rd = r;
          (side == 0 ? up : ru)[i] += h, (side == 0 ? dn : rd)[i] -= h;
          const double fd = (train::bradley_terry_loss(bt, up, ru, mm).loss - train::bradley_terry_loss(bt, dn, rd, mm).loss) / (2 * h);
          CHECK((side == 0 ? res.d_chosen : res.d_rejected)[i] == doctest::Approx(fd).epsilon(1e-6));
        }
    }
  CHECK_THROWS_AS(train::bradley_terry_loss({}, c, std::vector<double>{1.0}), shape_error);
  CHECK_THROWS_AS((train::bradley_terry{.center_rewards_coefficient = -1.0}.validate()), config_error);
}

TEST_CASE("bradley_terry metrics: TRL's accuracy, margin and reward range") {
  using T = train::reward_trainer<models::reward_model<models::gpt2<backends::eigen>>, optim::adamw>;
  const auto m = T::score_metrics({1.0, -2.0, 0.5}, {0.0, 1.0, 0.5});
  CHECK(m.at("accuracy") == doctest::Approx(1.0 / 3.0));
  CHECK(m.at("margin") == doctest::Approx((1.0 - 3.0 + 0.0) / 3.0));
  CHECK(m.at("mean_reward") == doctest::Approx(1.0 / 6.0));
  CHECK(m.at("min_reward") == -2.0);
  CHECK(m.at("max_reward") == 1.0);
}

TEST_CASE("pack_sequences: the score is read at the last non-padding token, as transformers does") {
  const auto b = models::pack_sequences({{5, 6, 0, 0}, {0, 0}, {7, 0, 8}, {9}}, 0);
  CHECK(b.score_at == std::vector<std::int32_t>{1, 4, 8, 9});
  CHECK(b.tokens.predict_from.empty());
  CHECK(b.tokens.rows() == 4);
  CHECK(models::pack_sequences({{5, 6, 0, 0}}, std::nullopt).score_at == std::vector<std::int32_t>{3});
  CHECK_THROWS_AS(models::pack_sequences({{}}, 0), data_error);
}

TEST_CASE_TEMPLATE("reward model: scores, loss and gradients equal transformers' (GPT-2)", B, PREFOPT_CPU_BACKENDS) {
  parity<models::gpt2<B>>("gpt2");
}
TEST_CASE("reward model: scores, loss and gradients equal transformers' (Llama, Qwen2)") {
  parity<models::llama<backends::eigen>>("llama");
  parity<models::llama<backends::eigen>>("qwen2");
}

TEST_CASE("reward model: save and load keep the scores; the config is a sequence classifier's") {
  using Body = models::llama<backends::eigen>;
  const reward_case rc("llama");
  auto rm = models::load_reward_model<Body>({}, test::data_path("reward/llama"));
  const fs::path dir = fs::temp_directory_path() / "prefopt_reward_save";
  fs::remove_all(dir);
  models::save_reward_model(rm, dir);
  const auto j = nlohmann::json::parse(std::ifstream(dir / "config.json"));
  CHECK(j["architectures"] == nlohmann::json::array({"LlamaForSequenceClassification"}));
  CHECK(j["id2label"].size() == 1);
  CHECK(j["pad_token_id"] == rc.pad);
  CHECK_FALSE(io::safetensors_file(dir / "model.safetensors").contains("lm_head.weight"));
  auto back = models::load_reward_model<Body>({}, dir);
  check_scores(back.forward(back.pack(rc.padded), {.keep_activations = false}), rc.j["scores"].get<std::vector<double>>());
  // A causal LM is not a reward model until it gets a head.
  CHECK_THROWS_AS(models::load_reward_model<Body>({}, test::data_path("models/llama")), format_error);
  auto fresh = models::reward_from_causal_lm<Body>({}, test::data_path("models/llama"), 3);
  std::vector<float> w(fresh.head_parameters().size());
  fresh.backend().download(fresh.head_parameters(), std::span<float>(w));
  double ss = 0.0;
  for (float v : w) ss += double(v) * v;
  CHECK(std::sqrt(ss / double(w.size())) == doctest::Approx(0.02).epsilon(0.5));  // N(0, 0.02²)
  fs::remove_all(dir);
}

TEST_CASE("reward model with LoRA: the head trains with the adapters; B = 0 keeps the base scores") {
  using Body = models::llama<backends::eigen>;
  const reward_case rc("llama");
  auto full = models::load_reward_model<Body>({}, test::data_path("reward/llama"));
  loss_and_backward(full, rc);
  std::vector<float> head_full(full.head_gradients().size());
  full.backend().download(full.head_gradients(), std::span<float>(head_full));
  auto base = models::load_reward_model<Body>({}, test::data_path("reward/llama"));
  std::vector<float> w(base.head_parameters().size());
  base.backend().download(base.head_parameters(), std::span<float>(w));
  models::reward_model<models::lora<Body>> rm(models::lora<Body>(std::move(base.body()), {.r = 4, .target_modules = {"q_proj", "v_proj"}}, 1),
                                              rc.pad);
  rm.backend().upload(std::span<const float>(w), rm.head_parameters());
  check_scores(rm.forward(rm.pack(rc.padded), {.keep_activations = false}), rc.j["scores"].get<std::vector<double>>());
  loss_and_backward(rm, rc);
  CHECK(rm.body_parameters().size() < full.body_parameters().size());
  CHECK(rel_error(rm.head_gradients(), head_full) < 1e-5);
  std::vector<float> ga(rm.body_gradients().size());
  rm.backend().download(rm.body_gradients(), std::span<float>(ga));
  double norm = 0.0;
  for (float v : ga) norm += double(v) * v;
  CHECK(norm > 0.0);  // lora_B's gradient (A random, B zero)
}

TEST_CASE("reward_trainer: accumulation is exact and training separates chosen from rejected") {
  using Body = models::gpt2<backends::eigen>;
  const reward_case rc("gpt2");
  auto pack = [&](std::size_t from, std::size_t n) {
    std::vector<std::vector<std::int32_t>> s;
    for (std::size_t i = from; i < from + n; ++i) s.push_back(rc.trimmed[i]);
    for (std::size_t i = from; i < from + n; ++i) s.push_back(rc.trimmed[3 + i]);
    const auto margin = rc.j["margin"].get<std::vector<double>>();
    return train::reward_pair_batch{models::pack_sequences(s, rc.pad),
                                    std::vector<double>(margin.begin() + std::ptrdiff_t(from), margin.begin() + std::ptrdiff_t(from + n))};
  };
  const train::bradley_terry bt{.center_rewards_coefficient = 0.01};
  auto a = models::load_reward_model<Body>({}, test::data_path("reward/gpt2"));
  auto b = models::load_reward_model<Body>({}, test::data_path("reward/gpt2"));
  train::reward_trainer ta(a, bt, optim::adamw{.lr = 1e-3});
  train::reward_trainer tb(b, bt, optim::adamw{.lr = 1e-3});
  const auto whole = ta.step(pack(0, 3));
  const std::vector<train::reward_pair_batch> micro{pack(0, 1), pack(1, 1), pack(2, 1)};
  const auto parts = tb.step(std::span<const train::reward_pair_batch>(micro));
  CHECK(whole.metrics.at("loss") == doctest::Approx(rc.j["loss"].get<double>()).epsilon(1e-5));
  CHECK(parts.metrics.at("loss") == doctest::Approx(whole.metrics.at("loss")).epsilon(1e-6));
  CHECK(parts.metrics.at("grad_norm") == doctest::Approx(whole.metrics.at("grad_norm")).epsilon(1e-4));
  CHECK(whole.metrics.at("num_tokens") == doctest::Approx(7 + 4 + 9 + 5 + 8 + 3));
  for (const char* k : {"accuracy", "margin", "min_reward", "mean_reward", "max_reward", "learning_rate"}) CHECK(whole.metrics.count(k) == 1);
  std::vector<float> pa(a.body_parameters().size()), pb(pa.size());
  a.backend().download(a.body_parameters(), std::span<float>(pa));
  b.backend().download(b.body_parameters(), std::span<float>(pb));
  double worst = 0.0;
  for (std::size_t i = 0; i < pa.size(); ++i) worst = std::max(worst, double(std::abs(pa[i] - pb[i])));
  // AdamW's first step moves a weight by lr·g/(|g| + ε): where |g| is of the order of ε (1e-8),
  // the fp32 summation order of three micro-batches against one batch (which differs between BLAS
  // kernels: 2.0e-5 with OpenBLAS's Zen kernels) changes that ratio by a few percent of lr = 1e-3.
  // A lost or doubled micro-batch flips signs of g and moves weights by ~lr; a wrong scale of the
  // summed gradient is caught by grad_norm above (the first step itself is scale-invariant).
  CHECK(worst < 5e-5);
  double last = whole.metrics.at("loss");
  for (int s = 0; s < 20; ++s) last = ta.step(pack(0, 3)).metrics.at("loss");
  CHECK(last < 0.5 * whole.metrics.at("loss"));
  CHECK(ta.evaluate_batch(pack(0, 3)).at("accuracy") == 1.0);
  CHECK(ta.global_step() == 21);
}

TEST_CASE("reward models prefopt saved load in transformers with equal scores (committed check)") {
  // tests/data/reward/prefopt_saved_<arch>: written by `prefopt reward train` (LoRA merged for GPT-2),
  // scored by `prefopt reward score`; transformers_check.json by reward_make_reference.py --check.
  auto check = [](auto tag, const std::string& arch) {
    using Body = typename decltype(tag)::type;
    const fs::path dir = test::data_path("reward/prefopt_saved_" + arch);
    const auto want = nlohmann::json::parse(std::ifstream(dir / "prefopt_scores.json"));
    const auto hf = nlohmann::json::parse(std::ifstream(dir / "transformers_check.json"));
    CHECK(hf["ok"].get<bool>());
    CHECK(hf["max_abs_error"].get<double>() < 1e-4);
    auto rm = models::load_reward_model<Body>({}, dir);
    const auto got = rm.forward(rm.pack(want["sequences"].get<std::vector<std::vector<std::int32_t>>>()), {.keep_activations = false});
    check_scores(got, want["scores"].get<std::vector<double>>());
    check_scores(got, hf["transformers_scores"].get<std::vector<double>>());
  };
  check(std::type_identity<models::llama<backends::eigen>>{}, "llama");
  check(std::type_identity<models::gpt2<backends::eigen>>{}, "gpt2");
  // The same GPT-2 run's PEFT adapter (LoRA + head) on the causal LM it started from: PEFT's scores.
  using Body = models::gpt2<backends::eigen>;
  const fs::path dir = test::data_path("reward/prefopt_saved_gpt2_adapter");
  const auto want = nlohmann::json::parse(std::ifstream(dir / "prefopt_scores.json"));
  const auto hf = nlohmann::json::parse(std::ifstream(dir / "transformers_check.json"));
  CHECK(hf["ok"].get<bool>());
  auto base = models::reward_from_causal_lm<Body>({}, test::data_path("models/gpt2"), 0);
  const auto ac = nlohmann::json::parse(std::ifstream(dir / "adapter_config.json"));
  models::reward_model<models::lora<Body>> rm(
      models::lora<Body>(std::move(base.body()), {.r = ac["r"].get<int>(), .alpha = ac["lora_alpha"].get<double>(),
                                                  .target_modules = ac["target_modules"].get<std::vector<std::string>>()}),
      want["pad_token_id"].get<std::int32_t>());
  models::load_reward_adapter(rm, dir);
  const auto got = rm.forward(rm.pack(want["sequences"].get<std::vector<std::vector<std::int32_t>>>()), {.keep_activations = false});
  check_scores(got, want["scores"].get<std::vector<double>>());
  check_scores(got, hf["transformers_scores"].get<std::vector<double>>());
}

TEST_CASE("reward model with LoRA: saved as a PEFT SEQ_CLS adapter with the head, loaded back") {
  using Body = models::llama<backends::eigen>;
  const reward_case rc("llama");
  const models::lora_config lc{.r = 4, .alpha = 8.0, .target_modules = {"q_proj", "v_proj"}};
  auto make = [&](std::uint64_t seed) {
    auto base = models::load_reward_model<Body>({}, test::data_path("reward/llama"));
    return models::reward_model<models::lora<Body>>(models::lora<Body>(std::move(base.body()), lc, seed), rc.pad);
  };
  auto rm = make(1);
  // Move the adapters and the head away from their starting values, then save.
  train::reward_trainer t(rm, {}, optim::adamw{.lr = 1e-2});
  std::vector<std::vector<std::int32_t>> s(rc.trimmed.begin(), rc.trimmed.end());
  for (int i = 0; i < 3; ++i) t.step(train::reward_pair_batch{rm.pack(s), {}});
  const auto want = rm.forward(rm.pack(rc.padded), {.keep_activations = false});
  const fs::path dir = fs::temp_directory_path() / "prefopt_reward_adapter";
  fs::remove_all(dir);
  models::save_reward_adapter(rm, dir, "base");
  const auto cfg = nlohmann::json::parse(std::ifstream(dir / "adapter_config.json"));
  CHECK(cfg["task_type"] == "SEQ_CLS");
  CHECK(cfg["modules_to_save"] == nlohmann::json::array({"classifier", "score"}));
  CHECK(io::safetensors_file(dir / "adapter_model.safetensors").contains("base_model.model.score.weight"));
  auto back = make(2);  // other random adapters and the base head until loaded
  models::load_reward_adapter(back, dir);
  check_scores(back.forward(back.pack(rc.padded), {.keep_activations = false}), want);
  // merged into the base, saved as a classifier: the same scores without adapters
  back.body().merge_into_base();
  models::save_reward_model(back, dir / "merged");
  auto merged = models::load_reward_model<Body>({}, dir / "merged");
  check_scores(merged.forward(merged.pack(rc.padded), {.keep_activations = false}), want);
  fs::remove_all(dir);
}

TEST_CASE("reward model with activation checkpointing: scores and gradients bit-equal") {
  using Body = models::llama<backends::eigen>;
  const reward_case rc("llama");
  auto plain = models::load_reward_model<Body>({}, test::data_path("reward/llama"));
  auto ckpt = models::load_reward_model<Body>({}, test::data_path("reward/llama"));
  ckpt.body().set_gradient_checkpointing(true);
  CHECK(loss_and_backward(plain, rc) == loss_and_backward(ckpt, rc));
  auto grads = [](auto& rm) {
    std::vector<float> g(rm.body_gradients().size() + rm.head_gradients().size());
    rm.backend().download(rm.body_gradients(), std::span<float>(g).first(rm.body_gradients().size()));
    rm.backend().download(rm.head_gradients(), std::span<float>(g).subspan(rm.body_gradients().size()));
    return g;
  };
  CHECK(grads(plain) == grads(ckpt));
}
