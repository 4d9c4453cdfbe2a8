// benchmarks/model_bench.hpp — the DPO step of prefopt_model_bench, written once over the backend:
// model_bench.cpp instantiates it for the eigen backend, model_bench_cuda.cpp for the cuda backend
// (two translation units, so a CUDA build compiles them in parallel and a CPU build needs no CUDA).
//
// One DPO step (sigmoid loss, β from the pairs file, precomputed reference log-probs):
// zero_grad, forward, loss, backward — no optimizer step, as on the PyTorch side
// (torch_model_bench.py). A backend's `device_hooks` wait for its queued work at the end of each
// step (the step's time is the device's) and measure its peak memory (cuda: the memory pool's
// high-water mark; eigen: none, the process's resident memory already counts it).
//
// Model FLOPs of the step (for MFU; benchmarks/README.md, "GPU"): PaLM's count (Chowdhery et al.
// 2022, appendix B), forward + backward of the policy on every token of the two-row batch:
//   Σ_rows len · (6·N + 12·L·(heads·head_dim)·len)
// N: the parameters every token multiplies (all, the tied embedding counted once as the LM head,
// GPT-2's position table left out, LoRA adapters added), L: layers. Attention is counted as PaLM
// does, without halving for the causal mask. The same count for every row of a shape, whatever it
// executes: LoRA rows skip the frozen weights' gradient GEMMs, prefix-shared rows the second
// prompt, prefopt's head the prompt positions; so a row's MFU is the model's work per second.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "dpo_spec.hpp"
#include "prefopt/core/bf16.hpp"
#include "prefopt/losses/evaluate.hpp"
#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"

namespace prefopt::bench {

using json = nlohmann::json;

inline int openmp_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;  // built without OpenMP (a machine without it: the GPU case needs none)
#endif
}

inline json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot open " + path);
  return json::parse(in);
}

// What a backend adds to the measurement (see the top of this file).
struct device_hooks {
  std::function<void()> synchronize = [] {};      // wait for the queued work
  std::function<void()> start_peak = [] {};       // start of the measured region
  std::function<json()> memory = [] { return json::object(); };  // peak device memory and the device
};

// The backend with --precision fp32|bf16 (core/bf16.hpp).
template <class B> B backend_with_precision(const args& a) {
  B b{};
  b.matmul_precision = parse_precision(a.str("precision", "fp32"), "--precision");
  return b;
}

// PaLM's model FLOPs of one step over the two-row batch of `pairs` (see the top of this file).
inline double model_flops(const std::vector<models::tokenized_pair>& pairs, const models::transformer_config& c,
                          double flop_parameters) {
  double f = 0.0;
  for (const auto& p : pairs)
    for (const auto* completion : {&p.chosen, &p.rejected}) {
      const double len = double(p.prompt.size() + completion->size());
      f += len * (6.0 * flop_parameters + 12.0 * c.layers * double(c.heads) * c.head_dim * len);
    }
  return f;
}

