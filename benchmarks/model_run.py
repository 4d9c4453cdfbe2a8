#!/usr/bin/env python3
"""prefopt against PyTorch, TRL 1.16 and PEFT: one DPO step at GPT-2-small and Qwen2.5-0.5B shapes.

    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPREFOPT_BENCHMARK_NATIVE=ON
    cmake --build build -j1 --target prefopt_model_bench
    python3 benchmarks/model_run.py [--shapes gpt2-small,qwen2.5-0.5b] [--threads 1,2] [--rounds 3]
                                    [--steps 2] [--modes full,lora] [--wait-idle S] [--json FILE]
    python3 benchmarks/model_run.py --report FILE        (the tables of a --json file; runs nothing)
    python3 benchmarks/model_run.py --tiny               (every row at tiny sizes: tests the harness)
    python3 benchmarks/model_run.py --gpu --out DIR [--budget-s S] [--rounds 1] [--steps 3]
                                    (the GPU case, bf16, both sides: benchmarks/model_gpu.py; with
                                     --tiny --gpu-device cpu the same rows at tiny sizes on the CPU)
    (needs: torch, transformers, peft, trl 1.16)

The case (benchmarks/README.md, "Model-level comparison"): one DPO step -- sigmoid loss, beta 0.1,
precomputed reference log-probs, forward + backward, no optimizer step -- on the same random
weights, token ids and reference log-probs on both sides (torch_model_bench.py prepare writes them
once per shape into the workdir). Rows per shape, full fine-tune and LoRA r=16:
  prefopt two-row / prefix-shared        build/benchmarks/prefopt_model_bench
  torch TRL 1.16                         DPOTrainer._compute_loss with its fused LM head, DPOConfig defaults
  torch plain                            the fastest eager path: LM head at completion positions only
  (LoRA: the same four with PEFT / prefopt adapters; "torch PEFT LoRA plain" is the PEFT row)
Every row runs in a fresh process (one untimed warm-up step, then --steps timed), rows interleaved
within each round, shapes and thread counts too, with OMP/MKL/OpenBLAS threads (and torch's) set to
the row's count. Recorded per row: wall s/step (median over every timed step of every round;
min..max), peak resident memory of the measured region (absolute, and over its start), the ratios
to the fastest PyTorch row and to TRL's row of the same shape, mode and threads, and the 1-minute
load average before and after each process.

Equal numbers: every row's loss, per-sequence log-probs and trainable gradient squared norm are
compared with the reference row of its shape and mode (torch plain; for LoRA torch PEFT LoRA
plain). float32 throughout: a log-prob is a sum over up to 256 per-token log-softmax values, each
off by a few float32 ulps of log V plus what the hidden states carry through the layers, so
|dlogp| <= 1e-3 + 2e-5 |logp|; the loss moves by at most beta/pairs per unit of each log-prob, so
|dloss| <= 2 beta max|dlogp| + 1e-6; the gradient's squared norm is a sum over millions of float32
products accumulated in different orders, within 2e-3 relative. A row outside them is FAILED and the
run exits 1.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from bench_common import cpu_model, loadavg, memory_mib, wait_quiet  # benchmarks/bench_common.py
import model_gpu  # benchmarks/model_gpu.py: --gpu

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHAPES = ["gpt2-small", "qwen2.5-0.5b"]
TORCH = os.path.join(HERE, "torch_model_bench.py")

# (mode, row name, kind, extra arguments); kind "prefopt" or "torch". The first torch row with
# "plain" is the mode's reference for the equal-numbers check.
ROWS = [
    ("full", "prefopt two-row", "prefopt", ["--layout", "two_rows"]),
    ("full", "prefopt prefix-shared", "prefopt", ["--layout", "prefix"]),
    ("full", "torch TRL 1.16 path", "torch", ["--path", "trl"]),
    ("full", "torch plain", "torch", ["--path", "plain"]),
    ("lora", "prefopt LoRA two-row", "prefopt", ["--layout", "two_rows"]),
    ("lora", "prefopt LoRA prefix-shared", "prefopt", ["--layout", "prefix"]),
    ("lora", "torch TRL 1.16 path + PEFT LoRA", "torch", ["--path", "trl"]),
    ("lora", "torch PEFT LoRA plain", "torch", ["--path", "plain"]),
]
REFERENCE = {"full": "torch plain", "lora": "torch PEFT LoRA plain"}
TRL_ROW = {"full": "torch TRL 1.16 path", "lora": "torch TRL 1.16 path + PEFT LoRA"}


def machine():
    cpu = cpu_model()
    versions = subprocess.run([sys.executable, "-c", "import torch, transformers, trl, peft; print(torch.__version__, "
                               "transformers.__version__, trl.__version__, peft.__version__)"],
                              capture_output=True, text=True).stdout.split()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": memory_mib(), "python": platform.python_version(),
            "torch/transformers/trl/peft": versions, "date": datetime.datetime.now().isoformat(timespec="minutes"),
            "load_avg": loadavg()}


def run_one(argv, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def prepare(a, shape):
    """The shape's folder (model/, lora/, pairs.json); written once, reused while prepared.json is there."""
    d = os.path.join(a.workdir, shape + ("-tiny" if a.tiny else ""))
    stamp = os.path.join(d, "prepared.json")
    if not os.path.exists(stamp):
        argv = [sys.executable, TORCH, "prepare", "--shape", shape, "--workdir", a.workdir] + (["--tiny"] if a.tiny else [])
        info = run_one(argv, os.cpu_count())
        with open(stamp, "w") as f:
            json.dump(info, f)
    with open(stamp) as f:
        info = json.load(f)
    info["dir"] = d
    return info


