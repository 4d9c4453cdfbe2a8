#!/usr/bin/env python3
"""PyTorch's side of the prefopt comparison: one measured case per process, one JSON line out.

    torch_bench.py sgemm   --n 1024
    torch_bench.py dpo     --model DIR --pairs FILE [--logps log_softmax|trl]
    torch_bench.py lm_head --rows 2048 --hidden 768 --vocab 32000
    (all: --threads N --warmup W --reps R)

Eager mode, float32. Peak memory is measured exactly as prefopt_bench does (bench_support.hpp):
/proc/self/clear_refs reset after setup, then VmHWM - VmRSS at the reset. Inputs are the same bits
as prefopt_bench's (same pairs file, same value generator for the LM head).
"""
import argparse
import json
import os
import statistics
import sys
import time


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


class PeakProbe:
    def start(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        self.base = status_kb("VmRSS")
        self.reset_ok = status_kb("VmHWM") <= self.base + 64
        if not self.reset_ok:
            self.base = status_kb("VmHWM")

    def delta(self):
        return status_kb("VmHWM") - self.base


def time_runs(warmup, reps, f):
    """Wall and CPU (all threads) seconds of each measured repetition."""
    for _ in range(warmup):
        f()
    wall, cpu = [], []
    for _ in range(reps):
        c = time.process_time()
        a = time.perf_counter()
        f()
        wall.append(time.perf_counter() - a)
        cpu.append(time.process_time() - c)
    return wall, cpu


M64 = (1 << 64) - 1


def mix_array(i, seed):
    """bench_support.hpp's mix (splitmix64 finalizer of i + seed*phi), over a uint64 numpy array."""
    import numpy as np
    z = i + np.uint64((seed * 0x9E3779B97F4A7C15) & M64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))) >> np.uint64(32)


def values(n, seed, scale):
    """bench_support.hpp's value(i, seed, scale), bit for bit, as a float32 numpy array."""
    import numpy as np
    u = mix_array(np.arange(n, dtype=np.uint64), seed) >> np.uint64(8)
    return (u.astype(np.float32) * np.float32(2.0 ** -24) - np.float32(0.5)) * np.float32(scale)


def targets_of(rows, vocab):
    import numpy as np
    return (mix_array(np.arange(rows, dtype=np.uint64), 3) % np.uint64(vocab)).astype(np.int64)


def common(name, t, probe, torch):
    return {"case": name, "impl": "torch", "threads": torch.get_num_threads(), "times_s": t[0],
            "median_s": statistics.median(t[0]), "cpu_s": t[1], "median_cpu_s": statistics.median(t[1]),
            "peak_delta_kb": probe.delta(),
            "rss_at_start_kb": probe.base, "peak_reset_ok": probe.reset_ok}


def run_sgemm(a, torch):
    n = a.n
    A = torch.from_numpy(values(n * n, 11, 1.0).reshape(n, n))
    B = torch.from_numpy(values(n * n, 12, 1.0).reshape(n, n))
    C = torch.empty(n, n)
    probe = PeakProbe()
    probe.start()
    t = time_runs(a.warmup, a.reps, lambda: torch.mm(A, B, out=C))
    j = common("sgemm", t, probe, torch)
    j.update(n=n, gflops=2.0 * n ** 3 / statistics.median(t[0]) * 1e-9)
    return j


def sigmoid_loss(logps, ref, n, beta, F):
    """TRL's loss_type="sigmoid" (label_smoothing 0): -logsigmoid(beta * margin), mean over pairs."""
    margin = (logps[:n] - ref[:n]) - (logps[n:] - ref[n:])
    return -F.logsigmoid(beta * margin).mean()


def run_dpo(a, torch):
    import torch.nn.functional as F
    from transformers import GPT2LMHeadModel
    spec = json.load(open(a.pairs))
    pairs, beta = spec["pairs"], spec["beta"]
    n = len(pairs)
    ref = torch.tensor(spec["reference_logps"], dtype=torch.float32)
    model = GPT2LMHeadModel.from_pretrained(a.model, torch_dtype=torch.float32)
    model.train()  # dropout probabilities are 0 in this config: train mode changes nothing else
    # TRL's concatenated batch: chosen rows then rejected rows, right-padded to the widest row.
    rows = [(p["prompt"], p["chosen"]) for p in pairs] + [(p["prompt"], p["rejected"]) for p in pairs]
    width = max(len(x) + len(y) for x, y in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    comp = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x) + len(y)] = torch.tensor(x + y)
        mask[i, :len(x) + len(y)] = 1
        comp[i, len(x):len(x) + len(y)] = True
    labels, loss_mask = ids[:, 1:], comp[:, 1:]
    if a.logps == "trl":
        from trl.trainer.utils import selective_log_softmax
    state = {}

    def step():
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=ids, attention_mask=mask).logits  # [rows × width × V], materialized
        if a.logps == "trl":
            per_token = selective_log_softmax(logits[:, :-1], labels)
        else:
            per_token = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, labels[..., None]).squeeze(-1)
        logps = (per_token * loss_mask).sum(-1)
        loss = sigmoid_loss(logps, ref, n, beta, F)
        loss.backward()
        state.update(loss=loss.item(), logps=logps.detach().tolist())

    probe = PeakProbe()
    probe.start()
    t = time_runs(a.warmup, a.reps, step)
    j = common("dpo", t, probe, torch)
    gss = sum(float((p.grad.double() ** 2).sum()) for p in model.parameters() if p.grad is not None)
    j.update(layout="two_rows", logps_method=a.logps, tokens=int(ids.numel()), rows=len(rows),
             attn_implementation=getattr(model.config, "_attn_implementation", "?"),
             loss=state["loss"], logps=state["logps"], grad_sum_squares=gss)
    return j


def run_lm_head(a, torch):
    R, C, V = a.rows, a.hidden, a.vocab
    h = torch.from_numpy(values(R * C, 1, 1.0).reshape(R, C)).requires_grad_()
    W = torch.from_numpy(values(V * C, 2, 0.1).reshape(V, C)).requires_grad_()
    targets = torch.from_numpy(targets_of(R, V))
    dlogp = torch.full((R,), -1.0 / R)
    state = {}

    def step():
        h.grad = None
        W.grad = None
        logits = h @ W.T
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
        (logp * dlogp).sum().backward()
        state["logp_sum"] = float(logp.detach().double().sum())

    probe = PeakProbe()
    probe.start()
    t = time_runs(a.warmup, a.reps, step)
    j = common("lm_head", t, probe, torch)
    j.update(rows=R, hidden=C, vocab=V, logp_sum=state["logp_sum"],
             dh_sum_squares=float((h.grad.double() ** 2).sum()), dw_sum_squares=float((W.grad.double() ** 2).sum()))
    return j


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["sgemm", "dpo", "lm_head"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--model")
    ap.add_argument("--pairs")
    ap.add_argument("--logps", choices=["log_softmax", "trl"], default="log_softmax")
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=32000)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    j = {"sgemm": run_sgemm, "dpo": run_dpo, "lm_head": run_lm_head}[a.case](a, torch)
    print(json.dumps(j))


if __name__ == "__main__":
    sys.exit(main())
