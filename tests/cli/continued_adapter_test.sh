#!/usr/bin/env bash
# Training continued from a saved LoRA adapter: reference.strategy auto picks initial_adapter (TRL's
# frozen copy of the adapter), so rewards/chosen and rewards/rejected are exactly 0 at step 1;
# adapter_disabled (the base) gives non-zero rewards there, since the adapter is no longer zero.
source "$(dirname "$0")/common.sh"
common=(--set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" --set training.batch_size=4
        --set training.logging_steps=1 --set optimizer.learning_rate=0.05 --set output.tensorboard=false)
"$PREFOPT" train "${common[@]}" --set lora.r=4 --set training.max_steps=3 --set output.dir="$WORK/first" 2> "$WORK/first.log" \
  || { cat "$WORK/first.log"; fail "the first LoRA run failed"; }
first_step() { grep -m1 '"step": *1[,}]' "$1" || grep -m1 '"step":1[,}]' "$1"; }
reward() {  # reward FILE NAME: the value of NAME on step 1's line
  first_step "$1" | tr ',{}' '\n\n\n' | grep "\"$2\"" | head -1 | sed 's/.*: *//'
}
for strategy in auto adapter_disabled; do
  "$PREFOPT" train "${common[@]}" --set adapter="$WORK/first/final" --set training.max_steps=2 \
    --set reference.strategy=$strategy --set output.dir="$WORK/$strategy" 2> "$WORK/$strategy.log" \
    || { cat "$WORK/$strategy.log"; fail "continuing the adapter ($strategy) failed"; }
done
grep -q "reference initial_adapter" "$WORK/auto.log" || fail "auto did not choose initial_adapter: $(grep reference "$WORK/auto.log")"
for m in rewards/chosen rewards/rejected; do
  v=$(reward "$WORK/auto/metrics.jsonl" "$m")
  [ -n "$v" ] || fail "no $m on step 1: $(head -2 "$WORK/auto/metrics.jsonl")"
  awk -v v="$v" 'BEGIN { exit !(v + 0 == 0) }' || fail "$m is $v at step 1 with initial_adapter, not 0"
  w=$(reward "$WORK/adapter_disabled/metrics.jsonl" "$m")
  awk -v v="$w" 'BEGIN { exit !(v + 0 != 0) }' || fail "$m is $w at step 1 with adapter_disabled: the test cannot tell the strategies apart"
done
echo "continued_adapter: ok"
