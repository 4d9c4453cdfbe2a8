// prefopt/models/lora.hpp — LoRA adapters on a transformer, saved and loaded in PEFT's format.
//
//   y = x·W (+ b) + (α/r)·(x·Aᵀ)·Bᵀ,   A [r × in], B [out × r]     (Hu et al., "LoRA", ICLR 2022)
// Scale α/r, or α/√r with use_rslora (Kalajdzievski, "A Rank Stabilization Scaling Factor for
// Fine-Tuning with LoRA", 2023). Targets are module names as PEFT matches them: a module whose
// full name equals a target or ends with "." + target ("c_attn", "q_proj", "v_proj", ...).
// The base weights are frozen: the model's parameters()/gradients() become the adapters' alone.
// With forward_options::adapters = false the same weights give the base model — the reference
// policy of LoRA training, so one copy of the model serves both (train::reference::adapter_disabled).
// Initialization as PEFT's default: A ~ kaiming_uniform(a = √5) = U(±1/√in), B = 0.
// Saved as PEFT writes it: adapter_config.json + adapter_model.safetensors with names
// "base_model.model.<module>.lora_A.weight" [r × in] and ".lora_B.weight" [out × r].
// Dropout (PEFT's lora_dropout): y = x·W + s·(dropout(x)·Aᵀ)·Bᵀ in training forwards, i.e. when
// forward_options::dropout_seed is set (the trainer sets it); never in inference, the reference
// or evaluation. The masks are a function of (seed, adapter, element) — core/random.hpp — so they
// are redrawn in backward rather than stored, and a resumed run draws the same ones. TRL's
// disable_dropout (default true) turns lora_dropout off as well; train::training_args follows it.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "prefopt/io/atomic_file.hpp"
#include "prefopt/io/safetensors.hpp"
#include "prefopt/models/transformer.hpp"

namespace prefopt::models {

struct lora_config {
  int r = 8;
  double alpha = 8.0;                       // PEFT's lora_alpha default
  double dropout = 0.0;
  std::vector<std::string> target_modules{};
  bool use_rslora = false;

