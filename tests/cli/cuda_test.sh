#!/usr/bin/env bash
# backend: "cuda" from the command line. Everywhere: an unknown backend is an error naming the
# field, and where this build has no CUDA backend or the machine no GPU, `--set backend=cuda` is
# an error that says which (then the test reports itself skipped, 77). On a GPU: 3 steps of
# `prefopt train` on the cuda backend give eigen's metrics (loss, rewards, log-probs, grad_norm)
# to 1e-4 relative at every step, for full fine-tuning (GPT-2) and LoRA (Qwen2), and `prefopt eval`
# on the trained model agrees as well.
source "$(dirname "$0")/common.sh"
run() {  # run <train|eval> <output dir> <model> [--set ...]
  local cmd="$1" out="$2" model="$3"
  shift 3
  "$PREFOPT" "$cmd" --set model="$DATA/models/$model" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
    --set training.max_steps=3 --set training.batch_size=2 --set training.logging_steps=1 \
    --set optimizer.learning_rate=0.01 --set output.dir="$WORK/$out" --set output.tensorboard=false "$@"
}
expect_fail "field 'backend': must be eigen (CPU) or cuda" run train bad gpt2 --set backend=tpu
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
echo "cuda: ok"
