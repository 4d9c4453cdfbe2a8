// prefopt/models/transformer_config.hpp — a transformer's shape, read from Hugging Face config.json.
//
// Architectures: "gpt2" (learned positions, LayerNorm, GELU-tanh MLP, fused c_attn, Conv1D weight
// layout, tied head) and the Llama family — "llama", "qwen2", "mistral" without sliding window —
// (RMSNorm, rotary positions, SwiGLU, grouped-query attention, optional q/k/v biases as Qwen2
// has them, tied or untied head). Field names are Hugging Face's, with their defaults.
#pragma once

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/core/json.hpp"
#include "prefopt/core/transformer_ops.hpp"

namespace prefopt::models {

enum class architecture { gpt2, llama };

// Upper bounds on the sizes config.json may give, checked (with the type's range and "a whole
// number") before any of them is used. Each lies far above every published model of these
// families (vocab 256k, width 16k, 126 layers, 128k positions); they exist so a corrupt or hostile
// file is an error naming its field, not a wrap-around or an allocation of terabytes. The memory
// a model of legal sizes needs is checked separately (models/memory_estimate.hpp). To go past one,
// change it here and rebuild. Documented in docs/training.md, "Limits".
struct transformer_limits {
  static constexpr int vocab_size = 1 << 24;         // 16 777 216 tokens
  static constexpr int hidden = 1 << 17;             // 131 072
  static constexpr int layers = 1024;
  static constexpr int heads = 1024;                 // attention and key/value heads
  static constexpr int head_dim = 1 << 14;           // 16 384
  static constexpr int intermediate = 1 << 20;       // 1 048 576
  static constexpr int max_positions = 1 << 24;      // 16 777 216
};

struct transformer_config {
  architecture arch = architecture::gpt2;
  std::string model_type = "gpt2";
  int vocab_size = 0;
  int hidden = 0;              // n_embd / hidden_size
  int layers = 0;              // n_layer / num_hidden_layers
  int heads = 0;               // n_head / num_attention_heads
  int kv_heads = 0;            // num_key_value_heads (= heads for GPT-2)
  int head_dim = 0;            // hidden / heads unless given
  int intermediate = 0;        // n_inner (4·hidden) / intermediate_size
  int max_positions = 0;       // n_positions / max_position_embeddings
  double norm_eps = 1e-5;      // layer_norm_epsilon / rms_norm_eps
  double rope_theta = 10000.0;
  bool tie_word_embeddings = true;
  bool attention_bias = false; // q/k/v (and o for llama's attention_bias) biases
  bool o_bias = false;
  bool mlp_bias = false;
  // Llama-3 rope scaling ("rope_type": "llama3"); factor 0 = none.
  double rope_factor = 0.0, rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  int rope_original_max_positions = 8192;
  // The token-embedding row that Llama/Qwen2/Mistral build as nn.Embedding(padding_idx =
  // pad_token_id): the lookup adds no gradient to it (a tied head's gradient still does). A negative
  // pad_token_id counts from the end, as torch does; absent, null or outside the vocabulary: -1,
  // none. GPT-2 sets none.
  int embedding_padding_row = -1;
  nlohmann::json raw{};        // the file as read (written back on save)

  // Rotary inverse frequencies θ_i = base^(−2i/D), i < D/2, with Llama-3 scaling when configured.
  std::vector<float> inv_freq() const {
    std::vector<float> f = rope_inv_freq(std::size_t(head_dim), float(rope_theta));
    if (rope_factor > 0.0) {
      const double low_wavelen = rope_original_max_positions / rope_low_freq_factor;
      const double high_wavelen = rope_original_max_positions / rope_high_freq_factor;
      for (auto& v : f) {
        const double wavelen = 2.0 * M_PI / v;
        if (wavelen > low_wavelen) v = float(v / rope_factor);
        else if (wavelen >= high_wavelen) {
          const double smooth = (rope_original_max_positions / wavelen - rope_low_freq_factor) /
                                (rope_high_freq_factor - rope_low_freq_factor);
          v = float((1.0 - smooth) * v / rope_factor + smooth * v);
        }
      }
    }
    return f;
  }

