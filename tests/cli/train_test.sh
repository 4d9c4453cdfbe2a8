#!/usr/bin/env bash
# prefopt train end to end: text pairs with the GPT-2 tokenizer, LoRA, held-out split, eval,
# metrics files, checkpoints, a PEFT adapter; then full fine-tuning with a precomputed, cached reference.
source "$(dirname "$0")/common.sh"
cat > "$WORK/run.json" <<JSON
{
  "model": "$DATA/cli/gpt2_text",
  "lora": {"r": 4, "alpha": 8, "target_modules": ["c_attn"], "use_rslora": false},
  "data": {"train": "$DATA/cli/pairs_text.jsonl", "tokenizer": "$DATA/tokenizer/gpt2/tokenizer.json",
           "eval_fraction": 0.25, "max_length": 64},
  "optimizer": {"learning_rate": 0.01},
  "training": {"num_train_epochs": 2, "batch_size": 4, "logging_steps": 2, "save_steps": 4},
  "output": {"dir": "$WORK/lora"}
}
JSON
"$PREFOPT" train --config "$WORK/run.json" 2> "$WORK/lora.log" || { cat "$WORK/lora.log"; fail "training failed"; }
grep -q "pairs_text.jsonl:22" "$WORK/lora.log" || fail "the malformed line 22 is not reported"
for f in metrics.jsonl metrics.csv final/adapter_model.safetensors final/adapter_config.json checkpoint-18/trainer_state.json \
         checkpoint-18/adapter_model.safetensors checkpoint-18/optimizer.safetensors; do
  [ -e "$WORK/lora/$f" ] || fail "missing $f"
done
[ "$(ls -d "$WORK/lora"/checkpoint-* | wc -l)" -eq 3 ] || fail "save_total_limit 3 not kept: $(ls "$WORK/lora")"
ls "$WORK/lora/runs"/events.out.tfevents.* > /dev/null || fail "no TensorBoard event file"
grep -q '"eval_loss"' "$WORK/lora/metrics.jsonl" || fail "no eval_loss logged"
grep -q '"rewards/accuracies"' "$WORK/lora/metrics.jsonl" || fail "no rewards/accuracies logged"
"$PREFOPT" eval --config "$WORK/run.json" --set adapter="$WORK/lora/final" --set lora=null \
  --data "$DATA/cli/pairs_text.jsonl" > "$WORK/eval.json" 2>/dev/null || fail "eval failed"
grep -q '"eval_loss"' "$WORK/eval.json" || fail "eval printed no eval_loss"

# full fine-tuning, pre-tokenized data, precomputed reference (cached: the second run reuses it)
for run in 1 2; do
  "$PREFOPT" train --set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
    --set reference.strategy=precomputed --set training.max_steps=3 --set training.batch_size=4 \
    --set output.dir="$WORK/full$run" --set reference.cache_dir="$WORK/cache" --set output.tensorboard=false 2> "$WORK/full$run.log" \
    || { cat "$WORK/full$run.log"; fail "full run $run failed"; }
done
[ "$(ls "$WORK/cache" | wc -l)" -eq 1 ] || fail "expected one reference cache file"
cmp "$WORK/full1/final/model.safetensors" "$WORK/full2/final/model.safetensors" || fail "cached reference changed the result"
echo "train: ok"

# A saved model folder carries the run's tokenizer files, so the next command needs no --tokenizer.
for f in tokenizer.json tokenizer_config.json; do [ -e "$WORK/lora/final/$f" ] || fail "the adapter folder lacks $f"; done
[ -e "$WORK/full1/final/generation_config.json" ] || fail "final/ lacks the model's generation_config.json"
"$PREFOPT" train --set model="$DATA/cli/gpt2_text" --set data.train="$DATA/cli/pairs_text.jsonl" \
  --set data.tokenizer="$DATA/tokenizer/gpt2/tokenizer.json" --set data.max_length=64 --set training.max_steps=1 \
  --set training.batch_size=4 --set output.dir="$WORK/text-full" --set output.tensorboard=false 2> "$WORK/text-full.log" \
  || { cat "$WORK/text-full.log"; fail "full fine-tuning on text pairs failed"; }
for f in tokenizer.json tokenizer_config.json; do [ -e "$WORK/text-full/final/$f" ] || fail "final/ lacks $f"; done
"$PREFOPT" logps --model "$WORK/text-full/final" --data "$DATA/cli/pairs_text.jsonl" --out "$WORK/text-full.jsonl" \
  2> "$WORK/text-logps.log" || { cat "$WORK/text-logps.log"; fail "logps on final/ without --tokenizer failed"; }
