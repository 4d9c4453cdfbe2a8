#!/usr/bin/env python3
"""Golden values for prefopt's preference losses, produced by TRL's own loss code.

Run with the project's virtualenv (torch + trl 1.16):

    python3 tools/reference/losses_make_reference.py

It writes tests/data/losses/trl_float64.json and trl_float32.json (read by
tests/losses/golden.hpp, from golden_test.cpp and golden_float_test.cpp). Nothing here
re-implements a TRL loss: every number comes from calling TRL's trainer code on a stand-in
"self" and a stand-in model:

* DPO family (every loss_type of TRL 1.16, f-divergences, WPO weighting, the MPO mixture):
  DPOTrainer._compute_loss(fake_self, fake_model, inputs, False). The fake model returns
  `log_probs` [2B, T-1], a leaf tensor whose completion tokens of each row sum to the wanted
  sequence log-prob (zeros elsewhere, as a real model's masked labels give), so the gradient
  of the loss w.r.t. any completion token of a row is d loss / d (sequence log-prob); the
  script checks that every token of a row carries the same gradient. Reference log-probs
  come from the inputs (precompute_ref_logps=True). With use_weighting (WPO) the fake model
  also returns log_sum_sq_probs; TRL forms the weights under no_grad, so they are data to the
  gradient, and the script records each sequence's aligned mean log-prob (ac, ar) from which
  prefopt's weight column is exp(ac + ar).
* CPO (sigmoid + cpo_alpha*NLL, simpo) and ORPO: CPOTrainer / ORPOTrainer.get_batch_loss_metrics
  with a fake model returning logits [2B, T, 2] built from a per-token log-prob leaf l as
  [l, log(1 - e^l)] (so log_softmax picks l back out), which runs TRL's own
  concatenated_inputs, get_batch_logps, cross-entropy NLL, cpo_loss / odds_ratio_loss.
  The prompt is one token long, so ORPO's NLL (TRL computes it over prompt + response) covers
  exactly the response tokens, as prefopt's does.
* KTO (kto with KL baseline, apo_zero_unpaired): KTOTrainer._compute_loss with a fake model
  that answers the KL forward and the main forward.
* Per-pair losses: TRL only returns the batch mean, so for losses whose pairs are independent
  the script runs TRL once more on each pair alone (KTO: each example alone, with the whole
  batch's KL rows). CPO/ORPO per-pair preference terms come from cpo_loss / odds_ratio_loss.

Places where TRL cannot be run as is, and what is done instead (each is recorded in the file):
* TRL 1.16's "sigmoid" has no label_smoothing any more, so `probabilistic` (soft labels,
  cDPO) is computed with torch autograd directly from its formula
  -(p log s(z) + (1-p) log s(-z)); such cases say "source": "formula".
* alpha_divergence in float64: TRL's clamp table has no float64 entry (KeyError) and it casts
  to float32 before exp. The float64 run uses TRL's _compute_loss source with exactly those two
  spots changed (float64 entry added, cast removed); "source": "trl-patched".
* ORPO in float64: odds_ratio_loss casts the log-probs to float32; the float64 run uses its
  source without the two `.float()` casts; "source": "trl-patched".

Inputs: two ordinary batches (A: B=5, B: B=8) and an extreme one (X: B=8, |beta*h| up to 1e4,
token counts 1..50). Non-finite TRL results are written as the strings "nan", "inf", "-inf".
The script is deterministic (fixed seeds, CPU, no threads dependence).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
import textwrap
import types
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import trl
from trl.experimental.cpo import cpo_trainer as cpo_mod
from trl.experimental.cpo.cpo_trainer import CPOTrainer
from trl.experimental.orpo import orpo_trainer as orpo_mod
from trl.experimental.orpo.orpo_trainer import ORPOTrainer
from trl.trainer import dpo_trainer as dpo_mod
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.kto_trainer import KTOTrainer

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "tests" / "data" / "losses"
METRICS = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"]

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# Batches (float64 master values; each dtype run casts them and records what TRL summed).

def paired_batches():
    rng = np.random.default_rng(20240611)

    def ordinary(n_pairs, spread):
        nc = rng.integers(3, 41, n_pairs)
        nr = rng.integers(3, 41, n_pairs)
        pc = -rng.uniform(0.2, 2.0, n_pairs) * nc
        pr = -rng.uniform(0.2, 2.0, n_pairs) * nr
        rc = pc + rng.normal(0.0, spread, n_pairs)
        rr = pr + rng.normal(0.0, spread, n_pairs)
        return dict(pc=pc, pr=pr, rc=np.minimum(rc, -0.05), rr=np.minimum(rr, -0.05), nc=nc, nr=nr)

    a = ordinary(5, 6.0)
    b = ordinary(8, 20.0)
    # Extreme: beta*h up to +-1e4 at beta = 0.1, log-ratios up to 6e4 in size, token counts 1..50,
    # and near-certain completions (mean log-prob -1e-6) for ORPO's log(1 - p).
    x = dict(
        pc=np.array([-1e-3, -6.0e4, -10.0, -30.0, -1e-6, -400.0, -35000.0, -20.0]),
        rc=np.array([-4.0e4, -0.5, -2010.0, -25.0, -2e-6, -30400.0, -5000.0, -21.0]),
        pr=np.array([-6.0e4, -1e-3, -3010.0, -1030.0, -1e-5, -30000.0, -100.0, -19.0]),
        rr=np.array([-0.5, -4.0e4, -10.0, -25.0, -3e-5, -100.0, -100.0, -18.0]),
        nc=np.array([1, 50, 7, 12, 1, 50, 33, 2]),
        nr=np.array([50, 1, 13, 40, 1, 50, 2, 5]),
    )
    batches = {"A": a, "B": b, "X": x}
    for name, d in batches.items():
        n = len(d["pc"])
        # soft labels and scores for `probabilistic`, WPO sharpness terms (log sum_v p_v^2 per token)
        d["p"] = rng.uniform(0.0, 1.0, n)
        d["p"][0] = 1.0
        d["sc"] = rng.normal(0.0, 3.0, n)
        d["sr"] = rng.normal(0.0, 3.0, n)
        d["lss_c"] = [rng.uniform(-2.0, -0.05, k) for k in d["nc"]]
        d["lss_r"] = [rng.uniform(-2.0, -0.05, k) for k in d["nr"]]
        d["w_c"] = [rng.uniform(0.5, 1.5, k) for k in d["nc"]]
        d["w_r"] = [rng.uniform(0.5, 1.5, k) for k in d["nr"]]
    return batches


def unpaired_batches(paired):
    """KTO batches: the chosen completions (desirable) and rejected ones (undesirable) of a paired
    batch, interleaved; KL rows are mismatched completions with their own log-probs."""
    rng = np.random.default_rng(777)
    out = {}
    for name, d in paired.items():
        n = len(d["pc"])
        logp = np.concatenate([d["pc"], d["pr"]])
        ref = np.concatenate([d["rc"], d["rr"]])
        ntok = np.concatenate([d["nc"], d["nr"]])
        wts = list(d["w_c"]) + list(d["w_r"])
        label = np.array([True] * n + [False] * n)
        order = rng.permutation(2 * n)
        m = 2 * n
        kl_n = rng.integers(2, 30, m)
        kl_ref = -rng.uniform(0.3, 2.0, m) * kl_n
        # A: the mean KL log-ratio is positive; B: negative (TRL clamps z0 to 0); X: large.
        shift = {"A": 0.8, "B": -1.5, "X": 40.0}[name]
        kl_pol = np.minimum(kl_ref + rng.normal(shift, 1.0, m), -0.01)
        out[name] = dict(
            logp=logp[order], ref=ref[order], n=ntok[order], label=label[order],
            w=[wts[i] for i in order],
            kl_pol=kl_pol, kl_ref=kl_ref, kl_n=kl_n, kl_w=[rng.uniform(0.5, 1.5, k) for k in kl_n],
        )
    return out


def spread(total, weights, dtype):
    """Per-token log-probs summing (up to rounding) to `total`."""
    w = np.asarray(weights, dtype=np.float64)
    return torch.tensor(total * w / w.sum(), dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Shared stand-ins.

class Accel:
    device = torch.device("cpu")

    @staticmethod
    def gather(x):
        return x

    @staticmethod
    def gather_for_metrics(x):
        return x


def metrics_store():
    return {"train": defaultdict(list), "eval": defaultdict(list)}


def patched(module, func, replacements):
    """TRL's own source of `func` with the listed text replacements, compiled in its module."""
    src = textwrap.dedent(inspect.getsource(func))
    for old, new in replacements:
        if src.count(old) != 1:
            raise RuntimeError(f"patch target not found exactly once in {func.__qualname__}: {old!r}")
        src = src.replace(old, new)
    ns = {}
    exec(compile(src, module.__file__, "exec"), dict(vars(module)), ns)
    return ns[func.__name__]


