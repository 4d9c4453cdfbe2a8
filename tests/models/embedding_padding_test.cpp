// The token embedding's padding row: Llama, Qwen2 and Mistral build it as nn.Embedding(vocab,
// hidden, padding_idx = config.pad_token_id), so the lookup adds no gradient to that row; a tied
// head's gradient still reaches it. Expected values: tools/reference/models_make_padding_reference.py
// → tests/data/models/<arch>/{padding.json, padding_grads.safetensors}: the golden models loaded
// with pad_token_id set, the golden pairs with that id written over input tokens, one DPO step.
// GPT-2 sets no padding_idx; a pad id outside the vocabulary, null or absent changes nothing.
// init_weights starts the padding row at zero, as transformers' _init_weights does.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "prefopt/io/safetensors.hpp"
#include "prefopt/models/init.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "support/backends.hpp"
#include "support/data.hpp"
#include "support/golden_models.hpp"

using namespace prefopt;

namespace {

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// The golden model of tests/data/models/<arch> with config.json's pad_token_id replaced (null: removed).
template <class Model> Model load_with_pad(const std::string& arch, const nlohmann::json& pad) {
  const auto dir = test::data_path("models/" + arch);
  auto j = read_json(dir / "config.json");
  if (pad.is_null()) j.erase("pad_token_id");
  else j["pad_token_id"] = pad;
  Model m(typename Model::backend_type{}, models::transformer_config::from_json(j, arch + "/config.json"));
  models::load_weights(m, dir);
  return m;
}

// The gradient of one named slice, downloaded.
template <class Model> std::vector<float> grad_of(Model& m, const std::string& name) {
  for (const auto& s : m.parameter_slices())
    if (s.name == name) {
      std::vector<float> host(s.size());
      m.backend().download(m.gradients().subspan(s.offset, s.size()), std::span<float>(host));
      return host;
    }
  FAIL("no slice " << name);
  return {};
}

double rel_error(std::span<const float> got, std::span<const float> want) {
  REQUIRE(got.size() == want.size());
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double d = double(got[i]) - want[i];
    num += d * d;
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-12);
}

// The padding case of `arch`: pairs with the pad id as input tokens, as reference.json's layout.
test::reference_case padding_case(const std::string& arch) {
  test::reference_case rc(arch);
  rc.j = read_json(test::data_path("models/" + arch + "/padding.json"));
  rc.pairs.clear();
  for (const auto& p : rc.j["pairs"])
    rc.pairs.push_back({p["prompt"].get<std::vector<std::int32_t>>(), p["chosen"].get<std::vector<std::int32_t>>(),
                        p["rejected"].get<std::vector<std::int32_t>>()});
  return rc;
}

template <class Model> void padding_parity(const std::string& arch) {
  const auto rc = padding_case(arch);
  const int pad = rc.j["pad_token_id"].get<int>();
  const bool tied = rc.j["tie_word_embeddings"].get<bool>();
  auto m = load_with_pad<Model>(arch, pad);
  REQUIRE(m.config().embedding_padding_row == pad);
  const io::safetensors_file f(test::data_path("models/" + arch + "/padding_grads.safetensors"));
  const std::size_t C = std::size_t(m.config().hidden);
  for (bool shared : {false, true}) {
    CAPTURE(shared);
    double loss = 0.0;
    const auto logps = test::dpo_step(m, rc, shared, &loss);
    const auto want_logps = rc.j["logps"].get<std::vector<double>>();
    REQUIRE(logps.size() == want_logps.size());
    for (std::size_t i = 0; i < logps.size(); ++i) CHECK(std::abs(logps[i] - want_logps[i]) < 1e-4);
    CHECK(loss == doctest::Approx(rc.j["loss"].get<double>()).epsilon(1e-5));
    const auto got = grad_of(m, "model.embed_tokens.weight");
    const auto want = f.read_f32("model.embed_tokens.weight");
    CHECK(rel_error(got, want) < 1e-3);
    const std::span<const float> got_row = std::span<const float>(got).subspan(std::size_t(pad) * C, C);
    const std::span<const float> want_row = std::span<const float>(want).subspan(std::size_t(pad) * C, C);
    if (tied) {
      CHECK(rel_error(got_row, want_row) < 1e-3);  // the head's gradient only
    } else {
      for (float g : got_row) REQUIRE(g == 0.0f);
      CHECK(rel_error(grad_of(m, "lm_head.weight"), f.read_f32("lm_head.weight")) < 1e-3);
    }
  }
}

// The embedding gradient of one DPO step over the padding case's pairs, config pad_token_id = `pad`.
template <class Model> std::vector<float> embedding_grad(const std::string& arch, const nlohmann::json& pad,
                                                         const std::string& name) {
  auto m = load_with_pad<Model>(arch, pad);
  test::dpo_step(m, padding_case(arch), false);
  return grad_of(m, name);
}

} // namespace