template <class Model> json run(Model& m, const args& a, const device_hooks& hooks) {
  const dpo_spec spec = read_dpo_spec(a.str("pairs"));
  const auto& pairs = spec.pairs;
  const auto& ref = spec.reference_logps;
  const std::string layout = a.str("layout");
  if (layout != "two_rows" && layout != "prefix") throw std::invalid_argument("--layout two_rows|prefix");
  const models::token_batch batch = models::pack_pairs(pairs, layout == "prefix");
  const std::size_t n = pairs.size();
  const std::string head = a.str("head", "fused");
  if (head != "fused" && head != "plain") throw std::invalid_argument("--head fused|plain");
  models::sequence_logps out;
  double loss = 0.0;
  // Pairs [first, first + count) of a forward's output with their reference log-probs.
  auto pairs_of = [&](const models::sequence_logps& o, std::size_t first, std::size_t count) {
    pair_batch<double> b;
    const auto at = [&](const auto& v, std::size_t off) {
      return std::vector<double>(v.begin() + std::ptrdiff_t(off + first), v.begin() + std::ptrdiff_t(off + first + count));
    };
    b.policy_chosen = at(o.logp, 0);
    b.policy_rejected = at(o.logp, n);
    b.reference_chosen = at(ref, 0);
    b.reference_rejected = at(ref, n);
    return b;
  };
  const losses::sigmoid dpo{.beta = spec.beta};
  const batch_context<double> ctx{double(n), 0.0};  // the mean over the batch's n pairs
  auto step = [&] {
    m.zero_grad();
    if (head == "fused") {
      m.forward_fused(batch, out, {}, [&](const models::sequence_logps& o, std::size_t first, std::size_t count, std::span<double> d) {
        const auto r = evaluate(dpo, pairs_of(o, first, count), ctx);
        for (std::size_t i = 0; i < count; ++i) d[first + i] = r.d_policy_chosen[i], d[n + first + i] = r.d_policy_rejected[i];
      });
      loss = evaluate(dpo, pairs_of(out, 0, n)).loss;
      m.backward_fused();
    } else {
      m.forward(batch, out, {});
      const auto r = evaluate(dpo, pairs_of(out, 0, n));
      loss = r.loss;
      std::vector<double> d(r.d_policy_chosen);
      d.insert(d.end(), r.d_policy_rejected.begin(), r.d_policy_rejected.end());
      m.backward(std::span<const double>(d));
    }
    hooks.synchronize();
  };
  hooks.synchronize();
  peak_probe probe;
  probe.start();
  hooks.start_peak();
  const auto t = time_runs(a.num("warmup", 1), a.num("steps", 2), step);
  std::size_t two_row_tokens = 0;
  for (const auto& p : pairs) two_row_tokens += 2 * p.prompt.size() + p.chosen.size() + p.rejected.size();
  json j = {{"impl", "prefopt"},
            {"threads", openmp_threads()},
            {"times_s", t.wall},
            {"median_s", median(t.wall)},
            {"cpu_s", t.cpu},
            {"median_cpu_s", median(t.cpu)},
            {"peak_delta_kb", probe.peak_delta_kb()},
            {"peak_kb", status_kb("VmHWM")},
            {"rss_at_start_kb", probe.base_kb()},
            {"peak_reset_ok", probe.reset_ok()},
            {"layout", layout},
            {"head", head},
            {"precision", a.str("precision", "fp32")},
            {"tokens", batch.size()},
            {"two_row_tokens", two_row_tokens},
            {"tokens_per_s", double(two_row_tokens) / median(t.wall)},  // the two-row batch's tokens, any layout
            {"rows", batch.rows()},
            {"loss", loss},
            {"logps", out.logp},
            {"grad_sum_squares", m.backend().sum_squares(m.gradients())}};
  j.update(hooks.memory());
  return j;
}

// Loads the model (with --lora, its adapters) on backend b and runs the step.
template <class Model, class B> json run_model(const B& b, const args& a, const device_hooks& hooks) {
  auto base = models::from_pretrained<Model>(b, a.str("model"));
  const models::transformer_config c = base.config();  // a copy: base moves into the LoRA wrapper
  // N of the FLOP count: every parameter but GPT-2's position table (a lookup, no product).
  double flop_parameters = double(base.parameters().size());
  if (c.arch == models::architecture::gpt2) flop_parameters -= double(c.max_positions) * c.hidden;
  const std::string adapter = a.str("lora", "-");
  const dpo_spec spec = read_dpo_spec(a.str("pairs"));
  json j;
  if (adapter == "-") {
    j = run(base, a, hooks);
    j["trainable_parameters"] = base.parameters().size();
  } else {
    const json cj = read_json(adapter + "/adapter_config.json");
    models::lora_config cfg{.r = cj.at("r").get<int>(),
                            .alpha = cj.at("lora_alpha").get<double>(),
                            .dropout = cj.value("lora_dropout", 0.0),
                            .target_modules = cj.at("target_modules").get<std::vector<std::string>>()};
    models::lora<Model> m(std::move(base), cfg);
    m.load_adapter(adapter);
    flop_parameters += double(m.parameters().size());
    j = run(m, a, hooks);
    j["lora_r"] = cfg.r;
    j["trainable_parameters"] = m.parameters().size();
  }
  j["flop_parameters"] = flop_parameters;
  j["model_flops"] = model_flops(spec.pairs, c, flop_parameters);
  j["flops_counted_as"] = "PaLM: sum over two-row rows of len*(6N + 12*L*heads*head_dim*len)";
  return j;
}

// The step of the model in --model (GPT-2 or a Llama-family model, by config.json's model_type).
template <class B> json run_any(const B& b, const args& a, const device_hooks& hooks) {
  const std::string type = read_json(a.str("model") + "/config.json").value("model_type", "");
  json j = type == "gpt2" ? run_model<models::gpt2<B>>(b, a, hooks) : run_model<models::llama<B>>(b, a, hooks);
  j["model_type"] = type;
  return j;
}

} // namespace prefopt::bench