DPO_ALPHA_F64 = patched(dpo_mod, DPOTrainer._compute_loss, [
    ("torch.float32: 80.0}", "torch.float32: 80.0, torch.float64: 80.0}"),
    ("torch.clamp(t_chosen.float(), max=clamp_max)", "torch.clamp(t_chosen, max=clamp_max)"),
    ("torch.clamp(t_rejected.float(), max=clamp_max)", "torch.clamp(t_rejected, max=clamp_max)"),
])
ORPO_OR_F64 = patched(orpo_mod, ORPOTrainer.odds_ratio_loss, [
    ("policy_chosen_logps = policy_chosen_logps.float()", "pass"),
    ("policy_rejected_logps = policy_rejected_logps.float()", "pass"),
])


def row_gradient(grad_row, n, dtype):
    """The gradient every completion token of a row carries (they must agree)."""
    g = grad_row[:n]
    g0 = g[0].item()
    if np.isfinite(g0):
        tol = (1e-12 if dtype == torch.float64 else 2e-6) * max(abs(g0), 1e-30)
        if (g - g0).abs().max().item() > tol:
            raise RuntimeError(f"tokens of one sequence got different gradients: {g.tolist()}")
    return g.mean().item() if np.isfinite(g0) else g0


# ---------------------------------------------------------------------------------------------
# DPO family.

