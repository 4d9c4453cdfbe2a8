"""The GPU case of the model-level comparison (model_run.py --gpu; benchmarks/README.md, "GPU").

One DPO step (sigmoid, beta 0.1, precomputed reference log-probs, forward + backward, no optimizer
step) at the GPT-2-small and Qwen2.5-0.5B shapes, 8 pairs x (256 prompt + 256 completion) tokens,
bf16, full fine-tune and LoRA r 16. Rows per shape and mode:
  prefopt two-row / prefix-shared     prefopt_model_bench --backend cuda --precision bf16
  torch TRL 1.16 path (bf16 amp)      TRL's _compute_loss, fp32 master weights under autocast(bf16): TRL's bf16: true
  torch TRL 1.16 path (bf16 weights)  the same with the model cast to bf16
  torch plain (bf16 weights)          the fastest eager path, model cast to bf16
(LoRA: the same with prefopt's adapters / PEFT.) Every row runs in a fresh process (one untimed
warm-up step, then --steps timed); the rows of a shape and mode run one after another, alternating
prefopt and torch, shapes and modes interleaved within each round; a time budget (--budget-s)
stops starting new processes, and the table says which rows did not run.

Figures per row: s/step (median of every timed step), tokens/s (the two-row batch's 8192 tokens
over s/step, the same token count for every row whatever its layout executes), peak device memory
(prefopt: its memory pool's high-water mark; torch: max_memory_allocated; both reset at the start
of the measured region, both including the weights), model TFLOP/s and MFU (PaLM's model FLOPs,
model_bench.hpp, over the card's dense bf16 peak: bench_common.DENSE_BF16_TFLOPS), and the ratios
to TRL's bf16 row (the issue's reference: what `DPOTrainer` with `bf16: true` runs).

Equal numbers (bf16): every row is compared with the float32 step on the plain path, computed once
in prepare (torch, float32 matmuls). A bf16 row rounds the inputs of every product (and the torch
bf16-weights rows their logits and per-token log-probs too) to 8 significant bits: a relative
error of at most 2^-8 per rounding, a few roundings deep, so each per-token log-prob is off by up
to about 2^-7 of its magnitude l (about log V for these random-weight models), with independent
signs from token to token; over a completion of n tokens the sum is then off by about sqrt(n) 2^-7 l
at one standard deviation, and we allow three: |dlogp| <= 3 sqrt(n) 2^-7 l + 1e-2. The loss moves
by at most beta per unit of each of a pair's two policy log-probs: |dloss| <= 2 beta tol(logp).
The gradient's squared norm: a sum over millions of products of bf16-rounded factors, whose
independent errors mostly cancel, within 5% relative (a systematic error -- a wrong scale, a
missing term -- moves it by far more). A row outside these is FAILED and the run exits 1.
"""
import json
import math
import os
import statistics
import subprocess
import sys
import time

from bench_common import dense_bf16_peak, gpu_description, loadavg

GPU_SHAPES = ["qwen2.5-0.5b", "gpt2-small"]  # the issue's MFU target is on the first
BF16 = ["--precision", "bf16"]
# (mode, row, kind, arguments); the device arguments are added by argv_of.
GPU_ROWS = [
    ("full", "prefopt two-row", "prefopt", ["--layout", "two_rows"] + BF16),
    ("full", "torch TRL 1.16 path (bf16 amp)", "torch", ["--path", "trl", "--dtype", "bf16", "--weights", "fp32"]),
    ("full", "prefopt prefix-shared", "prefopt", ["--layout", "prefix"] + BF16),
    ("full", "torch TRL 1.16 path (bf16 weights)", "torch", ["--path", "trl", "--dtype", "bf16", "--weights", "bf16"]),
    ("full", "torch plain (bf16 weights)", "torch", ["--path", "plain", "--dtype", "bf16", "--weights", "bf16"]),
    ("lora", "prefopt LoRA two-row", "prefopt", ["--layout", "two_rows"] + BF16),
    ("lora", "torch TRL 1.16 + PEFT (bf16 amp)", "torch", ["--path", "trl", "--dtype", "bf16", "--weights", "fp32"]),
    ("lora", "prefopt LoRA prefix-shared", "prefopt", ["--layout", "prefix"] + BF16),
    ("lora", "torch TRL 1.16 + PEFT (bf16 weights)", "torch", ["--path", "trl", "--dtype", "bf16", "--weights", "bf16"]),
    ("lora", "torch PEFT plain (bf16 weights)", "torch", ["--path", "plain", "--dtype", "bf16", "--weights", "bf16"]),
]
TRL_AMP = {"full": "torch TRL 1.16 path (bf16 amp)", "lora": "torch TRL 1.16 + PEFT (bf16 amp)"}


