#!/usr/bin/env bash
# prefopt reward train / score: a Llama causal LM gets a score head and learns the pairs (metrics in
# TRL RewardTrainer's names, a LlamaForSequenceClassification checkpoint); a margin column and
# center_rewards_coefficient; LoRA on GPT-2 (a PEFT adapter with the head, and merged); scoring; errors that name the problem.
source "$(dirname "$0")/common.sh"
python3 - "$DATA/cli/pairs_tokenized.jsonl" "$WORK/margin.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    for i, line in enumerate(f):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            rec["margin"] = 0.25 * (i % 3)
        out.write(json.dumps(rec) + "\n")
PY
cat > "$WORK/run.json" <<JSON
{
  "model": "$DATA/models/llama",
  "data": {"train": "$DATA/cli/pairs_tokenized.jsonl", "eval": "$DATA/cli/pairs_tokenized.jsonl"},
  "optimizer": {"learning_rate": 0.003},
  "training": {"num_train_epochs": 4, "batch_size": 4, "gradient_accumulation_steps": 2, "logging_steps": 1, "eval_steps": 0},
  "output": {"dir": "$WORK/full"},
  "reward": {"center_rewards_coefficient": null}
}
JSON
"$PREFOPT" reward train --config "$WORK/run.json" 2> "$WORK/full.log" || { cat "$WORK/full.log"; fail "reward training failed"; }
grep -q "new score head" "$WORK/full.log" || fail "a causal LM should get a new head: $(cat "$WORK/full.log")"
for k in loss grad_norm learning_rate num_tokens min_reward mean_reward max_reward accuracy margin epoch eval_loss eval_accuracy eval_margin; do
  grep -q "\"$k\"" "$WORK/full/metrics.jsonl" || fail "metrics.jsonl lacks $k"
done
python3 - "$WORK/full" <<'PY'
import json, sys
d = sys.argv[1]
cfg = json.load(open(d + "/final/config.json"))
assert cfg["architectures"] == ["LlamaForSequenceClassification"], cfg["architectures"]
assert len(cfg["id2label"]) == 1
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
ev = [r for r in rows if "eval_loss" in r][-1]
assert ev["eval_loss"] < 0.6, ev    # ln 2 = 0.693 at the start: the pairs were learned
assert ev["eval_accuracy"] > 0.7, ev
PY

# scoring with the trained model: one line per good pair, chosen above rejected on most
"$PREFOPT" reward score --model "$WORK/full/final" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/scores.jsonl" 2> "$WORK/score.log" \
  || { cat "$WORK/score.log"; fail "scoring failed"; }
[ "$(wc -l < "$WORK/scores.jsonl")" -eq 23 ] || fail "expected 23 score lines (line 11 is outside the Llama vocabulary, 12 malformed), got $(wc -l < "$WORK/scores.jsonl")"
python3 - "$WORK/scores.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert sum(r["chosen_score"] > r["rejected_score"] for r in rows) > 0.7 * len(rows)
PY

# Backends and precision: score takes --backend/--precision (as prefopt logps), train reads
# backend/training.precision from run.json (as prefopt train). --backend eigen is the default's
# output byte for byte; bf16 (matrix-product and attention inputs rounded to bf16, sums in fp32)
# gives scores, and a first training loss, near fp32's and not equal to them.
score() { "$PREFOPT" reward score --model "$WORK/full/final" --data "$DATA/cli/pairs_tokenized.jsonl" "$@"; }
score --out "$WORK/scores_eigen.jsonl" --backend eigen 2>/dev/null || fail "score --backend eigen failed"
cmp -s "$WORK/scores.jsonl" "$WORK/scores_eigen.jsonl" || fail "score --backend eigen differs from the default"
score --out "$WORK/scores16.jsonl" --precision bf16 2>/dev/null || fail "score --precision bf16 failed"
"$PREFOPT" reward train --config "$WORK/run.json" --set training.precision=bf16 --set training.max_steps=1 \
  --set output.dir="$WORK/full16" 2> "$WORK/full16.log" || { cat "$WORK/full16.log"; fail "bf16 reward training failed"; }
python3 - "$WORK/scores.jsonl" "$WORK/scores16.jsonl" "$WORK/full/metrics.jsonl" "$WORK/full16/metrics.jsonl" <<'PY' \
  || fail "bf16 scores and loss should be near fp32's and not equal"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and [x["line"] for x in a] == [y["line"] for y in b]