class FakeLM:
    """Stands for the policy: returns the per-token log-probs it was built with."""

    def __init__(self, log_probs, log_sum_sq):
        self.log_probs, self.log_sum_sq = log_probs, log_sum_sq

    def __call__(self, **kwargs):
        z = torch.zeros_like(self.log_probs.detach())
        return types.SimpleNamespace(log_probs=self.log_probs, entropy=z, mean_logits=z,
                                     is_top1=torch.zeros(z.shape, dtype=torch.bool),
                                     log_sum_sq_probs=self.log_sum_sq, aux_loss=None)


def dpo_tensors(d, idx, dtype):
    """Per-token leaf values, WPO sharpness tensor and inputs for the pairs `idx` of batch d."""
    b = len(idx)
    counts = [int(d["nc"][i]) for i in idx] + [int(d["nr"][i]) for i in idx]
    t = 1 + max(counts)
    lp = torch.zeros(2 * b, t - 1, dtype=dtype)
    lss = torch.zeros(2 * b, t - 1, dtype=dtype)
    cmask = torch.zeros(2 * b, t, dtype=torch.long)
    amask = torch.zeros(2 * b, t, dtype=torch.long)
    for r in range(2 * b):
        i, side = idx[r % b], ("c" if r < b else "r")
        n = counts[r]
        lp[r, :n] = spread(d["p" + side][i], d["w_" + side][i], dtype)
        lss[r, :n] = torch.tensor(d["lss_" + side][i], dtype=dtype)
        cmask[r, 1:1 + n] = 1
        amask[r, :1 + n] = 1
    inputs = {
        "input_ids": torch.zeros(2 * b, t, dtype=torch.long),
        "attention_mask": amask,
        "completion_mask": cmask,
        "ref_chosen_logps": torch.tensor(d["rc"][idx], dtype=dtype),
        "ref_rejected_logps": torch.tensor(d["rr"][idx], dtype=dtype),
    }
    return lp, lss, inputs, counts


