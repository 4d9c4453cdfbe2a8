#!/usr/bin/env bash
# backend: "cuda" from the command line. Everywhere: an unknown backend is an error naming the
# field, and where this build has no CUDA backend or the machine no GPU, `--set backend=cuda` is
# an error that says which (then the test reports itself skipped, 77). On a GPU: 3 steps of
# `prefopt train` on the cuda backend give eigen's metrics (loss, rewards, log-probs, grad_norm)
# to 1e-4 relative at every step, for full fine-tuning (GPT-2) and LoRA (Qwen2), and `prefopt eval`
# on the trained model agrees as well; `prefopt logps --backend cuda` gives eigen's log-probs in
# fp32 and in bf16; `prefopt demo --quick --backend cuda` runs its whole pipeline on the GPU;
# `prefopt generate`, `prefopt reward train/score` and `prefopt iterate` (rounds and online) on
# cuda give eigen's tokens, scores and metrics (fp32).
source "$(dirname "$0")/common.sh"
run() {  # run <train|eval> <output dir> <model> [--set ...]
  local cmd="$1" out="$2" model="$3"
  shift 3
  "$PREFOPT" "$cmd" --set model="$DATA/models/$model" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
    --set training.max_steps=3 --set training.batch_size=2 --set training.logging_steps=1 \
    --set optimizer.learning_rate=0.01 --set output.dir="$WORK/$out" --set output.tensorboard=false "$@"
}
expect_fail "field 'backend': must be eigen (CPU) or cuda" run train bad gpt2 --set backend=tpu
expect_fail "--backend: 'tpu' is not one of eigen" "$PREFOPT" demo --quick --out "$WORK/demo-bad" --backend tpu
expect_fail "--precision" "$PREFOPT" demo --quick --out "$WORK/demo-bad" --precision fp16
if ! out=$(run train probe gpt2 --set backend=cuda 2>&1); then
  if grep -qF "built without the CUDA backend" <<<"$out" || grep -qF "no CUDA device is visible" <<<"$out"; then
    echo "cuda: no CUDA backend or no GPU here ($(grep -o 'cuda: [^(]*' <<<"$out" | head -1)); the GPU part is skipped"
    exit 77
  fi
  fail "backend=cuda failed: $out"
fi
compare() {  # compare <eigen dir> <cuda dir>
  python3 - "$WORK/$1/metrics.jsonl" "$WORK/$2/metrics.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and a, (len(a), len(b))
for x, y in zip(a, b):
    for k, v in x.items():
        if isinstance(v, (int, float)) and k in y:
            assert abs(v - y[k]) <= 1e-4 * max(1.0, abs(v)), (x.get("step"), k, v, y[k])
PY
}
run train full-eigen gpt2 2> "$WORK/full-eigen.log" || fail "eigen run failed: $(cat "$WORK/full-eigen.log")"
run train full-cuda gpt2 --set backend=cuda 2> "$WORK/full-cuda.log" || fail "cuda run failed: $(cat "$WORK/full-cuda.log")"
compare full-eigen full-cuda || fail "cuda and eigen disagree (GPT-2, full)"
run train lora-eigen qwen2 --set lora.r=4 2> "$WORK/lora-eigen.log" || fail "eigen LoRA run failed"
run train lora-cuda qwen2 --set lora.r=4 --set backend=cuda 2> "$WORK/lora-cuda.log" || fail "cuda LoRA run failed: $(cat "$WORK/lora-cuda.log")"
compare lora-eigen lora-cuda || fail "cuda and eigen disagree (Qwen2, LoRA)"
# prefopt logps --backend cuda: eigen's log-probs in fp32 (1e-4 relative), and in bf16 near the
# eigen backend's bf16 emulation (the GPU sums in another order, which can flip a bf16 rounding of
# an activation: 1e-2 relative, the bound logps_test.sh holds bf16 to against fp32).
logps() {  # logps <out> [flags]
  "$PREFOPT" logps --model "$DATA/models/$MODEL" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/$1" "${@:2}" 2> "$WORK/$1.log" \
    || fail "logps $*: $(cat "$WORK/$1.log")"
}
same_logps() {  # same_logps <a> <b> <relative tolerance>
  python3 - "$WORK/$1" "$WORK/$2" "$3" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
tol = float(sys.argv[3])
assert len(a) == len(b) and a
for x, y in zip(a, b):
    assert x["line"] == y["line"] and x["chosen_tokens"] == y["chosen_tokens"], (x, y)
    for k in ("chosen_logps", "rejected_logps"):
        assert abs(x[k] - y[k]) <= tol * (abs(x[k]) + 1.0), (x["line"], k, x[k], y[k])
PY
}
for MODEL in gpt2 qwen2; do
  logps "$MODEL-eigen.jsonl"
  logps "$MODEL-cuda.jsonl" --backend cuda
  same_logps "$MODEL-eigen.jsonl" "$MODEL-cuda.jsonl" 1e-4 || fail "logps: cuda and eigen disagree ($MODEL, fp32)"
  logps "$MODEL-eigen16.jsonl" --precision bf16
  logps "$MODEL-cuda16.jsonl" --backend cuda --precision bf16 --prefix-sharing
  same_logps "$MODEL-eigen16.jsonl" "$MODEL-cuda16.jsonl" 1e-2 || fail "logps: cuda and eigen disagree ($MODEL, bf16)"