worst = max(abs(x[k] - y[k]) / (abs(x[k]) + 1.0) for x, y in zip(a, b) for k in ("chosen_score", "rejected_score"))
l32, l16 = (json.loads(open(f).readline())["loss"] for f in sys.argv[3:5])
print(f"bf16 vs fp32: scores' largest |difference| / (|fp32| + 1) {worst:.2e}; first loss {l16} vs {l32}")
assert 0.0 < worst < 1e-2, worst
assert 0.0 < abs(l16 - l32) < 1e-2 * (abs(l32) + 1.0), (l16, l32)
PY
expect_fail "--precision" score --out "$WORK/x.jsonl" --precision fp8
expect_fail "--backend: 'tpu' is not one of eigen" score --out "$WORK/x.jsonl" --backend tpu
expect_fail "training.precision" "$PREFOPT" reward train --config "$WORK/run.json" --set training.precision=fp8 --set output.dir="$WORK/x"
expect_fail "field 'backend': must be eigen (CPU) or cuda" "$PREFOPT" reward train --config "$WORK/run.json" --set backend=tpu --set output.dir="$WORK/x"
# backend cuda here: cuda_test.sh compares the GPU's scores and training with eigen's; without a GPU
# or without the CUDA backend it is an error that says which.
if ! out=$(score --out "$WORK/cuda.jsonl" --backend cuda 2>&1); then
  grep -qE "no CUDA device is visible|built without the CUDA backend" <<<"$out" || fail "score --backend cuda: $out"
  out=$("$PREFOPT" reward train --config "$WORK/run.json" --set backend=cuda --set output.dir="$WORK/cuda" 2>&1) && fail "reward train on cuda ran here"
  grep -qE "field 'backend': cuda: (no CUDA device is visible|this prefopt was built without)" <<<"$out" || fail "reward train backend=cuda: $out"
fi

# margins and centering; LoRA on GPT-2 (head and adapters train: final/ the PEFT adapter, merged/ the classifier)
"$PREFOPT" reward train --config "$WORK/run.json" --set data.train="$WORK/margin.jsonl" --set data.eval=null \
  --set reward.center_rewards_coefficient=0.01 --set training.max_steps=2 --set output.dir="$WORK/margin" 2> "$WORK/margin.log" \
  || { cat "$WORK/margin.log"; fail "margin run failed"; }
"$PREFOPT" reward train --config "$WORK/run.json" --set model="$DATA/models/gpt2" --set data.eval=null \
  --set lora='{"r": 4, "alpha": 8, "target_modules": ["c_attn"]}' --set training.max_steps=2 --set output.dir="$WORK/lora" \
  2> "$WORK/lora.log" || { cat "$WORK/lora.log"; fail "LoRA run failed"; }
python3 - "$WORK/full/metrics.jsonl" "$WORK/margin/metrics.jsonl" <<'PY'
import json, sys
first = [json.loads(open(f).readline())["loss"] for f in sys.argv[1:]]
assert abs(first[0] - first[1]) > 1e-3, first   # same batches; margins and centering change the loss
PY
grep -q "+ LoRA" "$WORK/lora.log" || fail "LoRA not reported"
grep -q GPT2ForSequenceClassification "$WORK/lora/merged/config.json" || fail "GPT-2 classifier config"
grep -q '"SEQ_CLS"' "$WORK/lora/final/adapter_config.json" || fail "the adapter is not a SEQ_CLS PEFT adapter"

# text pairs (TRL's standard format) through the GPT-2 tokenizer: the model's config has no pad token,
# so the tokenizer's (EOS) is used and saved, as TRL sets model.config.pad_token_id
"$PREFOPT" reward train --config "$WORK/run.json" --set model="$DATA/cli/gpt2_text" --set data.train="$DATA/cli/pairs_text.jsonl" \
  --set data.eval=null --set data.tokenizer="$DATA/tokenizer/gpt2/tokenizer.json" --set data.max_length=64 \
  --set training.max_steps=2 --set output.dir="$WORK/text" 2> "$WORK/text.log" || { cat "$WORK/text.log"; fail "text run failed"; }
grep -q '"pad_token_id": 2000' "$WORK/text/final/config.json" || fail "the tokenizer's pad token is not saved"

expect_fail "not a reward model" "$PREFOPT" reward score --model "$DATA/models/llama" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/x.jsonl"
expect_fail "reward.bogus" "$PREFOPT" reward train --config <(sed 's/"center_rewards_coefficient"/"bogus"/' "$WORK/run.json")
expect_fail "expected 'train' or 'score'" "$PREFOPT" reward fit
echo "reward: ok"