def dpo_self(cfg):
    return types.SimpleNamespace(
        model=types.SimpleNamespace(training=True), accelerator=Accel(), aux_loss_enabled=False,
        ld_alpha=None, precompute_ref_logps=True, ref_model=None, router_aux_loss_coef=0.0,
        f_divergence_type=cfg["f_divergence_type"], f_alpha_divergence_coef=cfg["f_alpha_divergence_coef"],
        loss_types=cfg["loss_type"], loss_weights=cfg["loss_weights"], beta=cfg["beta"],
        label_smoothing=cfg["label_smoothing"], use_weighting=cfg["use_weighting"],
        args=types.SimpleNamespace(discopop_tau=cfg["discopop_tau"], gradient_checkpointing_kwargs=None),
        _metrics=metrics_store(), _total_train_tokens=0, _tp_size=1)


def dpo_compute(cfg, dtype):
    if cfg["f_divergence_type"] == "alpha_divergence" and dtype == torch.float64:
        return DPO_ALPHA_F64, "trl-patched"
    return DPOTrainer._compute_loss, "trl"


def run_dpo_once(cfg, d, idx, dtype):
    lp, lss, inputs, counts = dpo_tensors(d, idx, dtype)
    leaf = lp.clone().requires_grad_(True)
    fake = dpo_self(cfg)
    fn, _ = dpo_compute(cfg, dtype)
    loss = fn(fake, FakeLM(leaf, lss), inputs, False)
    loss.backward()
    b = len(idx)
    grads = [row_gradient(leaf.grad[r], counts[r], dtype) for r in range(2 * b)]
    metrics = {k: fake._metrics["train"][k][-1] for k in METRICS}
    logps = lp.sum(dim=1)  # the same reduction TRL applies
    with torch.no_grad():  # WPO's aligned mean log-probs, as TRL forms them
        smask = inputs["completion_mask"][:, 1:]
        aligned = ((lp - lss) * smask).sum(dim=1) / smask.sum(dim=1).clamp_min(1)
    return loss.item(), grads[:b], grads[b:], metrics, logps, aligned


def probabilistic_formula(cfg, d, dtype):
    """prefopt's probabilistic loss from its formula with torch autograd (TRL 1.16 has no
    sigmoid label smoothing); the batch inputs are those TRL summed for the DPO cases."""
    lp, _, inputs, counts = dpo_tensors(d, list(range(len(d["pc"]))), dtype)
    b = len(d["pc"])
    logps = lp.sum(dim=1).clone().requires_grad_(True)
    pc, pr = logps[:b], logps[b:]
    z = cfg["beta"] * ((pc - inputs["ref_chosen_logps"]) - (pr - inputs["ref_rejected_logps"]))
    src = cfg["source"]
    if src == "constant":
        p = torch.full((b,), 1.0 - cfg["label_smoothing"], dtype=dtype)
    elif src == "column":
        p = torch.tensor(d["p"], dtype=dtype)
    else:
        p = torch.sigmoid((torch.tensor(d["sc"], dtype=dtype) - torch.tensor(d["sr"], dtype=dtype))
                          / cfg["score_temperature"])
    per = -(p * torch.nn.functional.logsigmoid(z) + (1 - p) * torch.nn.functional.logsigmoid(-z))
    loss = per.mean()
    loss.backward()
    return loss.item(), per.detach().tolist(), logps.grad[:b].tolist(), logps.grad[b:].tolist()


DPO_DEFAULTS = dict(loss_weights=None, beta=0.1, label_smoothing=0.0, f_divergence_type="reverse_kl",
                    f_alpha_divergence_coef=0.5, use_weighting=False, discopop_tau=0.05)


