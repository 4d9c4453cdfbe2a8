#!/usr/bin/env bash
# training.gradient_checkpointing: the same weights as the run without it (bit-equal: cmp of the
# saved files), for full fine-tuning (GPT-2) and LoRA with adapter dropout on (Qwen2); the log and
# the memory estimate say it is on.
source "$(dirname "$0")/common.sh"
train() {  # train <output dir> <model> [--set ...]
  local out="$1" model="$2"
  shift 2
  "$PREFOPT" train --set model="$DATA/models/$model" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
    --set training.max_steps=3 --set training.batch_size=2 --set training.gradient_accumulation_steps=2 \
    --set optimizer.learning_rate=0.01 --set output.dir="$WORK/$out" --set output.tensorboard=false "$@" 2> "$WORK/$out.log" \
    || { cat "$WORK/$out.log"; fail "run $out failed"; }
}
train full-off gpt2
train full-on gpt2 --set training.gradient_checkpointing=true
grep -q "gradient checkpointing" "$WORK/full-on.log" || fail "the log does not say checkpointing is on: $(head -3 "$WORK/full-on.log")"
grep -q "gradient checkpointing" "$WORK/full-off.log" && fail "the log says checkpointing is on in a run without it"
cmp "$WORK/full-off/final/model.safetensors" "$WORK/full-on/final/model.safetensors" || fail "checkpointing changed the weights (GPT-2)"
# The estimate printed before the run falls with checkpointing (its total, in KiB).
total_kib() {
  sed -n 's/.*needs about \([0-9.]*\) \([KMG]iB\).*/\1 \2/p' "$WORK/$1.log" | head -1 |
    awk '{ f = $2 == "GiB" ? 1048576 : $2 == "MiB" ? 1024 : 1; print $1 * f }'
}
awk -v a="$(total_kib full-on)" -v b="$(total_kib full-off)" 'BEGIN { exit !(a > 0 && a < b) }' \
  || fail "the memory estimate did not fall: $(total_kib full-on) KiB vs $(total_kib full-off) KiB"
for run in off on; do
  flag=false
  [ "$run" = on ] && flag=true
  train "lora-$run" qwen2 --set lora.r=4 --set lora.dropout=0.3 --set training.disable_dropout=false \
    --set training.gradient_checkpointing=$flag
done
cmp "$WORK/lora-off/final/adapter_model.safetensors" "$WORK/lora-on/final/adapter_model.safetensors" \
  || fail "checkpointing changed the adapters (Qwen2, LoRA dropout on)"
echo "checkpointing: ok"
