#!/usr/bin/env python3
"""prefopt against PyTorch on this CPU: time, peak memory and GFLOP/s as a share of sgemm.

    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPREFOPT_BENCHMARK_NATIVE=ON
    cmake --build build -j1 --target prefopt_bench
    python3 benchmarks/run.py [--threads N] [--rounds 3] [--quick]    (needs: pip install torch transformers)

Prepares a small GPT-2 with transformers (save_pretrained; prefopt loads the same directory) and a
pairs file, then runs every case in its own process -- prefopt (build/benchmarks/prefopt_bench) and
PyTorch (benchmarks/torch_bench.py) -- with the same thread count (OMP_NUM_THREADS for both,
torch.set_num_threads too), interleaved round by round so that changing machine load hits both
sides alike. Each process warms up, times `reps` repetitions and reports their median; a case's
time is the median over rounds (spread: min..max of the rounds). Peak memory: peak resident set of
the measured region over its start (see bench_support.hpp), the same method on both sides.

Flop counts (multiply-add = 2 flops; biases, norms, activations, softmax not counted):
  linear layers   6 * T * P_lin,  P_lin = layers * (4*C^2 + 2*C*F)   (forward 2, backward 4)
  attention       3 * layers * rows * 4 * L^2 * C   (Q.K^T and P.V over full L x L blocks)
  LM head         PyTorch: 6 * T * C * V (all T tokens, materialized logits)
                  prefopt: 6 * H * C * V + 2 * (H - chunk) * C * V (H scored rows only; backward
                  recomputes the logits of every chunk but the first; chunk >= H: no recompute)
  LM head alone   PyTorch 6*R*C*V, prefopt as above with R rows
T tokens in the batch, rows sequences of length L, H = completion tokens scored. Each row's
GFLOP/s is its own executed flops over its time; its share is that over the best sgemm rate
measured here (OpenBLAS through Eigen, or torch.mm).
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys

from bench_common import busy_fraction, cpu_model, wait_quiet  # benchmarks/bench_common.py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The DPO case: GPT-2 4 layers, width 256, 4 heads, vocab 8192; 8 pairs, prompt 64 + completion 64.
GPT2 = dict(n_layer=4, n_embd=256, n_head=4, vocab_size=8192, n_positions=128)
PAIRS, PROMPT, COMPLETION, BETA = 8, 64, 64, 0.1


def prepare(workdir):
    """Writes workdir/gpt2 (config.json + model.safetensors) and workdir/pairs.json."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    model_dir = os.path.join(workdir, "gpt2")
    torch.manual_seed(0)
    cfg = GPT2Config(**GPT2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg).float().eval()
    model.save_pretrained(model_dir, safe_serialization=True)
    g = torch.Generator().manual_seed(1)
    ids = lambda n: torch.randint(0, GPT2["vocab_size"], (n,), generator=g).tolist()
    pairs = [{"prompt": ids(PROMPT), "chosen": ids(COMPLETION), "rejected": ids(COMPLETION)} for _ in range(PAIRS)]
    # Reference log-probs: the policy's own, shifted by fixed offsets so the loss is not at log 2.
    with torch.no_grad():
        rows = [p["prompt"] + p["chosen"] for p in pairs] + [p["prompt"] + p["rejected"] for p in pairs]
        x = torch.tensor(rows)
        lp = torch.log_softmax(model(input_ids=x).logits[:, :-1], -1).gather(-1, x[:, 1:, None]).squeeze(-1)
        logps = lp[:, PROMPT - 1:].sum(-1)
    offsets = (torch.rand(2 * PAIRS, generator=g) * 4 - 2).double()
    ref = (logps.double() + offsets).tolist()
    with open(os.path.join(workdir, "pairs.json"), "w") as f:
        json.dump({"beta": BETA, "pairs": pairs, "reference_logps": ref}, f)
    return model_dir, os.path.join(workdir, "pairs.json")


def head_flops(rows, C, V, chunk, fused=False):
    """prefopt's head: forward 2, backward 4, plus 2 for every row whose logits backward recomputes
    (all but the first chunk's, which the forward leaves behind); fused (the loss's gradient
    handed over per chunk, each row its own group): no recompute, PyTorch's 6."""
    return 6 * rows * C * V + (0 if fused else 2 * (rows - min(rows, chunk)) * C * V)


def dpo_flops(layout, head_chunk=None):
    """(body, head) flops of one DPO step; layout "torch": PyTorch's two-row batch, head on all tokens."""
    C, V, layers = GPT2["n_embd"], GPT2["vocab_size"], GPT2["n_layer"]
    F = 4 * C
    p_lin = layers * (4 * C * C + 2 * C * F)
    if layout == "prefix":
        rows, L = PAIRS, PROMPT + 2 * COMPLETION
    else:
        rows, L = 2 * PAIRS, PROMPT + COMPLETION
    T, H = rows * L, 2 * PAIRS * COMPLETION
    body = 6 * T * p_lin + 3 * layers * rows * 4 * L * L * C
    return body, (6 * T * C * V if layout == "torch" else head_flops(H, C, V, head_chunk))