def model_flops(info, mode):
    """PaLM's model FLOPs of one step (model_bench.hpp): sum over the two-row rows of len (6N + 12 L d len)."""
    c = info["config"]
    if c.get("model_type") == "gpt2":
        layers, d_attn = c["n_layer"], c["n_embd"]
        n = info["parameters"] - c["n_positions"] * c["n_embd"]  # the position table is a lookup
    else:
        layers = c["num_hidden_layers"]
        d_attn = c["num_attention_heads"] * (c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"])
        n = info["parameters"]
    if mode == "lora":
        n += info["lora_parameters"]
    length = info["prompt"] + info["completion"]
    return 2 * info["pairs"] * length * (6 * n + 12 * layers * d_attn * length)


def tolerances(truth_logps, completion, beta):
    per_token = max(abs(x) for x in truth_logps) / completion
    tol_l = 3 * math.sqrt(completion) * 2 ** -7 * per_token + 1e-2
    return tol_l, 2 * beta * tol_l


def check_row(r, truth, completion, beta):
    """(ok, note) of a row against the float32 truth."""
    tol_l, tol_loss = tolerances(truth["logps"], completion, beta)
    if len(r["logps"]) != len(truth["logps"]):
        return False, "wrong number of log-probs"
    dl = max(abs(x - y) for x, y in zip(r["logps"], truth["logps"]))
    dloss = abs(r["loss"] - truth["loss"])
    dg = abs(r["grad_sum_squares"] - truth["grad_sum_squares"]) / max(truth["grad_sum_squares"], 1e-30)
    ok = all(math.isfinite(v) for v in (dl, dloss, dg)) and dl <= tol_l and dloss <= tol_loss and dg <= 5e-2
    return ok, f"max|dlogp| {dl:.2e} (tol {tol_l:.2e}), |dloss| {dloss:.2e} (tol {tol_loss:.2e}), rel d|g|^2 {dg:.2e} (tol 5e-2)"


def prepare_gpu(a, shape, torch_script, device):
    """DIR/<shape>[-tiny]-gpu: model/, lora/, pairs.json, and prepared.json with the float32 truth."""
    d = os.path.join(a.workdir, shape + ("-tiny" if a.tiny else "") + "-gpu")
    stamp = os.path.join(d, "prepared.json")
    if not os.path.exists(stamp):
        argv = [sys.executable, torch_script, "prepare", "--shape", shape, "--workdir", a.workdir, "--gpu", "--truth",
                "--device", device] + (["--tiny"] if a.tiny else [])
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"failed: {' '.join(argv)}\n{r.stderr[-4000:]}")
        with open(stamp, "w") as f:
            f.write(r.stdout.strip().splitlines()[-1])
    with open(stamp) as f:
        info = json.load(f)
    info["dir"] = d
    with open(os.path.join(d, "pairs.json")) as f:
        info["beta"] = json.load(f)["beta"]
    return info