grep -q '"chosen_logps"' "$WORK/text-full.jsonl" || fail "logps on final/ wrote no chosen_logps"
echo "train (complete output folders): ok"

# LoRA dropout: off under TRL's default training.disable_dropout = true (the same run as
# lora.dropout 0), on when it is false; saved in adapter_config.json as PEFT writes it.
for run in "0 true" "0.3 true" "0.3 false"; do
  set -- $run
  "$PREFOPT" train --set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" --set lora.r=4 \
    --set lora.dropout="$1" --set training.disable_dropout="$2" --set training.max_steps=2 --set training.batch_size=4 \
    --set optimizer.learning_rate=0.01 --set output.dir="$WORK/drop-$1-$2" --set output.tensorboard=false 2> "$WORK/drop.log" \
    || { cat "$WORK/drop.log"; fail "LoRA dropout run $run failed"; }
done
grep -q "lora_dropout 0.3)" "$WORK/drop.log" || fail "the log does not say that LoRA dropout is on: $(head -3 "$WORK/drop.log")"
grep -q '"lora_dropout": 0.3' "$WORK/drop-0.3-false/final/adapter_config.json" || fail "adapter_config.json lacks lora_dropout 0.3"
cmp -s "$WORK/drop-0-true/final/adapter_model.safetensors" "$WORK/drop-0.3-true/final/adapter_model.safetensors" \
  || fail "disable_dropout = true still dropped"
cmp -s "$WORK/drop-0-true/final/adapter_model.safetensors" "$WORK/drop-0.3-false/final/adapter_model.safetensors" \
  && fail "lora.dropout 0.3 with disable_dropout = false changed nothing"
expect_fail "lora.dropout" "$PREFOPT" train --set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
  --set lora.r=4 --set lora.dropout=1 --set output.dir="$WORK/bad"
echo "train (LoRA dropout): ok"

# Qwen2 (Llama family) with a synced TR-DPO reference, saved in checkpoints; early stopping
"$PREFOPT" train --set model="$DATA/models/qwen2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
  --set reference.strategy=synced --set reference.sync_steps=2 --set reference.mixup_alpha=0.5 \
  --set training.max_steps=4 --set training.batch_size=4 --set training.save_steps=2 \
  --set output.dir="$WORK/qwen" --set output.tensorboard=false 2> "$WORK/qwen.log" || { cat "$WORK/qwen.log"; fail "qwen2 synced run failed"; }
[ -f "$WORK/qwen/checkpoint-4/reference/model.safetensors" ] || fail "the synced reference is not in the checkpoint"
"$PREFOPT" train --set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" --set data.eval_fraction=0.3 \
  --set training.num_train_epochs=20 --set training.batch_size=4 --set training.eval_steps=1 --set optimizer.learning_rate=0.01 \
  --set training.early_stopping_metric=eval_loss --set training.greater_is_better=true --set training.early_stopping_patience=2 \
  --set output.dir="$WORK/early" --set output.tensorboard=false 2> "$WORK/early.log" || { cat "$WORK/early.log"; fail "early stopping run failed"; }
grep -q "stopped early" "$WORK/early.log" || fail "early stopping did not stop: $(tail -3 "$WORK/early.log")"
expect_fail "eval_nothing" "$PREFOPT" train --set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
  --set data.eval_fraction=0.3 --set training.eval_steps=1 --set training.early_stopping_metric=eval_nothing --set output.dir="$WORK/bad"
echo "train (more): ok"

# KTO: pairs unpaired as TRL does (chosen desirable, rejected not), LoRA, adapters-off reference
"$PREFOPT" train --set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
  --set 'loss.type=["kto"]' --set loss.desirable_weight=1.0 --set loss.undesirable_weight=1.5 \
  --set lora.r=4 --set training.max_steps=4 --set training.batch_size=4 --set data.eval_fraction=0.25 --set training.eval_steps=2 \
  --set optimizer.learning_rate=0.01 --set output.dir="$WORK/kto" --set output.tensorboard=false 2> "$WORK/kto.log" \
  || { cat "$WORK/kto.log"; fail "KTO run failed"; }
grep -q '"kl"' "$WORK/kto/metrics.jsonl" || fail "KTO logged no kl"
grep -q '"eval_loss"' "$WORK/kto/metrics.jsonl" || fail "KTO logged no eval_loss"
[ -f "$WORK/kto/final/adapter_model.safetensors" ] || fail "KTO saved no adapter"
expect_fail "unpaired" "$PREFOPT" train --set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" \
  --set 'loss.type=["kto","sigmoid"]'
echo "train (kto): ok"