done
# prefopt generate --backend cuda: greedy continuations (24 tokens) of the golden Llama, and of
# Llama + LoRA, keep eigen's tokens with log-probs within 1e-4 relative; seeded sampling (GPT-2
# with a text tokenizer) draws eigen's tokens where the logits agree: the samplers run on the
# host over each step's logits, so only a draw at a distribution boundary can change (at least
# 10 of 12 completions kept; their log-probs to 1e-4).
python3 - "$DATA/generate/greedy.json" "$WORK/ids.jsonl" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for p in g["llama"]["prompts"]:
        f.write(json.dumps({"prompt_input_ids": p}) + "\n")
PY
head -4 "$DATA/cli/pairs_text.jsonl" | sed 's/", "chosen".*/"}/' > "$WORK/text.jsonl"
gen() {  # gen <out> [flags]
  "$PREFOPT" generate --out "$WORK/$1" "${@:2}" 2> "$WORK/$1.log" || fail "generate $*: $(cat "$WORK/$1.log")"
}
same_generation() {  # same_generation <a> <b> <completions that keep their tokens, at least; all: every one>
  python3 - "$WORK/$1" "$WORK/$2" "$3" <<'PY'
import json, sys
a = [c for l in open(sys.argv[1]) for c in json.loads(l)["completions"]]
b = [c for l in open(sys.argv[2]) for c in json.loads(l)["completions"]]
assert len(a) == len(b) and a, (len(a), len(b))
same = [(x, y) for x, y in zip(a, b) if x["token_ids"] == y["token_ids"]]
assert len(same) >= (len(a) if sys.argv[3] == "all" else int(sys.argv[3])), (len(same), len(a))
for x, y in same:
    assert abs(x["logp"] - y["logp"]) <= 1e-4 * (abs(x["logp"]) + 1.0), (x, y)
PY
}
for b in eigen cuda; do
  gen "greedy-$b.jsonl" --model "$DATA/models/llama" --data "$WORK/ids.jsonl" --temperature 0 --max-new-tokens 24 --eos-id -1 --n 2 --backend $b
  gen "lora-$b.jsonl" --model "$DATA/models/llama" --adapter "$DATA/models/llama_lora" --data "$WORK/ids.jsonl" --temperature 0 \
    --max-new-tokens 24 --backend $b
  gen "sampled-$b.jsonl" --model "$DATA/cli/gpt2_text" --tokenizer "$DATA/tokenizer/gpt2/tokenizer.json" --data "$WORK/text.jsonl" \
    --max-new-tokens 10 --n 3 --seed 7 --top-k 40 --top-p 0.9 --temperature 1.2 --backend $b
done
same_generation greedy-eigen.jsonl greedy-cuda.jsonl all || fail "generate: cuda and eigen disagree (Llama, greedy)"
same_generation lora-eigen.jsonl lora-cuda.jsonl all || fail "generate: cuda and eigen disagree (Llama + LoRA, greedy)"
same_generation sampled-eigen.jsonl sampled-cuda.jsonl 10 || fail "generate: cuda and eigen disagree (GPT-2, sampled)"
# prefopt reward train (backend "cuda" in run.json) and reward score --backend cuda: 3 steps of
# Bradley-Terry training of a new head on the Llama body give eigen's metrics (1e-4 relative), and
# eigen's trained model scores the pairs on the GPU as on the CPU (1e-4 relative), fp32.
cat > "$WORK/reward.json" <<JSON
{"model": "$DATA/models/llama", "data": {"train": "$DATA/cli/pairs_tokenized.jsonl"}, "optimizer": {"learning_rate": 0.003},
 "training": {"max_steps": 3, "batch_size": 2, "logging_steps": 1}, "output": {"tensorboard": false}}
JSON
for b in eigen cuda; do
  "$PREFOPT" reward train --config "$WORK/reward.json" --set backend=$b --set output.dir="$WORK/reward-$b" 2> "$WORK/reward-$b.log" \
    || fail "reward train on $b: $(cat "$WORK/reward-$b.log")"
  "$PREFOPT" reward score --model "$WORK/reward-eigen/final" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/scores-$b.jsonl" \
    --backend $b 2> "$WORK/scores-$b.log" || fail "reward score --backend $b: $(cat "$WORK/scores-$b.log")"
done
compare reward-eigen reward-cuda || fail "reward train: cuda and eigen disagree"
python3 - "$WORK/scores-eigen.jsonl" "$WORK/scores-cuda.jsonl" <<'PY' || fail "reward score: cuda and eigen disagree"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and a
for x, y in zip(a, b):
    assert x["line"] == y["line"], (x, y)
    for k in ("chosen_score", "rejected_score"):
        assert abs(x[k] - y[k]) <= 1e-4 * (abs(x[k]) + 1.0), (x["line"], k, x[k], y[k])