TEST_CASE_TEMPLATE("Llama (untied head): the padding row gets no lookup gradient, as in transformers", B,
                   PREFOPT_CPU_BACKENDS) {
  padding_parity<models::llama<B>>("llama");
}

TEST_CASE_TEMPLATE("Qwen2 (tied head): the padding row keeps the head's gradient only, as in transformers", B,
                   PREFOPT_CPU_BACKENDS) {
  padding_parity<models::llama<B>>("qwen2");
}

TEST_CASE_TEMPLATE("A pad id outside the vocabulary, null or absent changes no gradient", B, PREFOPT_CPU_BACKENDS) {
  using M = models::llama<B>;
  const std::string name = "model.embed_tokens.weight";
  const auto none = embedding_grad<M>("llama", nullptr, name);
  const int pad = padding_case("llama").j["pad_token_id"].get<int>();
  const std::size_t C = 32;
  bool lookup_reaches_row = false;
  for (std::size_t c = 0; c < C; ++c) lookup_reaches_row |= none[std::size_t(pad) * C + c] != 0.0f;
  CHECK(lookup_reaches_row);  // without padding the pad id's row is an ordinary, used row
  const int V = 293;
  for (const auto& p : {nlohmann::json(V), nlohmann::json(V + 1000), nlohmann::json(-V - 1)}) {
    CAPTURE(p.dump());
    CHECK(load_with_pad<M>("llama", p).config().embedding_padding_row == -1);
    CHECK(embedding_grad<M>("llama", p, name) == none);
  }
}

TEST_CASE_TEMPLATE("GPT-2 sets no padding_idx: a pad_token_id changes no gradient", B, PREFOPT_CPU_BACKENDS) {
  using M = models::gpt2<B>;
  const test::reference_case rc("gpt2");
  const int pad = rc.pairs[0].prompt[1];  // an input token of the golden batch
  auto with = load_with_pad<M>("gpt2", pad);
  auto without = load_with_pad<M>("gpt2", nullptr);
  CHECK(with.config().embedding_padding_row == -1);
  test::dpo_step(with, rc, false);
  test::dpo_step(without, rc, false);
  const auto g = grad_of(with, "transformer.wte.weight");
  CHECK(g == grad_of(without, "transformer.wte.weight"));
  bool used = false;
  for (std::size_t c = 0; c < 32; ++c) used |= g[std::size_t(pad) * 32 + c] != 0.0f;
  CHECK(used);
}

TEST_CASE("pad_token_id in config.json: torch's range, negative ids from the end, bad values named") {
  auto cfg = [](const nlohmann::json& pad) {
    auto j = read_json(test::data_path("models/qwen2/config.json"));
    j["pad_token_id"] = pad;
    return models::transformer_config::from_json(j, "qwen2/config.json");
  };
  CHECK(cfg(0).embedding_padding_row == 0);
  CHECK(cfg(306).embedding_padding_row == 306);
  CHECK(cfg(307).embedding_padding_row == -1);
  CHECK(cfg(-1).embedding_padding_row == 306);      // nn.Embedding(padding_idx=-1) is the last row
  CHECK(cfg(-307).embedding_padding_row == 0);
  CHECK(cfg(-308).embedding_padding_row == -1);
  CHECK(cfg(nullptr).embedding_padding_row == -1);
  CHECK(cfg(5.0).embedding_padding_row == 5);
  CHECK_THROWS_WITH_AS(cfg(1.5), doctest::Contains("pad_token_id"), config_error);
  CHECK_THROWS_WITH_AS(cfg("0"), doctest::Contains("pad_token_id"), config_error);
}

TEST_CASE_TEMPLATE("init_weights starts the padding row at zero, tied or untied, as transformers does", B,
                   PREFOPT_CPU_BACKENDS) {
  using M = models::llama<B>;
  for (const char* arch : {"llama", "qwen2"}) {  // untied, tied head
    CAPTURE(arch);
    const int pad = padding_case(arch).j["pad_token_id"].get<int>();
    auto m = load_with_pad<M>(arch, pad);
    auto plain = load_with_pad<M>(arch, nullptr);
    models::init_weights(m, 5);
    models::init_weights(plain, 5);
    std::vector<float> w(m.base_parameters().size()), p(plain.base_parameters().size());
    m.backend().download(m.base_parameters(), std::span<float>(w));
    plain.backend().download(plain.base_parameters(), std::span<float>(p));
    const std::size_t C = std::size_t(m.config().hidden), row = m.layout().wte + std::size_t(pad) * C;
    std::size_t differ = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      const bool in_row = i >= row && i < row + C;
      if (in_row) CHECK(w[i] == 0.0f);
      differ += w[i] != p[i];
    }
    CHECK(differ == C);  // the same draws everywhere else: an untied lm_head keeps its row
  }
}
