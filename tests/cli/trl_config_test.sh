#!/usr/bin/env bash
# prefopt train on a TRL config (DPOConfig names, YAML as `trl dpo --config` reads it) on the tiny
# GPT-2: it trains, it is the same run as the prefopt config it maps to (bit for bit), and its
# errors name TRL's key and line.
source "$(dirname "$0")/common.sh"
cat > "$WORK/dpo.yaml" <<YAML
# TRL DPOConfig + ModelConfig + ScriptArguments
model_name_or_path: $DATA/models/gpt2
dataset_name: $DATA/cli/pairs_tokenized.jsonl
per_device_train_batch_size: 4
learning_rate: 1.0e-2
max_steps: 2
logging_steps: 1
loss_type: sigmoid
beta: 0.1
max_length: 64
truncation_mode: keep_start
use_peft: true
lora_r: 4
lora_target_modules: [c_attn]
bf16: false
report_to: none
save_strategy: "no"
output_dir: $WORK/trl
YAML
"$PREFOPT" train --config "$WORK/dpo.yaml" --print-config > "$WORK/printed.json"
grep -q '"learning_rate": 0.01' "$WORK/printed.json" || fail "--print-config lacks the mapped learning rate"
grep -q '"truncation_mode": "keep_start"' "$WORK/printed.json" || fail "--print-config lacks truncation_mode keep_start"
"$PREFOPT" train --config "$WORK/dpo.yaml" --set output.tensorboard=false 2> "$WORK/trl.log" || { cat "$WORK/trl.log"; fail "the TRL config did not train"; }
for f in metrics.jsonl final/adapter_model.safetensors final/adapter_config.json; do
  [ -e "$WORK/trl/$f" ] || fail "missing $f"
done
[ "$(grep -c '"loss"' "$WORK/trl/metrics.jsonl")" -ge 2 ] || fail "expected a loss line per step (logging_steps 1)"
[ "$(ls -d "$WORK/trl"/checkpoint-* | wc -l)" -eq 1 ] || fail "save_strategy \"no\": expected the end's checkpoint alone"

# The same run in prefopt's names gives the same adapter, bit for bit.
cat > "$WORK/run.json" <<JSON
{
  "model": "$DATA/models/gpt2",
  "lora": {"r": 4, "alpha": 32, "dropout": 0.05, "target_modules": ["c_attn"]},
  "data": {"train": "$DATA/cli/pairs_tokenized.jsonl", "max_length": 64, "truncation_mode": "keep_start"},
  "optimizer": {"learning_rate": 0.01},
  "training": {"max_steps": 2, "batch_size": 4, "logging_steps": 1, "save_steps": 0, "num_train_epochs": 3},
  "output": {"dir": "$WORK/prefopt", "tensorboard": false}
}
JSON
"$PREFOPT" train --config "$WORK/run.json" 2> "$WORK/prefopt.log" || { cat "$WORK/prefopt.log"; fail "the prefopt config did not train"; }
cmp "$WORK/trl/final/adapter_model.safetensors" "$WORK/prefopt/final/adapter_model.safetensors" \
  || fail "the TRL config and its prefopt equivalent trained different adapters"

# The run says which truncation runs; keep_start drops (and counts) pairs whose prompt fills max_length.
grep -q "truncation keep_start (TRL's default" "$WORK/trl.log" || fail "the log does not name the truncation mode"
"$PREFOPT" train --config "$WORK/dpo.yaml" --set data.max_length=8 --set training.max_steps=1 --set output.dir="$WORK/short" \
  --set output.tensorboard=false 2> "$WORK/short.log" || { cat "$WORK/short.log"; fail "the keep_start run failed"; }
grep -q "dropped as TRL drops them: the prompt fills max_length" "$WORK/short.log" || fail "no dropped pairs reported: $(cat "$WORK/short.log")"

# Errors name TRL's key, with the YAML line.
printf 'beta: 0.1\nlearing_rate: 1e-6\n' > "$WORK/typo.yaml"
expect_fail "typo.yaml:2: field 'learing_rate': is not a TRL" "$PREFOPT" train --config "$WORK/typo.yaml"
printf 'beta: 0.1\nbf16: 2\n' > "$WORK/bf16.yaml"
expect_fail "bf16.yaml:2: field 'bf16': expected true or false" "$PREFOPT" train --config "$WORK/bf16.yaml"
printf 'learning_rate: 1e-6\noptimizer:\n  type: sgd\n' > "$WORK/mixed.yaml"
expect_fail "mixed.yaml:2: field 'optimizer': is one of prefopt's sections" "$PREFOPT" train --config "$WORK/mixed.yaml"
printf 'beta: [0.1\n' > "$WORK/broken.yaml"
expect_fail "broken.yaml:2: not valid YAML" "$PREFOPT" train --config "$WORK/broken.yaml"
# prefopt's own sections in YAML: errors carry the line too
printf 'model: m\noptimizer:\n  learning_rate: fast\n' > "$WORK/sections.yaml"
expect_fail "sections.yaml:3: field 'optimizer.learning_rate'" "$PREFOPT" train --config "$WORK/sections.yaml"
echo "trl_config: ok"