def dpo_configs():
    out = []

    def add(name, **kw):
        cfg = dict(DPO_DEFAULTS)
        cfg.update(kw)
        cfg["loss_type"] = cfg.get("loss_type") or [name.split("/")[0]]
        cfg["loss_weights"] = cfg["loss_weights"] or [1.0] * len(cfg["loss_type"])
        out.append((name, cfg))

    for lt in ["sigmoid", "hinge", "ipo", "nca_pair", "bco_pair", "sppo_hard", "aot", "aot_unpaired", "apo_zero",
               "apo_down", "discopop", "sft", "sigmoid_norm"]:
        add(lt)
    add("sigmoid/beta0.5", loss_type=["sigmoid"], beta=0.5)
    add("ipo/beta0.5", loss_type=["ipo"], beta=0.5)
    add("exo_pair", label_smoothing=1e-3)
    add("robust", label_smoothing=0.1)
    add("aot/ls0.1", loss_type=["aot"], label_smoothing=0.1)
    add("aot_unpaired/ls0.1", loss_type=["aot_unpaired"], label_smoothing=0.1)
    add("discopop/tau0.2", loss_type=["discopop"], discopop_tau=0.2)
    for base in ["sigmoid", "ipo"]:
        add(f"{base}/forward_kl", loss_type=[base], f_divergence_type="forward_kl")
        add(f"{base}/js_divergence", loss_type=[base], f_divergence_type="js_divergence")
        add(f"{base}/alpha0.5", loss_type=[base], f_divergence_type="alpha_divergence", f_alpha_divergence_coef=0.5)
        add(f"{base}/alpha0.3", loss_type=[base], f_divergence_type="alpha_divergence", f_alpha_divergence_coef=0.3)
    add("sigmoid/wpo", loss_type=["sigmoid"], use_weighting=True)
    add("ipo/wpo", loss_type=["ipo"], use_weighting=True)
    add("mpo", loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1.0])
    return out


POINTWISE_EXCLUDED = {"aot", "aot_unpaired", "sft"}


def dpo_cases(batches, dtype, bdata):
    cases = []
    for name, cfg in dpo_configs():
        _, source = dpo_compute(cfg, dtype)
        for bname, d in batches.items():
            n = len(d["pc"])
            loss, gc, gr, metrics, logps, aligned = run_dpo_once(cfg, d, list(range(n)), dtype)
            if bname not in bdata:
                bdata[bname] = dict(
                    pc=logps[:n].tolist(), pr=logps[n:].tolist(), rc=d["rc"].tolist(), rr=d["rr"].tolist(),
                    nc=d["nc"].tolist(), nr=d["nr"].tolist(), ac=aligned[:n].tolist(), ar=aligned[n:].tolist(),
                    p=d["p"].tolist(), sc=d["sc"].tolist(), sr=d["sr"].tolist())
            case = dict(name=name, trainer="dpo", source=source, batch=bname,
                        config={k: cfg[k] for k in ["loss_type", "loss_weights", "beta", "label_smoothing",
                                                   "f_divergence_type", "f_alpha_divergence_coef",
                                                   "use_weighting", "discopop_tau"]},
                        loss=loss, d_chosen=gc, d_rejected=gr, metrics=metrics)
            if not (set(cfg["loss_type"]) & POINTWISE_EXCLUDED):
                case["per_pair"] = [run_dpo_once(cfg, d, [i], dtype)[0] for i in range(n)]
            cases.append(case)
    for name, extra in [("probabilistic/constant0.1", dict(source="constant", label_smoothing=0.1)),
                        ("probabilistic/column", dict(source="column")),
                        ("probabilistic/scores", dict(source="scores", score_temperature=2.0))]:
        cfg = dict(beta=0.1, label_smoothing=0.0, score_temperature=1.0)
        cfg.update(extra)
        for bname, d in batches.items():
            loss, per, gc, gr = probabilistic_formula(cfg, d, dtype)
            cases.append(dict(name=name, trainer="probabilistic", source="formula", batch=bname, config=cfg,
                              loss=loss, per_pair=per, d_chosen=gc, d_rejected=gr))
    return cases


# ---------------------------------------------------------------------------------------------
# CPO and ORPO: the fake model returns logits.