def machine(threads):
    cpu = cpu_model()
    import torch
    import transformers
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "load_avg": os.getloadavg(),
            "date": datetime.datetime.now().isoformat(timespec="minutes"), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "torch_blas": "MKL" if torch.backends.mkl.is_available() else "?"}


def run_one(argv, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def specs(a, model_dir, pairs_file):
    """(key, argv) per measured case."""
    exe, py = a.bench_exe, [sys.executable, os.path.join(HERE, "torch_bench.py")]
    th = ["--threads", str(a.threads)]
    rep = lambda w, r: ["--warmup", str(w), "--reps", str(r)]
    out = []
    if "sgemm" in a.cases:
        out += [(("sgemm", "prefopt (OpenBLAS)"), [exe, "sgemm", "--n", "1024"] + rep(2, 10)),
                (("sgemm", "torch (MKL)"), py + ["sgemm", "--n", "1024"] + th + rep(2, 10))]
    if "dpo" in a.cases:
        d = rep(2, a.reps)
        out += [(("dpo", "prefopt two rows"), [exe, "dpo", "--model", model_dir, "--pairs", pairs_file, "--layout", "two_rows"] + d),
                (("dpo", "prefopt prefix-shared"), [exe, "dpo", "--model", model_dir, "--pairs", pairs_file, "--layout", "prefix"] + d),
                (("dpo", "torch log_softmax+gather"), py + ["dpo", "--model", model_dir, "--pairs", pairs_file] + th + d)]
        if importlib.util.find_spec("trl") is not None:
            out.append((("dpo", "torch TRL selective_log_softmax"),
                        py + ["dpo", "--model", model_dir, "--pairs", pairs_file, "--logps", "trl"] + th + d))
    if "lm_head" in a.cases:
        for V in a.vocabs:
            hd = ["--rows", str(a.head_rows), "--hidden", "768", "--vocab", str(V)]
            d = rep(1, a.head_reps)
            out += [((f"lm_head V={V}", "prefopt default chunk"), [exe, "lm_head"] + hd + ["--chunk", "auto"] + d),
                    ((f"lm_head V={V}", "prefopt chunk 128 rows"), [exe, "lm_head"] + hd + ["--chunk", "128"] + d),
                    ((f"lm_head V={V}", "prefopt chunk = all rows"), [exe, "lm_head"] + hd + ["--chunk", "all"] + d),
                    ((f"lm_head V={V}", "prefopt fused"), [exe, "lm_head"] + hd + ["--chunk", "auto", "--fused", "1"] + d),
                    ((f"lm_head V={V}", "torch"), py + ["lm_head"] + hd + th + d)]
    return out


def flops_of(key, r):
    case, impl = key
    if case == "sgemm":
        return 2.0 * r["n"] ** 3
    if case == "dpo":
        if impl.startswith("torch"):
            return float(sum(dpo_flops("torch")))
        # head_chunk_rows: what the model's head used (older prefopt_bench output: the library's rule)
        chunk = r.get("head_chunk_rows", max(128, (1 << 24) // GPT2["vocab_size"]))
        return float(sum(dpo_flops(r["layout"], chunk)))
    R, C, V = r["rows"], r["hidden"], r["vocab"]
    return float(head_flops(R, C, V, r["chunk"], r.get("fused", False)) if impl.startswith("prefopt") else 6 * R * C * V)


def check(results):
    """prefopt and PyTorch must compute the same numbers, or the timing means nothing."""
    notes = []
    for (case, impl), rs in results.items():
        r, ok = rs[-1], True
        ref = next((v[-1] for (c, i), v in results.items() if c == case and i.startswith("torch")), None)
        if ref is None or not impl.startswith("prefopt") or case == "sgemm":
            continue
        if case == "dpo":
            dl = max(abs(x - y) for x, y in zip(r["logps"], ref["logps"]))
            dloss = abs(r["loss"] - ref["loss"])
            dg = abs(r["grad_sum_squares"] - ref["grad_sum_squares"]) / ref["grad_sum_squares"]
            ok = dl < 5e-3 and dloss < 1e-5 and dg < 1e-3
            notes.append(f"{case} {impl}: max |dlogp| {dl:.2e}, |dloss| {dloss:.2e}, rel d|grad|^2 {dg:.2e}")
        else:
            d = [abs(r[k] - ref[k]) / abs(ref[k]) for k in ("logp_sum", "dh_sum_squares", "dw_sum_squares")]
            ok = max(d) < 1e-4
            notes.append(f"{case} {impl}: rel diff logp_sum {d[0]:.1e}, |dh|^2 {d[1]:.1e}, |dW|^2 {d[2]:.1e}")
        if not ok:
            notes[-1] += "  <-- MISMATCH"
    return notes


def table(results, sgemm_best, clock):
    """Markdown table; `clock` picks the time every derived number uses (wall or CPU seconds)."""
    key = "median_s" if clock == "wall" else "median_cpu_s"
    med = lambda rs: statistics.median(r[key] for r in rs)
    lines = [f"| case | implementation | {clock} s (median; min..max over rounds) | time / torch | peak MiB | peak / torch "
             "| GFLOP | GFLOP/s | % of sgemm | machine busy before |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (case, impl), rs in results.items():
        ts = [r[key] for r in rs]
        t = med(rs)
        peak = statistics.median(r["peak_delta_kb"] for r in rs) / 1024
        ref = next((v for (c, i), v in results.items() if c == case and i.startswith("torch")), None)
        tr = pr = ""
        if ref is not None and not impl.startswith("torch"):
            tr = f"{t / med(ref):.2f}"
            pr = f"{peak / (statistics.median(r['peak_delta_kb'] for r in ref) / 1024):.2f}"
        fl = flops_of((case, impl), rs[-1])
        gfs = fl / t * 1e-9
        lines.append(f"| {case} | {impl} | {t:.4f} ({min(ts):.4f}..{max(ts):.4f}) | {tr} | {peak:.1f} | {pr} "
                     f"| {fl * 1e-9:.1f} | {gfs:.1f} | {100 * gfs / sgemm_best:.0f}% "
                     f"| {100 * statistics.median(r.get('busy_before', 0.0) for r in rs):.0f}% |")
    return "\n".join(lines)


def report(results, m, clock):
    tkey = "median_s" if clock == "wall" else "median_cpu_s"
    sg = [2.0 * 1024 ** 3 / statistics.median(r[tkey] for r in v) * 1e-9 for (c, _), v in results.items() if c == "sgemm"]
    sgemm_best = max(sg) if sg else float("nan")
    print(f"\nmachine: {m['cpu']}, {m['cores']} cores, {m['threads']} threads; {m['date']}; "
          f"load {tuple(round(x, 2) for x in m['load_avg'])} -> {tuple(round(x, 2) for x in m['load_avg_end'])}\n")
    print(table(results, sgemm_best, clock))
    print(f"\nsgemm 1024^3 best: {sgemm_best:.1f} GFLOP/s ({clock} clock)")
    for n in check(results):
        print("check: " + n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per case, interleaved")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per process (DPO step)")
    ap.add_argument("--head-reps", type=int, default=5, help="timed repetitions per process (LM head)")
    ap.add_argument("--head-rows", type=int, default=2048)
    ap.add_argument("--vocabs", type=lambda s: [int(v) for v in s.split(",")], default=[32000, 50257])
    ap.add_argument("--cases", default="sgemm,dpo,lm_head")
    ap.add_argument("--quick", action="store_true", help="1 round, fewer repetitions (a smoke run)")
    ap.add_argument("--bench-exe", default=os.path.join(ROOT, "build", "benchmarks", "prefopt_bench"))
    ap.add_argument("--workdir", default=os.path.join(ROOT, "out", "benchmarks"))
    ap.add_argument("--json", help="also write every raw result here")
    ap.add_argument("--report", metavar="JSON", help="print the table of a --json file written before; run nothing")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="time that ratios and GFLOP/s use: wall, or CPU seconds of the process (meaningful with "
                         "--threads 1 on a machine other work shares)")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each process, wait up to this many seconds for the machine to be idle (<15%% busy)")
    a = ap.parse_args()
    if a.report:
        with open(a.report) as f:
            saved = json.load(f)
        results = {tuple(k.split(" / ", 1)): v for k, v in saved["results"].items()}
        report(results, saved["machine"], saved["args"]["clock"])
        return
    if a.quick:
        a.rounds, a.reps, a.head_reps = 1, 2, 1
    if not os.access(a.bench_exe, os.X_OK):
        sys.exit(f"{a.bench_exe} not found: cmake --build build -j1 --target prefopt_bench")
    os.makedirs(a.workdir, exist_ok=True)
    model_dir, pairs_file = prepare(a.workdir)
    m = machine(a.threads)
    print(f"machine: {m['cpu']}, {m['cores']} cores, {a.threads} threads; load {m['load_avg']}; {m['date']}; "
          f"torch {m['torch']} ({m['torch_blas']}), transformers {m['transformers']}", flush=True)
    results = {}
    cases = specs(a, model_dir, pairs_file)
    for rnd in range(a.rounds):
        for key, argv in cases:
            busy = wait_quiet(a.wait_idle) if a.wait_idle > 0 else busy_fraction(0.5)
            r = run_one(argv, a.threads)
            r["busy_before"] = busy
            results.setdefault(key, []).append(r)
            print(f"  round {rnd + 1}: {key[0]:<16} {key[1]:<34} {r['median_s']:.4f} s  "
                  f"peak {r['peak_delta_kb'] / 1024:.1f} MiB  (threads {r['threads']}, machine {100 * busy:.0f}% busy before)",
                  flush=True)
    m["load_avg_end"] = os.getloadavg()
    report(results, m, a.clock)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": m, "args": vars(a), "results": {" / ".join(k): v for k, v in results.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
