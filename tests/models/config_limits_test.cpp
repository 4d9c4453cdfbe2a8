// Hostile config.json files and the memory estimate: nesting 100 000 levels deep, sizes that would
// wrap around an int (vocab_size 2^32 + 2001), fractional or huge sizes (n_layer 2.9, 1e30, 1e8),
// and legal sizes no machine holds — each a prefopt error naming the file and field, raised before
// anything is allocated. Files are written by the tests.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "prefopt/backends/eigen.hpp"
#include "prefopt/models/memory_estimate.hpp"
#include "prefopt/models/transformer_io.hpp"
#include "support/data.hpp"

using namespace prefopt;
using B = backends::eigen;
namespace fs = std::filesystem;

namespace {

fs::path write_config(const std::string& name, const std::string& text) {
  const fs::path dir = fs::temp_directory_path() / ("prefopt_config_limits_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json", std::ios::binary) << text;
  return dir;
}

template <class E, class F> std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no exception)";
}

// A small GPT-2 config.json with `field` set to the JSON text `value`.
std::string gpt2_with(const std::string& field, const std::string& value) {
  nlohmann::json j = {{"model_type", "gpt2"}, {"vocab_size", 100}, {"n_embd", 32}, {"n_layer", 2}, {"n_head", 4}, {"n_positions", 64}};
  j[field] = nlohmann::json::parse(value);
  return j.dump();
}

} // namespace

TEST_CASE("config.json nested 100 000 levels deep is a format_error naming the file") {
  const auto dir = write_config("deep", R"({"model_type": "gpt2", "task_specific_params": )" + std::string(100000, '[') +
                                            std::string(100000, ']') + "}");
  const auto msg = message_of<format_error>([&] { (void)models::transformer_config::from_file(dir / "config.json"); });
  CHECK(msg.starts_with((dir / "config.json").string() + ": nests arrays and objects deeper than 256 levels"));
}

TEST_CASE("config.json: a repeated key and 1e400 are errors naming the file") {
  auto dir = write_config("dup", R"({"model_type": "gpt2", "n_layer": 2, "n_layer": 3})");
  CHECK(message_of<format_error>([&] { (void)models::transformer_config::from_file(dir / "config.json"); })
            .find("key 'n_layer' appears more than once") != std::string::npos);
  dir = write_config("huge", R"({"model_type": "gpt2", "layer_norm_epsilon": 1e400})");
  CHECK(message_of<format_error>([&] { (void)models::transformer_config::from_file(dir / "config.json"); })
            .starts_with((dir / "config.json").string() + ": holds a number out of the range of a double"));
}

TEST_CASE("config.json sizes: whole numbers in range and under the limits, or an error naming the field") {
  struct bad_case {
    const char* field;
    const char* value;
  };
  for (const auto& c : {bad_case{"vocab_size", "4294969297"}, bad_case{"n_layer", "2.9"}, bad_case{"n_layer", "1e30"},
                        bad_case{"n_layer", "1e8"}, bad_case{"n_positions", "1e9"}, bad_case{"n_embd", "-32"},
                        bad_case{"n_head", "\"4\""}}) {
    const std::string field = c.field;
    CAPTURE(field);
    CAPTURE(c.value);
    const auto dir = write_config("sizes", gpt2_with(field, c.value));
    const auto msg = message_of<config_error>([&] { (void)models::transformer_config::from_file(dir / "config.json"); });
    CHECK(msg.starts_with((dir / "config.json").string() + ": field '" + field + "'"));
  }
  const auto llama = write_config("llama", R"({"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4,
      "num_hidden_layers": 1, "intermediate_size": 64, "vocab_size": 100, "num_key_value_heads": 4294967300})");
  CHECK(message_of<config_error>([&] { (void)models::transformer_config::from_file(llama / "config.json"); })
            .find("field 'num_key_value_heads'") != std::string::npos);
  // A float that is a whole number is the number.
  const auto ok = write_config("ok", gpt2_with("n_layer", "3.0"));
  CHECK(models::transformer_config::from_file(ok / "config.json").layers == 3);
}