class FakeLogitsLM:
    def __init__(self, leaf, mask):
        self.leaf, self.mask = leaf, mask

    def __call__(self, input_ids, attention_mask=None, use_cache=False, **kwargs):
        l = torch.where(self.mask, self.leaf, torch.full_like(self.leaf, -1.0))
        a = l
        b = torch.log(-torch.expm1(l))
        body = torch.stack([a, b], dim=-1) * self.mask.unsqueeze(-1)
        last = torch.zeros(body.shape[0], 1, 2, dtype=body.dtype)
        return types.SimpleNamespace(logits=torch.cat([body, last], dim=1))


def logits_batch(d, dtype):
    b = len(d["pc"])
    counts = [int(v) for v in d["nc"]] + [int(v) for v in d["nr"]]
    t = 1 + max(counts)
    lp = torch.zeros(2 * b, t - 1, dtype=dtype)
    mask = torch.zeros(2 * b, t - 1, dtype=torch.bool)
    labels = torch.full((2 * b, t), -100, dtype=torch.long)
    amask = torch.zeros(2 * b, t, dtype=torch.long)
    for r in range(2 * b):
        i, side = r % b, ("c" if r < b else "r")
        n = counts[r]
        lp[r, :n] = spread(d["p" + side][i], d["w_" + side][i], dtype)
        mask[r, :n] = True
        labels[r, 1:1 + n] = 0
        amask[r, :1 + n] = 1
    batch = {
        "chosen_input_ids": torch.zeros(b, t, dtype=torch.long), "chosen_attention_mask": amask[:b],
        "chosen_labels": labels[:b], "rejected_input_ids": torch.zeros(b, t, dtype=torch.long),
        "rejected_attention_mask": amask[b:], "rejected_labels": labels[b:],
    }
    return lp, mask, batch, labels, counts


def capture(store, key, fn):
    def wrapped(*a, **kw):
        out = fn(*a, **kw)
        store[key] = out
        return out
    return wrapped


def run_logits_trainer(trainer, cfg, d, dtype):
    lp, mask, batch, labels, counts = logits_batch(d, dtype)
    leaf = lp.clone().requires_grad_(True)
    model = FakeLogitsLM(leaf, mask)
    seen = {}
    fake = types.SimpleNamespace(is_encoder_decoder=False, pad_token_id=0, padding_value=0, accelerator=Accel(),
                                 aux_loss_enabled=False, beta=cfg["beta"])
    cls = CPOTrainer if trainer == "cpo" else ORPOTrainer
    fake.concatenated_inputs = cls.concatenated_inputs
    fake.get_batch_logps = cls.get_batch_logps
    source = "trl"
    if trainer == "cpo":
        fake.loss_type, fake.cpo_alpha = cfg["loss_type"], cfg["cpo_alpha"]
        fake.label_smoothing, fake.simpo_gamma, fake.alpha = cfg["label_smoothing"], cfg["simpo_gamma"], 0.0
        fake.cpo_loss = capture(seen, "loss", types.MethodType(CPOTrainer.cpo_loss, fake))
    else:
        odds = ORPO_OR_F64 if dtype == torch.float64 else ORPOTrainer.odds_ratio_loss
        source = "trl-patched" if dtype == torch.float64 else "trl"
        fake.odds_ratio_loss = capture(seen, "loss", types.MethodType(odds, fake))
    fake.concatenated_forward = capture(seen, "forward", types.MethodType(cls.concatenated_forward, fake))
    loss, metrics = cls.get_batch_loss_metrics(fake, model, batch, "train")
    loss.backward()
    b = len(d["pc"])
    grads = [row_gradient(leaf.grad[r], counts[r], dtype) for r in range(2 * b)]
    with torch.no_grad():  # the summed log-probs, by TRL's own get_batch_logps on the same logits
        sums = cls.get_batch_logps(model(None).logits, labels, average_log_prob=False)
    fwd = seen["forward"]
    losses = seen["loss"][0].detach()
    per_pref = (losses if trainer == "cpo" else -losses).tolist()
    extra = ["nll_loss", "log_odds_ratio", "log_odds_chosen"] if trainer == "orpo" else (
        ["nll_loss"] if cfg["loss_type"] == "sigmoid" else [])
    return dict(loss=loss.item(), d_chosen=grads[:b], d_rejected=grads[b:],
                metrics={k: float(metrics[k]) for k in METRICS + extra},
                nll=float(fwd[4].item()), per_pair_preference=per_pref, source=source), sums