def argv_of(a, info, mode, kind, extra, threads):
    d = info["dir"]
    common = ["--model", os.path.join(d, "model"), "--pairs", os.path.join(d, "pairs.json"),
              "--warmup", str(a.warmup), "--steps", str(a.steps)] + extra
    if mode == "lora":
        common += ["--lora", os.path.join(d, "lora")]
    if kind == "prefopt":
        return [a.bench_exe] + common
    return [sys.executable, TORCH, "step", "--threads", str(threads)] + common


def check_one(r, ref, beta):
    """(ok, note) of one result against the reference row's result."""
    dl = max(abs(x - y) for x, y in zip(r["logps"], ref["logps"]))
    tol_l = max(1e-3 + 2e-5 * abs(y) for y in ref["logps"])
    dloss = abs(r["loss"] - ref["loss"])
    tol_loss = 2 * beta * tol_l + 1e-6
    dg = abs(r["grad_sum_squares"] - ref["grad_sum_squares"]) / max(ref["grad_sum_squares"], 1e-30)
    ok = len(r["logps"]) == len(ref["logps"]) and dl <= tol_l and dloss <= tol_loss and dg <= 2e-3
    return ok, f"max|dlogp| {dl:.1e} (tol {tol_l:.1e}), |dloss| {dloss:.1e} (tol {tol_loss:.1e}), rel d|g|^2 {dg:.1e}"


def summarize(results, beta_of):
    """Per (shape, mode, threads, row): times, peaks, loads and the check, from all rounds' results."""
    groups = {}
    for e in results:
        groups.setdefault((e["shape"], e["mode"], e["threads"]), {}).setdefault(e["row"], []).append(e)
    out = []
    for (shape, mode, threads), rows in groups.items():
        ref = rows.get(REFERENCE[mode])
        summary = {}
        for row, es in rows.items():
            times = [t for e in es for t in e["result"]["times_s"]]
            notes, ok = [], True
            for e in es:
                if ref is None:
                    break
                good, note = check_one(e["result"], ref[min(len(ref) - 1, e["round"])]["result"], beta_of[shape])
                ok, notes = ok and good, notes + [note]
            summary[row] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                            "peak_mib": statistics.median(e["result"]["peak_kb"] for e in es) / 1024,
                            "delta_mib": statistics.median(e["result"]["peak_delta_kb"] for e in es) / 1024,
                            "load_before": statistics.median(e["load_before"][0] for e in es),
                            "load_after": statistics.median(e["load_after"][0] for e in es),
                            "ok": ok if ref is not None else None, "note": notes[-1] if notes else "no reference row",
                            "torch": row.startswith("torch")}
        torch_rows = [s for s in summary.values() if s["torch"]]
        fastest = min((s["median_s"] for s in torch_rows), default=None)
        least = min((s["peak_mib"] for s in torch_rows), default=None)
        trl = summary.get(TRL_ROW[mode])
        for row, s in summary.items():
            s.update(vs_fastest=s["median_s"] / fastest if fastest else None,
                     vs_trl=s["median_s"] / trl["median_s"] if trl else None,
                     peak_vs_least=s["peak_mib"] / least if least else None,
                     peak_vs_trl=s["peak_mib"] / trl["peak_mib"] if trl else None)
            out.append(dict(shape=shape, mode=mode, threads=threads, row=row, **s))
    return out


def fmt(x, spec=".2f"):
    return "" if x is None else format(x, spec)


