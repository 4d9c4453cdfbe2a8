#!/usr/bin/env python3
"""PyTorch's side of the model-level DPO comparison (benchmarks/model_run.py drives it).

    torch_model_bench.py prepare --shape gpt2-small|qwen2.5-0.5b [--tiny] [--gpu] [--truth] [--device cpu|cuda]
                                 --workdir DIR
    torch_model_bench.py step    --model DIR --pairs FILE --path trl|plain [--lora ADAPTER_DIR]
                                 [--device cpu|cuda] [--dtype fp32|bf16] [--weights fp32|bf16]
                                 [--threads N --warmup 1 --steps 2]

prepare: builds the model from a config with seed 0 (random weights), saves it as a Hugging Face
folder (config.json + model.safetensors; prefopt loads the same folder), draws fixed random token
ids (seed 1), computes the reference log-probs (the model's own plus fixed offsets in [-2, 2], so
the loss is not at log 2), and saves a PEFT LoRA adapter (r 16, alpha 32, dropout 0) whose B is
non-zero (seed 2) so that both A's and B's gradients are checked. Writes DIR/<shape>/{model,
lora, pairs.json}. --gpu: the GPU case's batch (8 pairs x (256 + 256) tokens, both shapes) into
DIR/<shape>-gpu. --truth: also the float32 step on the plain path (log-probs, loss, gradient squared
norm, full and LoRA) in the printed JSON, the reference the bf16 rows are checked against; --device
runs those float32 passes there (torch's float32 matmuls, TF32 off).

step: one DPO step -- sigmoid loss, beta 0.1, precomputed reference log-probs, forward + backward,
no optimizer step -- float32, eager mode, timed as prefopt_model_bench times its own:
  --path trl    TRL 1.16's DPOTrainer step: DataCollatorForPreference batches the pairs (chosen rows
                then rejected rows, right-padded), add_fused_lm_head patches the model as
                DPOTrainer.__init__ does (outputs log_probs, entropy, mean_logits, is_top1), and
                DPOTrainer._compute_loss itself runs on a minimal stand-in for the trainer (one
                process: gather is the identity). DPOConfig's defaults decide the rest: dropout
                disabled, activation (gradient) checkpointing on, padding_free off, loss sigmoid.
                Only bf16 is turned off (DPOConfig defaults it on), to compare float32 with float32.
                With --lora, PEFT wraps the patched model and input grads are enabled, as DPOTrainer does.
  --path plain  the fastest eager path we could write: the backbone over the two-row batch (no
                padding: every row has the same length), the LM head only at the completion
                positions, TRL's selective_log_softmax, no checkpointing. With --lora: PEFT on it.
Peak memory as bench_support.hpp measures it (VmHWM reset after setup).

--device cuda: the same step on the GPU, timed with CUDA events around each step (the device's
time, warm-up excluded); peak device memory is torch.cuda.max_memory_allocated after
torch.cuda.reset_peak_memory_stats at the start of the measured region (weights, gradients and
activations: what prefopt_model_bench reports from its memory pool). --dtype bf16: with --weights
fp32 (the default) the model keeps float32 master weights and the step runs under
torch.autocast(bfloat16), which is what TRL's `bf16: true` does (the Trainer wraps the loss in the
accelerator's autocast); --weights bf16 casts the model to bfloat16 (no master weights, PyTorch's
fastest); with LoRA the adapters are then bfloat16 too, as DPOTrainer makes them
(autocast_adapter_dtype=False).
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from types import SimpleNamespace

BETA = 0.1
# name: (architecture config, pairs, prompt length, completion length, LoRA targets)
SHAPES = {
    "gpt2-small": ("gpt2", dict(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024), 4, 128, 128,
                   ["c_attn"]),
    "qwen2.5-0.5b": ("qwen2", dict(num_hidden_layers=24, hidden_size=896, num_attention_heads=14, num_key_value_heads=2,
                                   intermediate_size=4864, vocab_size=151936, max_position_embeddings=32768),
                     4, 64, 64, ["q_proj", "k_proj", "v_proj", "o_proj"]),
}
# The GPU case (benchmarks/README.md, "GPU"): pairs, prompt length, completion length.
GPU = {"gpt2-small": (8, 256, 256), "qwen2.5-0.5b": (8, 256, 256)}
TINY = {  # the same architectures, small enough to test the harness in seconds
    "gpt2-small": dict(n_layer=2, n_embd=64, n_head=4, vocab_size=500, n_positions=64),
    "qwen2.5-0.5b": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=128, vocab_size=500, max_position_embeddings=64),
}


from torch_bench import PeakProbe, status_kb  # the same peak-memory probe as the LM-head benchmark


def make_config(shape, tiny):
    import transformers
    arch, sizes, *_ = SHAPES[shape]
    sizes = TINY[shape] if tiny else sizes
    if arch == "gpt2":
        return transformers.GPT2Config(**sizes, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                                       eos_token_id=0)
    # As Qwen2.5-0.5B: q/k/v bias (Qwen2's own), RMSNorm eps 1e-6, SwiGLU, RoPE theta 1e6, tied embeddings.
    return transformers.Qwen2Config(**sizes, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
                                    attention_dropout=0.0, bos_token_id=0, eos_token_id=0,
                                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})


def prepare(a, torch):
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model
    arch, _, n, prompt, completion, targets = SHAPES[a.shape]
    if a.gpu:
        n, prompt, completion = GPU[a.shape]
    if a.tiny:
        n, prompt, completion = 2, 8, 8
    out = os.path.join(a.workdir, shape_dir(a.shape, a.tiny, a.gpu))
    os.makedirs(out, exist_ok=True)
    cfg = make_config(a.shape, a.tiny)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).float().eval()
    model.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
    parameters = sum(p.numel() for p in model.parameters())  # before PEFT adds its adapters in place
    g = torch.Generator().manual_seed(1)
    ids = lambda k: torch.randint(0, cfg.vocab_size, (k,), generator=g).tolist()
    pairs = [{"prompt": ids(prompt), "chosen": ids(completion), "rejected": ids(completion)} for _ in range(n)]
    device = torch.device(a.device)
    model.to(device)
    x = torch.tensor([p["prompt"] + p["chosen"] for p in pairs] + [p["prompt"] + p["rejected"] for p in pairs],
                     device=device)
    with torch.no_grad():
        logps = plain_logps(model, x, prompt, torch).double().cpu()
    ref = (logps + (torch.rand(2 * n, generator=g) * 4 - 2).double()).tolist()
    truth = {}
    if a.truth:
        truth["full"] = fp32_step(model, model, x, prompt, torch.tensor(ref, device=device), torch)
    with open(os.path.join(out, "pairs.json"), "w") as f:
        json.dump({"beta": BETA, "pairs": pairs, "reference_logps": ref}, f)
    lcfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets, fan_in_fan_out=arch == "gpt2")
    model.to("cpu")
    peft_model = get_peft_model(model, lcfg)
    g2 = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g2) * 0.02)
    peft_model.save_pretrained(os.path.join(out, "lora"))
    lora_parameters = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    if a.truth:
        peft_model.to(device)
        truth["lora"] = fp32_step(peft_model, peft_model.get_base_model(), x, prompt,
                                  torch.tensor(ref, device=device), torch)
    print(json.dumps({"dir": out, "pairs": n, "prompt": prompt, "completion": completion,
                      "parameters": parameters, "lora_parameters": lora_parameters, "config": cfg.to_dict(),
                      "truth": truth}))


def shape_dir(shape, tiny, gpu):
    return shape + ("-tiny" if tiny else "") + ("-gpu" if gpu else "")


def fp32_step(model, base, x, prompt, ref, torch):
    """The float32 DPO step on the plain path: the numbers every bf16 row is checked against."""
    import torch.nn.functional as F
    n = x.size(0) // 2
    model.train()
    model.zero_grad(set_to_none=True)
    logps = plain_logps(base, x, prompt, torch)
    margin = (logps[:n] - ref[:n].float()) - (logps[n:] - ref[n:].float())
    loss = -F.logsigmoid(BETA * margin).mean()
    loss.backward()
    gss = sum(float((p.grad.double() ** 2).sum()) for p in model.parameters() if p.requires_grad and p.grad is not None)
    model.zero_grad(set_to_none=True)
    model.eval()
    return {"loss": loss.item(), "logps": logps.detach().double().cpu().tolist(), "grad_sum_squares": gss}


def plain_logps(model, x, prompt, torch):
    """Per-row completion log-prob sums: backbone, then the LM head at completion positions only."""
    from trl.trainer.utils import selective_log_softmax
    h = model.base_model(input_ids=x, use_cache=False).last_hidden_state
    h = h[:, prompt - 1:-1]  # positions that predict the completion tokens
    logits = model.get_output_embeddings()(h)
    return selective_log_softmax(logits, x[:, prompt:]).float().sum(-1)  # bf16 log-probs summed in fp32


def trainer_standin(model, cfg, torch, device):
    """The attributes DPOTrainer._compute_loss reads, as DPOTrainer.__init__ sets them, on one process."""
    ident = lambda t: t
    return SimpleNamespace(
        model=model, args=cfg, ref_model=None, accelerator=SimpleNamespace(device=device,
                                                                           gather_for_metrics=ident, gather=ident),
        aux_loss_enabled=False, router_aux_loss_coef=0.0, ld_alpha=cfg.ld_alpha,
        precompute_ref_logps=True, f_divergence_type=cfg.f_divergence_type,
        f_alpha_divergence_coef=cfg.f_alpha_divergence_coef, loss_types=cfg.loss_type,
        loss_weights=cfg.loss_weights or [1.0] * len(cfg.loss_type), beta=cfg.beta,
        label_smoothing=cfg.label_smoothing, use_weighting=cfg.use_weighting,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)


def step_case(a, torch):
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM
    spec = json.load(open(a.pairs))
    pairs = spec["pairs"]
    n, prompt = len(pairs), len(pairs[0]["prompt"])
    assert all(len(p["prompt"]) == prompt for p in pairs), "the plain path assumes one prompt length"
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    ref = torch.tensor(spec["reference_logps"], dtype=torch.float32, device=device)
    bf16_weights = a.dtype == "bf16" and a.weights == "bf16"
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16 if bf16_weights else torch.float32)
    model.config.use_cache = False
    model.to(device)
    # TRL's bf16: true with float32 weights: the step under autocast (the Trainer's
    # compute_loss_context_manager); bf16 weights run without it, as TRL does for a bf16 model.
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if a.dtype == "bf16" and not bf16_weights \
        else contextlib.nullcontext
    peft_kwargs = {"autocast_adapter_dtype": False} if bf16_weights else {}
    state = {}
    if a.path == "trl":
        from trl import DPOConfig
        from trl.trainer.dpo_trainer import DataCollatorForPreference, DPOTrainer
        from trl.trainer.utils import add_fused_lm_head
        from trl.trainer.utils import disable_dropout_in_model
        # bf16 is set off in the config and applied here (amp / bf16 weights), so the same code runs on a CPU.
        cfg = DPOConfig(output_dir=tempfile.mkdtemp(), bf16=False, report_to=[], beta=spec["beta"],
                        precompute_ref_log_probs=True)
        assert cfg.loss_type == ["sigmoid"] and not cfg.padding_free
        if cfg.disable_dropout:
            disable_dropout_in_model(model)
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
        if a.lora:
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, a.lora, is_trainable=True, **peft_kwargs).to(device)
        # transformers.Trainer does this when training starts; transformers before 5.2x (the GPU
        # machines' 5.17) names it gradient checkpointing.
        new_names = hasattr(cfg, "activation_checkpointing")
        if cfg.activation_checkpointing if new_names else cfg.gradient_checkpointing:
            if new_names:
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=cfg.activation_checkpointing_kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=cfg.gradient_checkpointing_kwargs)
            if a.lora:
                model.enable_input_require_grads()
        model.train()
        collate = DataCollatorForPreference(pad_token_id=0, max_length=cfg.max_length,
                                            truncation_mode=cfg.truncation_mode, pad_to_multiple_of=None)
        inputs = collate([{"prompt_ids": p["prompt"], "chosen_ids": p["chosen"], "rejected_ids": p["rejected"],
                           "ref_chosen_logps": float(ref[i]), "ref_rejected_logps": float(ref[n + i])}
                          for i, p in enumerate(pairs)])
        inputs["ref_chosen_logps"] = inputs["ref_chosen_logps"].float()
        inputs["ref_rejected_logps"] = inputs["ref_rejected_logps"].float()
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
        trainer = trainer_standin(model, cfg, torch, device)
        seq_len = inputs["completion_mask"].size(1) - 1
        tokens = int(inputs["input_ids"].numel())

        def step():
            model.zero_grad(set_to_none=True)
            with amp():
                loss = DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)
            loss.backward()
            m = trainer._metrics["train"]
            # chosen/rejected log-probs: TRL logs their means; recompute the per-row values for the check
            state.update(loss=loss.item(), logps_mean=[m["logps/chosen"][-1], m["logps/rejected"][-1]])
        state["seq_len"] = seq_len
    else:
        if a.lora:
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, a.lora, is_trainable=True, **peft_kwargs).to(device)
        model.train()
        x = torch.tensor([p["prompt"] + p["chosen"] for p in pairs] + [p["prompt"] + p["rejected"] for p in pairs],
                         device=device)
        base = model.get_base_model() if a.lora else model
        tokens = int(x.numel())

        def step():
            model.zero_grad(set_to_none=True)
            with amp():
                logps = plain_logps(base, x, prompt, torch).float()
                margin = (logps[:n] - ref[:n]) - (logps[n:] - ref[n:])
                loss = -F.logsigmoid(spec["beta"] * margin).mean()
            loss.backward()
            state.update(loss=loss.item(), logps=logps.detach().double().tolist())

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    probe = PeakProbe()
    probe.start()
    for _ in range(a.warmup):
        step()
    wall, cpu = [], []
    for _ in range(a.steps):
        if cuda:  # the device's time of the step: events on the stream around it
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            c = time.process_time()
            begin.record()
            step()
            end.record()
            end.synchronize()
            wall.append(begin.elapsed_time(end) / 1000.0)
            cpu.append(time.process_time() - c)
            continue
        c, t0 = time.process_time(), time.perf_counter()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c)
    peak = status_kb("VmHWM")
    device_info = {}
    if cuda:
        device_info = {"device": torch.cuda.get_device_name(device),
                       "device_peak_bytes": torch.cuda.max_memory_allocated(device),
                       "device_reserved_peak_bytes": torch.cuda.max_memory_reserved(device),
                       "torch_cuda": torch.version.cuda}
    trainable = [p for p in model.parameters() if p.requires_grad]
    gss = sum(float((p.grad.double() ** 2).sum()) for p in trainable if p.grad is not None)
    if a.path == "trl":
        # The per-row log-probs of the trained policy, through the same patched forward (no grad):
        # TRL's _compute_loss keeps only their means, which are checked against these below.
        with torch.no_grad(), amp():
            lab = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
            o = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=lab,
                      fused_lm_head=True, use_cache=False)
            logps = o.log_probs[:, -state["seq_len"]:].float().sum(1).double().cpu()
        tol = 1e-3 if a.dtype == "fp32" else 1e-2  # bf16: the same computation, maybe other kernels
        assert abs(float(logps[:n].mean()) - state["logps_mean"][0]) <= tol * (1 + abs(state["logps_mean"][0]))
        state["logps"] = logps.tolist()
    return {"impl": "torch", "path": a.path, "lora": bool(a.lora), "threads": torch.get_num_threads(),
            "times_s": wall, "median_s": statistics.median(wall), "cpu_s": cpu, "median_cpu_s": statistics.median(cpu),
            "peak_delta_kb": peak - probe.base, "peak_kb": peak, "rss_at_start_kb": probe.base,
            "peak_reset_ok": probe.reset_ok, "tokens": tokens, "two_row_tokens": n * 2 * prompt + sum(
                len(p["chosen"]) + len(p["rejected"]) for p in pairs), "loss": state["loss"], "logps": state["logps"],
            "grad_sum_squares": gss, "trainable_parameters": sum(p.numel() for p in trainable),
            "dtype": a.dtype, "weights": a.weights if a.dtype == "bf16" else "fp32",
            "attn_implementation": getattr(model.config, "_attn_implementation", "?"), **device_info}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["prepare", "step"])
    ap.add_argument("--shape", choices=list(SHAPES))
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--gpu", action="store_true", help="prepare: the GPU case's batch (8 pairs x (256 + 256))")
    ap.add_argument("--truth", action="store_true", help="prepare: also the float32 step's numbers")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--weights", choices=["fp32", "bf16"], default="fp32",
                    help="with --dtype bf16: fp32 master weights under autocast, or the model cast to bf16")
    ap.add_argument("--workdir")
    ap.add_argument("--model")
    ap.add_argument("--pairs")
    ap.add_argument("--path", choices=["trl", "plain"], default="plain")
    ap.add_argument("--lora")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    if a.cmd == "prepare":
        prepare(a, torch)
    else:
        print(json.dumps(step_case(a, torch)))


if __name__ == "__main__":
    sys.exit(main())