  // config.json as Hugging Face writes it: the file this config was read from (unknown fields such
  // as token ids kept) with every field prefopt knows set from this struct.
  nlohmann::json to_json() const {
    nlohmann::json j = raw.is_object() ? raw : nlohmann::json::object();
    j["model_type"] = model_type;
    j["vocab_size"] = vocab_size;
    if (arch == architecture::gpt2) {
      j["architectures"] = {"GPT2LMHeadModel"};
      j["n_embd"] = hidden;
      j["n_layer"] = layers;
      j["n_head"] = heads;
      j["n_inner"] = intermediate == 4 * hidden ? nlohmann::json() : nlohmann::json(intermediate);
      j["n_positions"] = max_positions;
      j["layer_norm_epsilon"] = norm_eps;
      if (!j.contains("activation_function")) j["activation_function"] = "gelu_new";
    } else {
      if (!j.contains("architectures"))
        j["architectures"] = {model_type == "qwen2" ? "Qwen2ForCausalLM" : model_type == "mistral" ? "MistralForCausalLM"
                                                                                                  : "LlamaForCausalLM"};
      j["hidden_size"] = hidden;
      j["num_hidden_layers"] = layers;
      j["num_attention_heads"] = heads;
      j["num_key_value_heads"] = kv_heads;
      j["head_dim"] = head_dim;
      j["intermediate_size"] = intermediate;
      j["max_position_embeddings"] = max_positions;
      j["rms_norm_eps"] = norm_eps;
      if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) j["rope_parameters"]["rope_theta"] = rope_theta;
      else j["rope_theta"] = rope_theta;
      j["tie_word_embeddings"] = tie_word_embeddings;
      if (model_type != "qwen2") j["attention_bias"] = attention_bias;
      j["mlp_bias"] = mlp_bias;
      if (!j.contains("hidden_act")) j["hidden_act"] = "silu";
    }
    return j;
  }

  void validate(const std::string& where) const {
    auto bad = [&](const char* f, const std::string& why) { throw config_error(where + ": field '" + f + "'", why); };
    if (vocab_size <= 0) bad("vocab_size", "must be > 0");
    if (hidden <= 0) bad("hidden_size", "must be > 0");
    if (layers <= 0) bad("num_hidden_layers", "must be > 0");
    if (heads <= 0) bad("num_attention_heads", "must be > 0");
    if (kv_heads <= 0 || heads % kv_heads != 0) bad("num_key_value_heads", "must divide num_attention_heads");
    if (head_dim <= 0 || (arch == architecture::gpt2 && head_dim * heads != hidden))
      bad("head_dim", "hidden_size must be num_attention_heads × head_dim");
    if (arch == architecture::llama && head_dim % 2 != 0) bad("head_dim", "rotary embeddings need an even head_dim");
    if (intermediate <= 0) bad("intermediate_size", "must be > 0");
    if (max_positions <= 0) bad("max_position_embeddings", "must be > 0");
    if (!(norm_eps > 0.0)) bad("rms_norm_eps", "must be > 0");
  }

