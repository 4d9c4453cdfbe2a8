// benchmarks/model_bench.cpp — prefopt's side of the model-level DPO comparison (driven by model_run.py).
//
//   prefopt_model_bench --model DIR --pairs FILE --layout two_rows|prefix [--lora ADAPTER_DIR]
//                       [--backend eigen|cuda] [--precision fp32|bf16]
//                       [--head fused|plain] [--warmup 1 --steps 2]
//
// --backend cuda exists when the program is built with the cuda backend (PREFOPT_ENABLE_CUDA=ON;
// model_bench_cuda.cpp). --precision bf16: matrix products and attention on bf16-rounded inputs,
// fp32 weights, gradients and sums (core/bf16.hpp); on the eigen backend an emulation, on cuda
// cuBLASLt's bf16 GEMMs.
// --head fused (the default, what prefopt's trainer runs for the sigmoid loss: training.fused_head)
// applies the loss's gradient inside the LM head's forward, chunk by chunk of whole pairs, with no
// logits recomputed; plain: the forward, the loss, then the backward (the head recomputes logits).
//
// The step itself: model_bench.hpp. The model is a Hugging Face folder (GPT-2 or a Llama-family
// model such as Qwen2, by config.json's model_type). With --lora, LoRA adapters are attached with
// the r, lora_alpha and target_modules of ADAPTER_DIR/adapter_config.json and their weights loaded
// from it (PEFT's format), so both sides start from the same non-zero adapters; only the adapters
// train. Prints one JSON object: per-step seconds, the peak resident memory of the measured region
// (bench_support.hpp: absolute and over its start), on cuda the peak device memory, the step's
// model FLOPs, and the numbers model_run.py checks against PyTorch (loss, per-sequence log-probs,
// the trainable gradient's squared norm). Threads: OMP_NUM_THREADS.
#include <iostream>

#include "model_bench.hpp"
#include "prefopt/backends/eigen.hpp"
#include "prefopt/backends/eigen/openblas_kernels.hpp"

#ifdef PREFOPT_MODEL_BENCH_CUDA
namespace prefopt::bench {
json run_cuda(const args& a);  // model_bench_cuda.cpp
}
#endif

int main(int argc, char** argv) {
  using namespace prefopt;
  prefopt::backends::use_better_blas_kernels(argv);  // as the prefopt program does
  try {
    const bench::args a(argc, argv, 1);
    const std::string backend = a.str("backend", "eigen");
    bench::json j;
    if (backend == "eigen") {
      j = bench::run_any(bench::backend_with_precision<backends::eigen>(a), a, {});
    } else if (backend == "cuda") {
#ifdef PREFOPT_MODEL_BENCH_CUDA
      j = bench::run_cuda(a);
#else
      throw std::invalid_argument("--backend cuda: this prefopt_model_bench was built without the cuda backend "
                                  "(configure with -DPREFOPT_ENABLE_CUDA=ON and an nvcc)");
#endif
    } else {
      throw std::invalid_argument("--backend eigen|cuda, not '" + backend + "'");
    }
    j["backend"] = backend;
    std::cout << j.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "prefopt_model_bench: " << e.what() << "\n";
    return 1;
  }
}
