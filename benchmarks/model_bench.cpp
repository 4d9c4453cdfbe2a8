// benchmarks/model_bench.cpp — prefopt's side of the model-level DPO comparison (driven by model_run.py).
//
//   prefopt_model_bench --model DIR --pairs FILE --layout two_rows|prefix [--lora ADAPTER_DIR]
//                       [--head fused|plain] [--warmup 1 --steps 2]
//
// --head fused (the default, what prefopt's trainer runs for the sigmoid loss: training.fused_head)
// applies the loss's gradient inside the LM head's forward, chunk by chunk of whole pairs, with no
// logits recomputed; plain: the forward, the loss, then the backward (the head recomputes logits).
//
// One DPO step (sigmoid loss, β from the pairs file, precomputed reference log-probs):
// zero_grad, forward, loss, backward — no optimizer step, as on the PyTorch side
// (torch_model_bench.py). The model is a Hugging Face folder (GPT-2 or a Llama-family model such
// as Qwen2, by config.json's model_type). With --lora, LoRA adapters are attached with the r,
// lora_alpha and target_modules of ADAPTER_DIR/adapter_config.json and their weights loaded from
// it (PEFT's format), so both sides start from the same non-zero adapters; only the adapters train.
// Prints one JSON object: per-step seconds, the peak resident memory of the measured region
// (bench_support.hpp: absolute and over its start), and the numbers model_run.py checks against
// PyTorch (loss, per-sequence log-probs, the trainable gradient's squared norm).
// Threads: OMP_NUM_THREADS.
#include <omp.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_support.hpp"
#include "dpo_spec.hpp"
#include "prefopt/backends/eigen/openblas_kernels.hpp"
#include "prefopt/backends/eigen.hpp"
#include "prefopt/losses/evaluate.hpp"
#include "prefopt/losses/sigmoid.hpp"
#include "prefopt/models/lora.hpp"
#include "prefopt/models/transformer_io.hpp"

using namespace prefopt;
using json = nlohmann::json;
using backend = backends::eigen;

namespace {

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot open " + path);
  return json::parse(in);
}

template <class Model> json run(Model& m, const bench::args& a) {
  const bench::dpo_spec spec = bench::read_dpo_spec(a.str("pairs"));
  const auto& pairs = spec.pairs;
  const auto& ref = spec.reference_logps;
  const double beta = spec.beta;
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
  const losses::sigmoid dpo{.beta = beta};
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
      return;
    }
    m.forward(batch, out, {});
    const auto r = evaluate(dpo, pairs_of(out, 0, n));
    loss = r.loss;
    std::vector<double> d(r.d_policy_chosen);
    d.insert(d.end(), r.d_policy_rejected.begin(), r.d_policy_rejected.end());
    m.backward(std::span<const double>(d));
  };
  bench::peak_probe probe;
  probe.start();
  const auto t = bench::time_runs(a.num("warmup", 1), a.num("steps", 2), step);
  return {{"impl", "prefopt"},
          {"threads", omp_get_max_threads()},
          {"times_s", t.wall},
          {"median_s", bench::median(t.wall)},
          {"cpu_s", t.cpu},
          {"median_cpu_s", bench::median(t.cpu)},
          {"peak_delta_kb", probe.peak_delta_kb()},
          {"peak_kb", bench::status_kb("VmHWM")},
          {"rss_at_start_kb", probe.base_kb()},
          {"peak_reset_ok", probe.reset_ok()},
          {"layout", layout},
          {"head", head},
          {"tokens", batch.size()},
          {"rows", batch.rows()},
          {"loss", loss},
          {"logps", out.logp},
          {"grad_sum_squares", m.backend().sum_squares(m.gradients())}};
}

template <class Model> json run_model(const bench::args& a) {
  auto base = models::from_pretrained<Model>(backend{}, a.str("model"));
  const std::string adapter = a.str("lora", "-");
  if (adapter == "-") return run(base, a);
  const json c = read_json(adapter + "/adapter_config.json");
  models::lora_config cfg{.r = c.at("r").get<int>(),
                          .alpha = c.at("lora_alpha").get<double>(),
                          .dropout = c.value("lora_dropout", 0.0),
                          .target_modules = c.at("target_modules").get<std::vector<std::string>>()};
  models::lora<Model> m(std::move(base), cfg);
  m.load_adapter(adapter);
  json j = run(m, a);
  j["lora_r"] = cfg.r;
  j["trainable_parameters"] = m.parameters().size();
  return j;
}

} // namespace

int main(int argc, char** argv) {
  prefopt::backends::use_better_blas_kernels(argv);  // as the prefopt program does
  try {
    const bench::args a(argc, argv, 1);
    const std::string type = read_json(a.str("model") + "/config.json").value("model_type", "");
    json j = type == "gpt2" ? run_model<models::gpt2<backend>>(a) : run_model<models::llama<backend>>(a);
    j["model_type"] = type;
    std::cout << j.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "prefopt_model_bench: " << e.what() << "\n";
    return 1;
  }
}