def argv_of(a, info, mode, kind, extra, torch_script, device):
    d = info["dir"]
    common = ["--model", os.path.join(d, "model"), "--pairs", os.path.join(d, "pairs.json"),
              "--warmup", str(a.warmup), "--steps", str(a.steps)] + extra
    if mode == "lora":
        common += ["--lora", os.path.join(d, "lora")]
    if kind == "prefopt":
        return [a.bench_exe, "--backend", "cuda" if device == "cuda" else "eigen"] + common
    return [sys.executable, torch_script, "step", "--device", device] + common


def run_gpu(a, torch_script):
    """The GPU rows; writes OUT/gpu_bench.{md,json}; returns the exit status."""
    device = a.gpu_device
    os.makedirs(a.workdir, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    shapes = [s for s in GPU_SHAPES if s in a.shapes.split(",")]
    modes = a.modes.split(",")
    m = dict(gpu_description(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), versions=torch_versions())
    print(f"gpu: {m['gpu']}, driver {m['driver']}; {m['versions']}", flush=True)
    infos = {}
    for s in shapes:
        print(f"  prepare {s} ({time.time() - t0:.0f} s)", flush=True)
        infos[s] = prepare_gpu(a, s, torch_script, device)
    results, skipped, failures = [], [], []
    longest = {}  # kind -> the longest process so far (for the budget)
    for rnd in range(a.rounds):
        for s in shapes:
            for mode in modes:
                for _, row, kind, extra in [r for r in GPU_ROWS if r[0] == mode]:
                    left = a.budget_s - (time.time() - t0)
                    if left < longest.get(kind, 30.0):
                        skipped.append(f"{s} {mode} {row} (round {rnd + 1})")
                        continue
                    argv = argv_of(a, infos[s], mode, kind, extra, torch_script, device)
                    b = time.time()
                    try:
                        p = subprocess.run(argv, capture_output=True, text=True, timeout=max(left, 10))
                        ok = p.returncode == 0
                        err = p.stderr[-2000:]
                    except subprocess.TimeoutExpired:
                        ok, err = False, f"timed out after {left:.0f} s"
                    longest[kind] = max(longest.get(kind, 0.0), time.time() - b)
                    if not ok:
                        failures.append(f"{s} {mode} {row}: {err.strip().splitlines()[-1] if err.strip() else '?'}")
                        print(f"  FAILED {s} {mode} {row}:\n{err}", flush=True)
                        continue
                    r = json.loads(p.stdout.strip().splitlines()[-1])
                    results.append({"shape": s, "mode": mode, "row": row, "round": rnd, "result": r})
                    print(f"  round {rnd + 1}: {s:<13} {row:<38} {r['median_s']:.4f} s/step  "
                          f"peak {r.get('device_peak_bytes', r['peak_kb'] * 1024) / 2**20:.0f} MiB  "
                          f"({time.time() - b:.0f} s)", flush=True)
    m["load_avg_end"] = loadavg()
    saved = {"machine": m, "args": vars(a), "shapes": infos, "results": results, "skipped": skipped,
             "failures": failures, "seconds": time.time() - t0}
    with open(os.path.join(a.out, "gpu_bench.json"), "w") as f:
        json.dump(saved, f, indent=1)
    text, failed = gpu_report(saved)
    with open(os.path.join(a.out, "gpu_bench.md"), "w") as f:
        f.write(text)
    print(text)
    if not results:
        print("no row ran: the time budget did not fit one process")
    return 1 if failed or failures or not results else 0


def torch_versions():
    r = subprocess.run([sys.executable, "-c", "import torch, transformers, trl, peft; print(torch.__version__, "
                        "torch.version.cuda, transformers.__version__, trl.__version__, peft.__version__)"],
                       capture_output=True, text=True)
    v = r.stdout.split()
    if len(v) != 5:
        return f"versions unknown ({r.stderr.strip()[-200:]})"
    return f"torch {v[0]} (CUDA {v[1]}), transformers {v[2]}, trl {v[3]}, peft {v[4]}"


def fmt(x, spec=".2f"):
    return "n/a" if x is None else format(x, spec)


def gpu_report(saved):
    """(markdown text, any check failed)."""
    m = saved["machine"]
    rows = {}
    for e in saved["results"]:
        rows.setdefault((e["shape"], e["mode"], e["row"]), []).append(e["result"])
    prefopt_cuda = next((r for rs in rows.values() for r in rs if r.get("impl") == "prefopt"), {})
    lines = [f"GPU case (benchmarks/README.md, \"GPU\"), {m['date']}",
             f"gpu: {m['gpu']} ({m['gpu_memory']}), driver {m['driver']}; prefopt CUDA runtime "
             f"{prefopt_cuda.get('cuda_runtime', '?')}; {m['versions']}; {saved['seconds']:.0f} s"]
    for s, info in saved["shapes"].items():
        lines.append(f"{s}: {info['pairs']} pairs x ({info['prompt']} prompt + {info['completion']} completion), "
                     f"{info['parameters'] / 1e6:.1f} M parameters; model GFLOP/step full "
                     f"{model_flops(info, 'full') / 1e9:.1f}, LoRA {model_flops(info, 'lora') / 1e9:.1f}")
    lines += ["", "| shape | mode | row | s/step median (min..max) | tokens/s | / TRL bf16 amp | peak device MiB | "
              "peak / TRL bf16 amp | model TFLOP/s | MFU | check |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    failed, notes = False, []
    summary = {}
    for (s, mode, row), rs in rows.items():
        info = saved["shapes"][s]
        times = [t for r in rs for t in r["times_s"]]
        med = statistics.median(times)
        peak = statistics.median(r.get("device_peak_bytes", r["peak_kb"] * 1024) for r in rs) / 2**20
        flops = model_flops(info, mode)
        if rs[0].get("model_flops") and abs(rs[0]["model_flops"] - flops) > 1e-9 * flops:
            notes.append(f"{s} {mode} {row}: prefopt counts {rs[0]['model_flops']:.6g} FLOPs, this script {flops:.6g}")
            failed = True
        ok, note = check_row(rs[-1], info["truth"][mode], info["completion"], info["beta"])
        failed = failed or not ok
        notes.append(f"check {s} {mode} {row}: {note}" + ("" if ok else "  <-- FAILED"))
        summary[(s, mode, row)] = dict(med=med, lo=min(times), hi=max(times), peak=peak, flops=flops, ok=ok,
                                       tokens=rs[0]["two_row_tokens"], device=rs[0].get("device", "cpu"))
    for (s, mode, row), v in summary.items():
        trl = summary.get((s, mode, TRL_AMP[mode]))
        rate = v["flops"] / v["med"]
        peak_rate = dense_bf16_peak(v["device"])
        lines.append(f"| {s} | {mode} | {row} | {v['med']:.4f} ({v['lo']:.4f}..{v['hi']:.4f}) | "
                     f"{v['tokens'] / v['med']:.0f} | {fmt(trl['med'] / v['med'] if trl else None)} | {v['peak']:.0f} | "
                     f"{fmt(v['peak'] / trl['peak'] if trl else None)} | {rate / 1e12:.1f} | "
                     f"{fmt(100 * rate / peak_rate if peak_rate else None, '.1f')}{'%' if peak_rate else ''} | "
                     f"{'ok' if v['ok'] else 'FAILED'} |")
    lines += ["", "/ TRL bf16 amp: throughput over that row's (higher is faster); peak / TRL bf16 amp: lower is less "
              "memory. Targets (issue 8): >= 1.5x throughput at <= 0.6x peak memory, >= 40% MFU on qwen2.5-0.5b.", ""]
    lines += notes
    if saved["skipped"]:
        lines += ["", "not run (time budget): " + "; ".join(saved["skipped"])]
    if saved["failures"]:
        lines += ["", "FAILED to run: " + "; ".join(saved["failures"])]
    return "\n".join(lines) + "\n", failed