  static transformer_config from_json(const nlohmann::json& j, const std::string& where = "config.json") {
    transformer_config c;
    c.raw = j;
    auto get = [&](const char* key, auto fallback) {
      using V = decltype(fallback);
      const auto it = j.find(key);
      if (it == j.end() || it->is_null()) return fallback;
      if constexpr (std::is_same_v<V, int>)
        if (it->is_number()) return json_integer<int>(*it, where + ": field '" + key + "'");
      try {
        return it->template get<V>();
      } catch (const nlohmann::json::exception&) {
        throw config_error(where + ": field '" + key + "'", "has the wrong type (" + std::string(it->type_name()) + ")");
      }
    };
    // A size: a whole number in [0, limit] (validate() then asks for > 0 where it must be).
    auto size = [&](const char* key, int fallback, int limit) {
      const auto it = j.find(key);
      if (it == j.end() || it->is_null()) return fallback;
      if (!it->is_number()) throw config_error(where + ": field '" + key + "'", "has the wrong type (" + std::string(it->type_name()) + ")");
      return json_integer<int>(*it, where + ": field '" + key + "'", 0, limit);
    };
    using lim = transformer_limits;
    c.model_type = get("model_type", std::string());
    if (c.model_type == "gpt2") {
      c.arch = architecture::gpt2;
      c.vocab_size = size("vocab_size", 50257, lim::vocab_size);
      c.hidden = size("n_embd", 768, lim::hidden);
      c.layers = size("n_layer", 12, lim::layers);
      c.heads = size("n_head", 12, lim::heads);
      c.kv_heads = c.heads;
      c.head_dim = c.heads > 0 ? c.hidden / c.heads : 0;
      c.intermediate = size("n_inner", 4 * c.hidden, lim::intermediate);
      c.max_positions = size("n_positions", 1024, lim::max_positions);
      c.norm_eps = get("layer_norm_epsilon", 1e-5);
      c.tie_word_embeddings = true;
      c.attention_bias = c.o_bias = c.mlp_bias = true;
      const std::string act = get("activation_function", std::string("gelu_new"));
      if (act != "gelu_new" && act != "gelu_pytorch_tanh")
        throw config_error(where + ": field 'activation_function'", "'" + act + "' is not supported (gelu_new only)");
    } else if (c.model_type == "llama" || c.model_type == "qwen2" || c.model_type == "mistral") {
      c.arch = architecture::llama;
      c.vocab_size = size("vocab_size", 32000, lim::vocab_size);
      c.hidden = size("hidden_size", 4096, lim::hidden);
      c.layers = size("num_hidden_layers", 32, lim::layers);
      c.heads = size("num_attention_heads", 32, lim::heads);
      c.kv_heads = size("num_key_value_heads", c.heads, lim::heads);
      c.head_dim = size("head_dim", c.heads > 0 ? c.hidden / c.heads : 0, lim::head_dim);
      c.intermediate = size("intermediate_size", 11008, lim::intermediate);
      c.max_positions = size("max_position_embeddings", 2048, lim::max_positions);
      c.norm_eps = get("rms_norm_eps", 1e-6);
      c.rope_theta = get("rope_theta", 10000.0);
      c.tie_word_embeddings = get("tie_word_embeddings", false);
      const bool qwen = c.model_type == "qwen2";
      c.attention_bias = qwen ? true : get("attention_bias", false);
      c.o_bias = qwen ? false : c.attention_bias;
      c.mlp_bias = get("mlp_bias", false);
      if (const auto it = j.find("pad_token_id"); it != j.end() && !it->is_null()) {
        const std::string field = where + ": field 'pad_token_id'";
        if (!it->is_number()) throw config_error(field, "has the wrong type (" + std::string(it->type_name()) + ")");
        const double p = it->get<double>(), v = c.vocab_size;
        if (!std::isfinite(p) || std::floor(p) != p) throw config_error(field, "must be a whole number, got " + json_excerpt(*it));
        if (p >= -v && p < v) c.embedding_padding_row = int(p < 0 ? v + p : p);
      }
      const std::string act = get("hidden_act", std::string("silu"));
      if (act != "silu") throw config_error(where + ": field 'hidden_act'", "'" + act + "' is not supported (silu only)");
      if (c.model_type == "mistral" && !get("sliding_window", nlohmann::json()).is_null() &&
          get("sliding_window", 0) < c.max_positions)
        throw config_error(where + ": field 'sliding_window'", "sliding-window attention is not supported");
      // Rotary settings: transformers ≥ 5 writes "rope_parameters" {rope_theta, rope_type, ...};
      // older files have "rope_theta" and "rope_scaling".
      nlohmann::json rope = j.contains("rope_parameters") && j["rope_parameters"].is_object() ? j["rope_parameters"]
                            : j.contains("rope_scaling") && j["rope_scaling"].is_object()      ? j["rope_scaling"]
                                                                                               : nlohmann::json::object();
      const std::string rope_key = j.contains("rope_parameters") ? "rope_parameters" : "rope_scaling";
      try {
        if (rope.contains("rope_theta")) c.rope_theta = rope["rope_theta"].get<double>();
        const std::string type = rope.value("rope_type", rope.value("type", std::string("default")));
        if (type == "llama3") {
          c.rope_factor = rope.value("factor", 8.0);
          c.rope_low_freq_factor = rope.value("low_freq_factor", 1.0);
          c.rope_high_freq_factor = rope.value("high_freq_factor", 4.0);
          if (rope.contains("original_max_position_embeddings"))
            c.rope_original_max_positions = json_integer<int>(rope["original_max_position_embeddings"],
                                                              where + ": field '" + rope_key + ".original_max_position_embeddings'", 1, lim::max_positions);
        } else if (type != "default") {
          throw config_error(where + ": field '" + rope_key + ".rope_type'", "'" + type + "' is not supported (default, llama3)");
        }
      } catch (const nlohmann::json::exception& e) {
        throw config_error(where + ": field '" + rope_key + "'", std::string("has a field of the wrong type: ") + e.what());
      }
    } else {
      throw config_error(where + ": field 'model_type'",
                         "'" + c.model_type + "' is not supported (gpt2, llama, qwen2, mistral)");
    }
    c.validate(where);
    return c;
  }

  static transformer_config from_file(const std::filesystem::path& path) {
    return from_json(read_json_file(path), path.string());
  }
};

} // namespace prefopt::models