PY
# prefopt iterate with backend "cuda": one round (sample, judge by an awk command, pairs, 2 DPO
# steps, held-out score and KL to the initial model) on each backend. The samples keep eigen's
# tokens (log-probs 1e-4), so scores and pairs are eigen's byte for byte, the round's training
# metrics agree to 1e-4 relative and its KL estimate to 1e-3. Online mode (2 steps) judged by a
# reward model (the tiny GPT-2 classifier, character-level tokenizer, scored on the same backend)
# agrees as well.
mkdir -p "$WORK/rm"
cp "$DATA/reward/gpt2/config.json" "$DATA/reward/gpt2/model.safetensors" "$DATA/tokenizer/charlevel/tokenizer.json" "$WORK/rm/"
echo '{"eos_token": "<unk>"}' > "$WORK/rm/tokenizer_config.json"
head -6 "$DATA/cli/pairs_text.jsonl" | sed 's/", "chosen".*/"}/' > "$WORK/prompts.jsonl"
sed -n 7,9p "$DATA/cli/pairs_text.jsonl" | sed 's/", "chosen".*/"}/' > "$WORK/eval_prompts.jsonl"
cat > "$WORK/iterate.json" <<JSON
{"model": "$DATA/cli/gpt2_text", "data": {"tokenizer": "$DATA/tokenizer/gpt2/tokenizer.json"},
 "loss": {"type": ["sigmoid"], "beta": 0.1}, "optimizer": {"learning_rate": 0.002},
 "training": {"batch_size": 2, "max_steps": 2, "logging_steps": 1}, "output": {"tensorboard": false},
 "loop": {"rounds": 1, "prompts": "$WORK/prompts.jsonl", "eval_prompts": "$WORK/eval_prompts.jsonl",
          "samples_per_prompt": 4, "eval_samples_per_prompt": 2, "generation": {"max_new_tokens": 8, "temperature": 1.0},
          "judge": {"type": "command", "command": ["awk", "-f", "$SRC/tests/cli/iterate_judge.awk"], "timeout_s": 60},
          "pairs": {"strategy": "all_pairs", "margin": 1}, "online_steps": 2}}
JSON
for b in eigen cuda; do
  "$PREFOPT" iterate --config "$WORK/iterate.json" --set backend=$b --set output.dir="$WORK/iterate-$b" 2> "$WORK/iterate-$b.log" \
    || fail "iterate on $b: $(cat "$WORK/iterate-$b.log")"
  "$PREFOPT" iterate --config "$WORK/iterate.json" --set backend=$b --set loop.mode=online --set output.dir="$WORK/online-$b" \
    --set data.max_length=40 --set 'loop.judge={"type": "reward_model", "model": "'"$WORK/rm"'", "batch_size": 5}' \
    2> "$WORK/online-$b.log" || fail "iterate online on $b: $(cat "$WORK/online-$b.log")"
done
python3 - "$WORK/iterate-eigen/rounds/round-1" "$WORK/iterate-cuda/rounds/round-1" <<'PY' || fail "iterate: cuda and eigen disagree"
import json, sys
e, c = sys.argv[1], sys.argv[2]
a = [json.loads(l) for l in open(e + "/samples.jsonl")]
b = [json.loads(l) for l in open(c + "/samples.jsonl")]
assert len(a) == len(b) == 6
for x, y in zip(a, b):
    assert x["completion_input_ids"] == y["completion_input_ids"], ("samples differ", x["line"])
    assert all(abs(p - q) <= 1e-4 * (abs(p) + 1.0) for p, q in zip(x["logp"], y["logp"])), (x["logp"], y["logp"])
for f in ("scores.jsonl", "pairs.jsonl"):
    assert open(e + "/" + f).read() == open(c + "/" + f).read(), f
me, mc = json.load(open(e + "/metrics.json")), json.load(open(c + "/metrics.json"))
assert me["sample_score_mean"] == mc["sample_score_mean"], (me, mc)
assert abs(me["train_loss"] - mc["train_loss"]) <= 1e-4 * max(1.0, abs(me["train_loss"])), (me, mc)
assert abs(me["eval_kl_to_initial"] - mc["eval_kl_to_initial"]) <= 1e-3, (me, mc)
PY
compare iterate-eigen/rounds/round-1 iterate-cuda/rounds/round-1 || fail "iterate: the round's training differs between cuda and eigen"
compare online-eigen online-cuda || fail "iterate online: cuda and eigen disagree"
# prefopt demo --quick on the GPU: the whole pipeline (SFT, sampling, DPO/IPO/cDPO, iterative DPO
# with a reward model judge) runs on device memory; exit 0 means every DPO run raised the
# held-out reward over pi_ref (its samples differ from eigen's: fp32 sums in another order).
"$PREFOPT" demo --quick --backend cuda --out "$WORK/demo-cuda" > "$WORK/demo-cuda.log" 2>&1 \
  || fail "demo --backend cuda: $(tail -5 "$WORK/demo-cuda.log")"
grep -q '"backend": "cuda"' "$WORK/demo-cuda/results.json" || fail "demo results.json does not say backend cuda"
echo "cuda: ok"