def report(saved):
    m = saved["machine"]
    print(f"\nmachine: {m['cpu']}, {m['cores']} cores, {m['memory_mib']} MiB; {m['date']}; torch/transformers/trl/peft "
          f"{' / '.join(m['torch/transformers/trl/peft'])}; load {m['load_avg']} -> {m.get('load_avg_end')}")
    for shape, info in saved["shapes"].items():
        print(f"{shape}: {info['pairs']} pairs x ({info['prompt']} prompt + {info['completion']} completion), "
              f"{info['parameters'] / 1e6:.1f} M parameters")
    print("\n| shape | mode | threads | row | wall s/step median (min..max) | / fastest torch | / TRL path | peak MiB "
          "| over start MiB | peak / least torch | peak / TRL | load 1 min before -> after | check |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = summarize(saved["results"], {s: i["beta"] for s, i in saved["shapes"].items()})
    failed = False
    for r in rows:
        check = "ref" if r["row"] == REFERENCE[r["mode"]] else ("ok" if r["ok"] else "FAILED" if r["ok"] is False else "?")
        failed = failed or r["ok"] is False
        print(f"| {r['shape']} | {r['mode']} | {r['threads']} | {r['row']} | {r['median_s']:.3f} ({r['min_s']:.3f}.."
              f"{r['max_s']:.3f}) | {fmt(r['vs_fastest'])} | {fmt(r['vs_trl'])} | {r['peak_mib']:.0f} | "
              f"{r['delta_mib']:.0f} | {fmt(r['peak_vs_least'])} | {fmt(r['peak_vs_trl'])} | "
              f"{r['load_before']:.2f} -> {r['load_after']:.2f} | {check} |")
    print()
    for r in rows:
        if r["row"] != REFERENCE[r["mode"]]:
            print(f"check {r['shape']} {r['mode']} {r['threads']}t {r['row']}: {r['note']}"
                  + ("  <-- FAILED" if r["ok"] is False else ""))
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--modes", default="full,lora")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per row, interleaved")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per process (after one untimed warm-up)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 round, 1 timed step")
    ap.add_argument("--tiny", action="store_true", help="every row at tiny sizes of both architectures (harness test)")
    ap.add_argument("--bench-exe", default=os.path.join(ROOT, "build", "benchmarks", "prefopt_model_bench"))
    ap.add_argument("--workdir", default=os.path.join(ROOT, "out", "model_benchmarks"))
    ap.add_argument("--json", help="also write every raw result here")
    ap.add_argument("--report", metavar="JSON", help="print the tables of a --json file written before; run nothing")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each process, wait up to this many seconds for the machine to be idle (<15%% busy)")
    ap.add_argument("--gpu", action="store_true", help="the GPU case (benchmarks/model_gpu.py), bf16, both sides")
    ap.add_argument("--gpu-device", default="cuda", choices=["cuda", "cpu"],
                    help="--gpu rows on the GPU, or on the CPU (eigen's bf16 emulation, torch CPU: tests the harness)")
    ap.add_argument("--out", help="--gpu: the folder for gpu_bench.md and gpu_bench.json")
    ap.add_argument("--budget-s", type=float, default=300.0,
                    help="--gpu: start no process that the time left (from the start, preparation included) "
                         "would not fit")
    a = ap.parse_args()
    if a.gpu:
        if not a.out:
            sys.exit("--gpu needs --out DIR")
        if not os.access(a.bench_exe, os.X_OK):
            sys.exit(f"{a.bench_exe} not found: cmake --build build -j1 --target prefopt_model_bench")
        if a.quick:
            a.rounds, a.steps = 1, 1
        sys.exit(model_gpu.run_gpu(a, TORCH))
    if a.report:
        with open(a.report) as f:
            sys.exit(1 if report(json.load(f)) else 0)
    if a.quick:
        a.rounds, a.steps = 1, 1
    shapes = [s for s in a.shapes.split(",") if s]
    threads = [int(t) for t in a.threads.split(",")]
    modes = a.modes.split(",")
    for s in shapes:
        if s not in SHAPES:
            sys.exit(f"unknown shape {s}: {', '.join(SHAPES)}")
    if not os.access(a.bench_exe, os.X_OK):
        sys.exit(f"{a.bench_exe} not found: cmake --build build -j1 --target prefopt_model_bench")
    os.makedirs(a.workdir, exist_ok=True)
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores; load {m['load_avg']}; {m['date']}", flush=True)
    infos = {}
    for s in shapes:
        infos[s] = prepare(a, s)
        with open(os.path.join(infos[s]["dir"], "pairs.json")) as f:
            infos[s]["beta"] = json.load(f)["beta"]
    results = []
    for rnd in range(a.rounds):
        for s in shapes:
            for t in threads:
                for mode, row, kind, extra in ROWS:
                    if mode not in modes:
                        continue
                    busy = wait_quiet(a.wait_idle) if a.wait_idle > 0 else None
                    before = loadavg()
                    r = run_one(argv_of(a, infos[s], mode, kind, extra, t), t)
                    after = loadavg()
                    results.append({"shape": s, "mode": mode, "threads": t, "row": row, "round": rnd,
                                    "load_before": before, "load_after": after, "busy_before": busy, "result": r})
                    print(f"  round {rnd + 1}: {s:<13} {t}t {row:<32} {r['median_s']:.3f} s/step  "
                          f"peak {r['peak_kb'] / 1024:.0f} MiB  load {before[0]:.2f} -> {after[0]:.2f}", flush=True)
    m["load_avg_end"] = loadavg()
    saved = {"machine": m, "args": vars(a), "shapes": infos, "results": results}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(saved, f, indent=1)
    sys.exit(1 if report(saved) else 0)


if __name__ == "__main__":
    main()