TEST_CASE("the memory estimate counts GPT-2's parameters, gradients, AdamW state, a reference copy and LoRA exactly") {
  const auto c = models::transformer_config::from_json(nlohmann::json{{"model_type", "gpt2"}});  // GPT-2 small
  models::run_shape r{.rows = 16, .row_length = 512, .training = true, .optimizer_slots = 2, .reference_copy = true};
  const auto m = models::estimate_memory(c, r);
  const std::uint64_t params = 124439808;  // GPT-2 small, as Hugging Face counts it
  CHECK(m.parameters == 4 * params);
  CHECK(m.gradients == 4 * params);
  CHECK(m.optimizer == 8 * params);
  CHECK(m.reference == 4 * params);
  CHECK(m.activations > 0);
  // Activations grow with the rows and, through attention, faster than linearly with their length.
  auto longer = r;
  longer.row_length = 1024;
  CHECK(models::estimate_memory(c, longer).activations > 2 * m.activations);
  // LoRA r = 8 on c_attn: 294 912 trainable parameters (PEFT's print_trainable_parameters for gpt2).
  models::run_shape lora{.rows = 16, .row_length = 512, .training = true, .optimizer_slots = 2, .lora_rank = 8,
                         .lora_targets = {"c_attn"}};
  const auto ml = models::estimate_memory(c, lora);
  CHECK(ml.parameters == 4 * (params + 294912));
  CHECK(ml.gradients == 4 * 294912);
  CHECK(ml.optimizer == 8 * 294912);
  CHECK(ml.reference == 0);
  CHECK(models::describe(m).starts_with("this run needs about "));
  // precision bf16: the policy and the reference copy each hold a bf16 copy of the base weights.
  auto bf16 = r;
  bf16.bf16_weight_copy = true;
  const auto mb = models::estimate_memory(c, bf16);
  CHECK(mb.parameters == 6 * params);
  CHECK(mb.reference == 6 * params);
  CHECK(mb.gradients == m.gradients);
  CHECK(mb.optimizer == m.optimizer);
  CHECK(mb.activations == m.activations);
  // Stored norm outputs: n1, n2 at 2 bytes per value in every kept layer (12 + 1), plus the fp32
  // workspace a norm writes before it is converted (8192 tokens × 768 floats).
  bf16.bf16_norm_outputs = true;
  const auto mn = models::estimate_memory(c, bf16);
  CHECK(mn.activations == m.activations - 13 * 8192ull * 2 * 768 * 2 + 8192ull * 768 * 4);
}

TEST_CASE("the bf16 weight copy of an untied Llama leaves out embed_tokens, as the model holds it") {
  // Llama-3.2-1B's shape with an untied head: embed_tokens [128256 × 2048] is read only by the lookup.
  const auto c = models::transformer_config::from_json(nlohmann::json{
      {"model_type", "llama"}, {"hidden_size", 2048}, {"num_attention_heads", 32}, {"num_key_value_heads", 8},
      {"num_hidden_layers", 16}, {"intermediate_size", 8192}, {"vocab_size", 128256}, {"tie_word_embeddings", false}});
  const std::uint64_t base = models::transformer_layout::make(c).total, embed = 128256ull * 2048;
  models::run_shape r{.rows = 2, .row_length = 64, .training = true, .optimizer_slots = 2};
  const auto fp32 = models::estimate_memory(c, r);
  r.bf16_weight_copy = true;
  const auto bf16 = models::estimate_memory(c, r);
  CHECK(fp32.parameters == 4 * base);
  CHECK(bf16.parameters == 4 * base + 2 * (base - embed));
  // Tied, the table is the LM head's weight and is copied.
  auto tied = c;
  tied.tie_word_embeddings = true;
  const std::uint64_t tied_base = models::transformer_layout::make(tied).total;
  CHECK(tied_base == base - embed);
  CHECK(models::estimate_memory(tied, r).parameters == 6 * tied_base);
}

