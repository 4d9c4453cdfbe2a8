#!/usr/bin/env bash
# backend: "cuda" from the command line. Everywhere: an unknown backend is an error naming the
# field, and where this build has no CUDA backend or the machine no GPU, `--set backend=cuda` is
# an error that says which (then the test reports itself skipped, 77). On a GPU: 3 steps of
# `prefopt train` on the cuda backend give eigen's metrics (loss, rewards, log-probs, grad_norm)
# to 1e-4 relative at every step, for full fine-tuning (GPT-2) and LoRA (Qwen2), and `prefopt eval`
# on the trained model agrees as well; `prefopt logps --backend cuda` gives eigen's log-probs in
# fp32 and in bf16; `prefopt demo --quick --backend cuda` runs its whole pipeline on the GPU.
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
# prefopt demo --quick on the GPU: the whole pipeline (SFT, sampling, DPO/IPO/cDPO, iterative DPO
# with a reward model judge) runs on device memory; exit 0 means every DPO run raised the
# held-out reward over pi_ref (its samples differ from eigen's: fp32 sums in another order).
"$PREFOPT" demo --quick --backend cuda --out "$WORK/demo-cuda" > "$WORK/demo-cuda.log" 2>&1 \
  || fail "demo --backend cuda: $(tail -5 "$WORK/demo-cuda.log")"
grep -q '"backend": "cuda"' "$WORK/demo-cuda/results.json" || fail "demo results.json does not say backend cuda"
echo "cuda: ok"