  double scale() const { return use_rslora ? alpha / std::sqrt(double(r)) : alpha / double(r); }
  void validate() const {
    if (r <= 0) throw config_error("lora: field 'r'", "must be > 0");
    if (!(alpha > 0.0)) throw config_error("lora: field 'alpha'", "must be > 0");
    if (!(dropout >= 0.0 && dropout < 1.0)) throw config_error("lora: field 'dropout'", "must lie in [0, 1)");
    if (target_modules.empty()) throw config_error("lora: field 'target_modules'", "name at least one module");
  }
  static bool matches(const std::string& module, const std::string& target) {
    return module == target ||
           (module.size() > target.size() && module.compare(module.size() - target.size(), target.size(), target) == 0 &&
            module[module.size() - target.size() - 1] == '.');
  }
};

template <class Model> class lora : public Model {
public:
  using typename Model::backend_type;

  // Adapters on every module of `base` matching the config, A drawn from `seed`, B = 0.
  lora(Model base, lora_config cfg, std::uint64_t seed = 0) : Model(std::move(base)), cfg_(std::move(cfg)) {
    cfg_.validate();
    std::vector<adapter_ref> refs;
    std::vector<parameter_slice> slices;
    std::size_t total = 0;
    std::vector<std::string> seen;
    for (const auto& layer : this->layout().layers)
      for (const linear_ref* l : const_cast<layer_layout&>(layer).linears()) {
        if (l->module.empty() || std::find(seen.begin(), seen.end(), l->module) != seen.end()) continue;
        bool hit = false;
        for (const auto& t : cfg_.target_modules) hit = hit || lora_config::matches(l->module, t);
        if (!hit) continue;
        seen.push_back(l->module);
        // A fused module (GPT-2 c_attn) adapts its whole output: out = 3C.
        const int out = this->config().arch == architecture::gpt2 && l->module.ends_with("c_attn") ? 3 * l->out : l->out;
        adapter_ref a{l->module, l->in, out, cfg_.r, total, total + std::size_t(cfg_.r) * l->in};
        const std::string stem = "base_model.model." + l->module;
        slices.push_back({stem + ".lora_A.weight", a.a, {std::size_t(cfg_.r), std::size_t(l->in)}, true, true});
        slices.push_back({stem + ".lora_B.weight", a.b, {std::size_t(out), std::size_t(cfg_.r)}, true, true});
        total = a.b + std::size_t(out) * cfg_.r;
        refs.push_back(a);
      }
    if (refs.empty()) throw config_error("lora: field 'target_modules'", "no module of the model matches");
    this->attach_adapters(refs, slices, total, cfg_.scale(), cfg_.dropout);
    std::vector<float> init(total, 0.0f);
    std::mt19937_64 rng(seed);
    for (const auto& a : refs) {
      std::uniform_real_distribution<float> u(-1.0f / std::sqrt(float(a.in)), 1.0f / std::sqrt(float(a.in)));
      for (std::size_t i = 0; i < std::size_t(a.rank) * a.in; ++i) init[a.a + i] = u(rng);
    }
    this->backend().upload(std::span<const float>(init), this->parameters());
  }

  const lora_config& lora_settings() const { return cfg_; }

  // adapter_config.json + adapter_model.safetensors, as PEFT's save_pretrained writes them.
  void save_adapter(const std::filesystem::path& dir, const std::string& base_model_name_or_path = "") {
    std::filesystem::create_directories(dir);
    std::vector<float> host(this->parameters().size());
    this->backend().download(this->parameters(), std::span<float>(host));
    io::safetensors_writer w;
    for (const auto& s : this->parameter_slices()) w.add(s.name, s.shape, std::span<const float>(host).subspan(s.offset, s.size()));
    const std::string config = adapter_config_json(base_model_name_or_path).dump(2) + "\n";
    io::write_atomically(dir / "adapter_config.json", [&](io::atomic_output& out) { out.write(std::string_view(config)); });
    w.write(dir / "adapter_model.safetensors");
  }

  // Loads adapter weights saved by PEFT or save_adapter; the adapter's r must match this one's.
  void load_adapter(const std::filesystem::path& dir) {
    const io::safetensors_file f(dir / "adapter_model.safetensors");
    std::vector<float> host(this->parameters().size());
    for (const auto& s : this->parameter_slices()) {
      f.require(s.name, s.shape);
      f.read_into(s.name, std::span<float>(host).subspan(s.offset, s.size()));
    }
    this->backend().upload(std::span<const float>(host), this->parameters());
  }

  // W ← W + scale·(B·A) (transposed for Conv1D), so the base alone computes the adapted model.
  // The adapters stay attached; call it before saving a merged checkpoint with save_pretrained.
  void merge_into_base() {
    auto& be = this->backend();
    for (const auto& layer : this->layout().layers)
      for (const linear_ref* l : const_cast<layer_layout&>(layer).linears()) {
        if (l->adapter < 0) continue;
        const adapter_ref& a = this->adapters()[std::size_t(l->adapter)];
        const auto B = this->parameters().subspan(a.b + std::size_t(l->adapter_row0) * a.rank);
        const auto A = this->parameters().subspan(a.a);
        if (l->conv1d)  // W [in × out(ld)] += s·Aᵀ·B_rowsᵀ
          be.gemm({.trans_a = true, .trans_b = true, .m = l->in, .n = l->out, .k = a.rank, .lda = a.in, .ldb = a.rank,
                   .ldc = l->ld, .alpha = float(this->adapter_scale()), .beta = 1.0f},
                  A, B, this->base_parameters().subspan(l->w));
        else  // W [out × in] += s·B·A
          be.gemm({.m = l->out, .n = l->in, .k = a.rank, .lda = a.rank, .ldb = a.in, .ldc = l->ld,
                   .alpha = float(this->adapter_scale()), .beta = 1.0f},
                  B, A, this->base_parameters().subspan(l->w));
      }
    // B = 0: the merged adapters add nothing more.
    std::vector<float> host(this->parameters().size());
    be.download(this->parameters(), std::span<float>(host));
    for (const auto& a : this->adapters())
      std::fill(host.begin() + std::ptrdiff_t(a.b), host.begin() + std::ptrdiff_t(a.b + std::size_t(a.out) * a.rank), 0.0f);
    be.upload(std::span<const float>(host), this->parameters());
  }

private:
  nlohmann::json adapter_config_json(const std::string& base) const {
    std::vector<std::string> targets = cfg_.target_modules;
    return {{"alpha_pattern", nlohmann::json::object()},
            {"auto_mapping", nullptr},
            {"base_model_name_or_path", base.empty() ? nlohmann::json() : nlohmann::json(base)},
            {"bias", "none"},
            {"fan_in_fan_out", this->config().arch == architecture::gpt2},
            {"inference_mode", true},
            {"init_lora_weights", true},
            {"layers_pattern", nullptr},
            {"layers_to_transform", nullptr},
            {"lora_alpha", cfg_.alpha},
            {"lora_dropout", cfg_.dropout},
            {"modules_to_save", nullptr},
            {"peft_type", "LORA"},
            {"r", cfg_.r},
            {"rank_pattern", nlohmann::json::object()},
            {"revision", nullptr},
            {"target_modules", targets},
            {"task_type", "CAUSAL_LM"},
            {"use_dora", false},
            {"use_rslora", cfg_.use_rslora}};
  }
  lora_config cfg_;
};

// The base model type of a LoRA model (the model itself otherwise).
template <class M> struct base_model { using type = M; };
template <class M> struct base_model<lora<M>> { using type = M; };
template <class M> using base_model_t = typename base_model<M>::type;

} // namespace prefopt::models