def logits_cases(batches, dtype, bdata):
    configs = [
        ("cpo", "cpo/sigmoid", dict(loss_type="sigmoid", beta=0.1, cpo_alpha=1.0, label_smoothing=0.0, simpo_gamma=0.5)),
        ("cpo", "cpo/sigmoid_ls", dict(loss_type="sigmoid", beta=0.2, cpo_alpha=0.5, label_smoothing=0.1,
                                       simpo_gamma=0.5)),
        ("cpo", "simpo", dict(loss_type="simpo", beta=2.0, cpo_alpha=0.0, label_smoothing=0.0, simpo_gamma=0.5)),
        ("cpo", "simpo/nll", dict(loss_type="simpo", beta=2.0, cpo_alpha=1.0, label_smoothing=0.1, simpo_gamma=1.0)),
        ("orpo", "orpo", dict(beta=0.1)),
        ("orpo", "orpo/beta1", dict(beta=1.0)),
    ]
    cases = []
    for trainer, name, cfg in configs:
        for bname, d in batches.items():
            res, sums = run_logits_trainer(trainer, cfg, d, dtype)
            key = bname + "/logits"
            n = len(d["pc"])
            if key not in bdata:
                bdata[key] = dict(pc=sums[:n].tolist(), pr=sums[n:].tolist(), nc=d["nc"].tolist(), nr=d["nr"].tolist())
            cases.append(dict(name=name, trainer=trainer, batch=key, config=cfg, **res))
    return cases


# ---------------------------------------------------------------------------------------------
# KTO.

class FakeKTOModel:
    def __init__(self, main, kl, kl_ids):
        self.main, self.kl, self.kl_ids = main, kl, kl_ids

    def __call__(self, **kwargs):
        lp = self.kl if kwargs["input_ids"] is self.kl_ids else self.main
        z = torch.zeros_like(lp.detach())
        return types.SimpleNamespace(log_probs=lp, entropy=z, mean_logits=z,
                                     is_top1=torch.zeros(z.shape, dtype=torch.bool), aux_loss=None)


def rows(values, counts, weights, dtype):
    t = 1 + int(max(counts))
    lp = torch.zeros(len(values), t - 1, dtype=dtype)
    cmask = torch.zeros(len(values), t, dtype=torch.long)
    amask = torch.zeros(len(values), t, dtype=torch.long)
    for r, (v, n) in enumerate(zip(values, counts)):
        lp[r, :n] = spread(v, weights[r], dtype)
        cmask[r, 1:1 + n] = 1
        amask[r, :1 + n] = 1
    return lp, cmask, amask


