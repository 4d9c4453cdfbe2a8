#!/usr/bin/env bash
# prefopt train: --print-config, and configuration errors that name the key.
source "$(dirname "$0")/common.sh"
"$PREFOPT" train --print-config > "$WORK/defaults.json"
grep -q '"beta": 0.1' "$WORK/defaults.json" || fail "defaults lack loss.beta 0.1"
grep -q '"learning_rate": 1e-06' "$WORK/defaults.json" || fail "defaults lack TRL's learning rate"
echo '{"model": "m", "data": {"train": "t.jsonl"}, "loss": {"bta": 0.1}}' > "$WORK/typo.json"
expect_fail "loss.bta: unknown option" "$PREFOPT" train --config "$WORK/typo.json"
expect_fail "loss.beta: expected a number" "$PREFOPT" train --set model=m --set data.train=t --set 'loss.beta="high"'
expect_fail "field 'loss.beta'" "$PREFOPT" train --set model=m --set data.train=t --set loss.beta=0
expect_fail "field 'model'" "$PREFOPT" train --set data.train=t
expect_fail "label_smoothing" "$PREFOPT" train --set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
  --set 'loss.type=["robust"]' --set loss.label_smoothing=0.5
expect_fail "unknown loss 'dpo'" "$PREFOPT" train --set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
  --set 'loss.type=["dpo"]'
echo '{"model": "m", "training": {"batch_size": 1e400}}' > "$WORK/overflow.json"  # found by fuzzing
expect_fail "overflow.json: holds a number out of the range of a double" "$PREFOPT" train --config "$WORK/overflow.json"
# training.precision: fp32 (default) or bf16; bf16 trains on eigen (emulated) and logs the same metrics.
grep -q '"precision": "fp32"' "$WORK/defaults.json" || fail "defaults lack training.precision fp32"
expect_fail "field 'training.precision': must be fp32 or bf16" "$PREFOPT" train --set model=m --set data.train=t \
  --set training.precision=fp16
"$PREFOPT" train --set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
  --set training.precision=bf16 --set training.max_steps=2 --set training.batch_size=2 --set output.dir="$WORK/bf16" \
  --set output.tensorboard=false 2> "$WORK/bf16.log" || { cat "$WORK/bf16.log"; fail "a bf16 run on eigen failed"; }
test -s "$WORK/bf16/metrics.jsonl" || fail "the bf16 run wrote no metrics"
expect_fail "--frobnicate: unknown option" "$PREFOPT" train --frobnicate
echo "config: ok"
