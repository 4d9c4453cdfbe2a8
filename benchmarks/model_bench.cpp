// benchmarks/model_bench.cpp — prefopt's side of the model-level DPO comparison (driven by model_run.py).
//
//   prefopt_model_bench --model DIR --pairs FILE --layout two_rows|prefix [--lora ADAPTER_DIR]
//                       [--warmup 1 --steps 2]
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
  const json spec = read_json(a.str("pairs"));
  std::vector<models::tokenized_pair> pairs;
  for (const auto& p : spec["pairs"])
    pairs.push_back({p["prompt"].get<std::vector<std::int32_t>>(), p["chosen"].get<std::vector<std::int32_t>>(),
                     p["rejected"].get<std::vector<std::int32_t>>()});
  const auto ref = spec["reference_logps"].get<std::vector<double>>();
  const double beta = spec["beta"].get<double>();
  const std::string layout = a.str("layout");
  if (layout != "two_rows" && layout != "prefix") throw std::invalid_argument("--layout two_rows|prefix");
  const models::token_batch batch = models::pack_pairs(pairs, layout == "prefix");
  const std::size_t n = pairs.size();
  models::sequence_logps out;
  double loss = 0.0;
  auto step = [&] {
    m.zero_grad();
    m.forward(batch, out, {});
    pair_batch<double> b;
    b.policy_chosen.assign(out.logp.begin(), out.logp.begin() + std::ptrdiff_t(n));
    b.policy_rejected.assign(out.logp.begin() + std::ptrdiff_t(n), out.logp.end());
    b.reference_chosen.assign(ref.begin(), ref.begin() + std::ptrdiff_t(n));
    b.reference_rejected.assign(ref.begin() + std::ptrdiff_t(n), ref.end());
    const auto r = evaluate(losses::sigmoid{.beta = beta}, b);
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