def run_kto_once(cfg, u, idx, dtype):
    lp, cmask, amask = rows(u["logp"][idx], u["n"][idx], [u["w"][i] for i in idx], dtype)
    kl_lp, kl_cmask, kl_amask = rows(u["kl_pol"], u["kl_n"], u["kl_w"], dtype)
    batch = {
        "input_ids": torch.zeros(cmask.shape, dtype=torch.long), "attention_mask": amask, "completion_mask": cmask,
        "label": torch.tensor(u["label"][idx], dtype=torch.bool),
        "ref_logps": torch.tensor(u["ref"][idx], dtype=dtype),
        "KL_input_ids": torch.zeros(kl_cmask.shape, dtype=torch.long), "KL_attention_mask": kl_amask,
        "KL_completion_mask": kl_cmask, "ref_KL_logps": torch.tensor(u["kl_ref"], dtype=dtype),
    }
    leaf = lp.clone().requires_grad_(True)
    fake = types.SimpleNamespace(
        model=types.SimpleNamespace(training=True), accelerator=Accel(), aux_loss_enabled=False,
        calculate_KL=cfg["loss_type"] == "kto", precompute_ref_logps=True, loss_type=cfg["loss_type"],
        beta=cfg["beta"], desirable_weight=cfg["desirable_weight"], undesirable_weight=cfg["undesirable_weight"],
        args=types.SimpleNamespace(gradient_checkpointing_kwargs=None), ref_model=None,
        _metrics=metrics_store(), _total_train_tokens=0, _tp_size=1)
    fake._compute_kl_logps = types.MethodType(KTOTrainer._compute_kl_logps, fake)
    loss = KTOTrainer._compute_loss(fake, FakeKTOModel(leaf, kl_lp, batch["KL_input_ids"]), batch, False)
    loss.backward()
    grads = [row_gradient(leaf.grad[r], int(u["n"][i]), dtype) for r, i in enumerate(idx)]
    m = fake._metrics["train"]
    metrics = {k: m[k][-1] for k in ["kl", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen",
                                     "logps/rejected"] if m.get(k)}
    return loss.item(), grads, metrics, lp.sum(dim=1), kl_lp.sum(dim=1)


def kto_cases(ubatches, dtype, bdata):
    configs = [
        ("kto", dict(loss_type="kto", beta=0.1, desirable_weight=1.0, undesirable_weight=1.0)),
        ("kto/weights", dict(loss_type="kto", beta=0.5, desirable_weight=1.0, undesirable_weight=1.33)),
        ("apo_zero_unpaired", dict(loss_type="apo_zero_unpaired", beta=0.1, desirable_weight=1.0,
                                   undesirable_weight=1.0)),
    ]
    cases = []
    for name, cfg in configs:
        for bname, u in ubatches.items():
            n = len(u["logp"])
            loss, grads, metrics, sums, kl_sums = run_kto_once(cfg, u, list(range(n)), dtype)
            key = bname + "/unpaired"
            if key not in bdata:
                bdata[key] = dict(policy=sums.tolist(), reference=u["ref"].tolist(),
                                  desirable=[int(v) for v in u["label"]], policy_kl=kl_sums.tolist(),
                                  reference_kl=u["kl_ref"].tolist())
            per = [run_kto_once(cfg, u, [i], dtype)[0] for i in range(n)]
            cases.append(dict(name=name, trainer="kto", source="trl", batch=key, config=cfg, loss=loss,
                              per_pair=per, d_policy=grads, metrics=metrics))
    return cases


# ---------------------------------------------------------------------------------------------
# Output: numbers in the shortest form that round-trips in the run's dtype; non-finite as strings.

def encode(obj, dtype):
    if isinstance(obj, dict):
        return {k: encode(v, dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v, dtype) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if np.isnan(v):
            return "nan"
        if np.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = str(np.float32(v)) if dtype == torch.float32 else repr(v)
        return "@@" + text + "@@"
    return obj


def main():
    paired = paired_batches()
    unpaired = unpaired_batches(paired)
    for dtype, tag in [(torch.float64, "float64"), (torch.float32, "float32")]:
        torch.set_default_dtype(dtype)
        bdata = {}
        cases = dpo_cases(paired, dtype, bdata) + logits_cases(paired, dtype, bdata) + kto_cases(unpaired, dtype, bdata)
        doc = {
            "generator": "tools/reference/losses_make_reference.py",
            "trl_version": trl.__version__, "torch_version": torch.__version__.split("+")[0], "dtype": tag,
            "batches": bdata, "cases": cases,
        }
        text = json.dumps(encode(doc, dtype), separators=(",", ":"))
        text = re.sub(r'"@@([^@]*)@@"', r"\1", text)
        text = text.replace('{"name"', '\n{"name"')
        path = OUT_DIR / f"trl_{tag}.json"
        path.write_text(text + "\n")
        print(f"{path.relative_to(ROOT)}: {len(cases)} cases, {len(text)} bytes")
    torch.set_default_dtype(torch.float32)
    return 0


if __name__ == "__main__":
    sys.exit(main())