TEST_CASE("activation bytes per token and layer: GPT-2 small and Qwen2.5-0.5B, fp32 and bf16 norm outputs") {
  // From layer_acts: fp32 x, xmid, q, att (C each here), k, v (Hkv·D), lse (heads), mean/rstd ×2,
  // MLP input(s) (GPT-2 a: F; Llama gate, up: 2F); n1, n2 at 4 or 2 bytes.
  // GPT-2 small: C 768, heads 12, F 3072: 4·(6·768 + 12 + 4 + 3072) = 30784, + 2·768·4 or 2·768·2.
  const auto g = models::transformer_config::from_json(nlohmann::json{{"model_type", "gpt2"}});
  CHECK(models::activation_bytes_per_token(g, false) == 36928);  // 49216 with gelu(a) kept and fp32 norms
  CHECK(models::activation_bytes_per_token(g, true) == 33856);
  // Qwen2.5-0.5B: C 896, 14 heads × 64, 2 kv heads (KD 128), F 4864:
  // 4·(2·896 + 2·896 + 2·128 + 14 + 4 + 2·4864) = 54344, + 2·896·4 or 2·896·2.
  const auto q = models::transformer_config::from_json(nlohmann::json{
      {"model_type", "qwen2"}, {"hidden_size", 896}, {"num_attention_heads", 14}, {"num_key_value_heads", 2},
      {"intermediate_size", 4864}, {"num_hidden_layers", 24}, {"vocab_size", 151936}});
  CHECK(models::activation_bytes_per_token(q, false) == 61512);  // 80968 with swiglu kept
  CHECK(models::activation_bytes_per_token(q, true) == 57928);
}

TEST_CASE("the memory estimate with gradient checkpointing keeps each layer's input and one layer's activations") {
  const auto c = models::transformer_config::from_json(nlohmann::json{{"model_type", "gpt2"}});  // GPT-2 small
  models::run_shape r{.rows = 16, .row_length = 512, .training = true, .optimizer_slots = 2};
  // Per layer: 8192 tokens × 36928 bytes (activation_bytes_per_token) + 16 rows × 12 heads × 512²
  // floats; shared by all layers: 8192 tokens × (2·768 + 3072) floats (final residual and norm, MLP activation).
  const std::uint64_t per_layer = 8192ull * 36928 + 4 * 16ull * 12 * 512 * 512, shared = 8192ull * (1536 + 3072);
  CHECK(models::estimate_memory(c, r).activations == 13 * per_layer + 4 * shared);
  r.gradient_checkpointing = true;
  const auto m = models::estimate_memory(c, r);
  CHECK(m.activations == 2 * per_layer + 4 * (12 * 8192ull * 768 + shared));  // 1.36 GiB instead of 6.24
  CHECK(m.gradients == 4 * 124439808ull);  // the rest is unchanged
  r.training = false;                       // forward only: nothing to checkpoint
  CHECK(models::estimate_memory(c, r).activations == models::estimate_memory(c, {.rows = 16, .row_length = 512, .training = false}).activations);
}

TEST_CASE("check_memory: over the limit is a config_error that says how to raise it; a negative limit turns it off") {
  const auto c = models::transformer_config::from_json(nlohmann::json{{"model_type", "gpt2"}});
  const auto m = models::estimate_memory(c, {.rows = 16, .row_length = 1024});
  const auto msg = message_of<config_error>([&] { models::check_memory(m, 1.0, "gpt2-dir", "set training.memory_limit_gib"); });
  CHECK(msg.starts_with("gpt2-dir: this run needs about "));
  CHECK(msg.find("more than the 1.00 GiB of the configured limit; set training.memory_limit_gib") != std::string::npos);
  CHECK_NOTHROW(models::check_memory(m, 1000.0, "gpt2-dir", ""));
  CHECK_NOTHROW(models::check_memory(m, -1.0, "gpt2-dir", ""));
  // LoRA r = 10^6 on every projection: an estimate, not an allocation.
  const auto big = models::estimate_memory(c, {.rows = 2, .row_length = 16, .lora_rank = 1000000, .lora_targets = {"c_attn", "c_proj", "c_fc"}});
  CHECK(big.total() > (std::uint64_t(1) << 40));
  CHECK(models::machine_memory_bytes() > 0);
}

TEST_CASE("from_pretrained refuses a model no machine holds before allocating it") {
  // Legal sizes (each under its limit), 2^24 × 2^17 floats of embeddings: 8 PiB.
  const auto dir = write_config("too_big", R"({"model_type": "gpt2", "vocab_size": 16777216, "n_embd": 131072, "n_layer": 1,
      "n_head": 8, "n_positions": 16})");
  const auto msg = message_of<config_error>([&] { (void)models::from_pretrained<models::gpt2<B>>(B{}, dir); });
  CHECK(msg.starts_with((dir / "config.json").string() + ": this run needs about "));
}
