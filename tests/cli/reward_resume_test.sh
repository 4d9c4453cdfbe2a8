#!/usr/bin/env bash
# prefopt reward train checkpoints and resumes as prefopt train does: a run killed while it writes a
# checkpoint and resumed ends with byte-identical weights (full model; LoRA adapter + score head and
# the merged classifier) and identical metrics files to the uninterrupted run. Checkpoints hold the
# classifier or the adapter with its score head, both optimizer groups and trainer_state.json;
# save_total_limit keeps the newest; a resumed finished run trains nothing and writes the same final/.
source "$(dirname "$0")/common.sh"
cat > "$WORK/run.json" <<JSON
{
  "model": "$DATA/models/gpt2",
  "data": {"train": "$DATA/cli/pairs_tokenized.jsonl"},
  "optimizer": {"learning_rate": 0.003},
  "training": {"max_steps": 8, "batch_size": 3, "save_steps": 2, "save_total_limit": 2, "logging_steps": 1},
  "output": {"tensorboard": false}
}
JSON
train() { "$PREFOPT" reward train --config "$WORK/run.json" "$@"; }

# kill -9 while checkpoint-<step> of output dir $1 is being written (the pause sits between its files and its state)
kill_at() {
  local dir=$1 step=$2; shift 2
  # the program itself in the background (not the train function: kill -9 would hit a subshell only)
  PREFOPT_TEST_CHECKPOINT_PAUSE=30 PREFOPT_TEST_CHECKPOINT_PAUSE_STEP=$step \
    "$PREFOPT" reward train --config "$WORK/run.json" --set output.dir="$dir" "$@" 2> "$dir.killed.log" &
  local pid=$!
  for _ in $(seq 1 1200); do
    [ -d "$dir/checkpoint-$step.tmp" ] && break
    sleep 0.1
  done
  [ -d "$dir/checkpoint-$step.tmp" ] || { kill -9 $pid; cat "$dir.killed.log"; fail "$dir/checkpoint-$step.tmp never appeared"; }
  kill -9 $pid
  wait $pid 2>/dev/null || true
  [ ! -e "$dir/checkpoint-$step" ] || fail "a half-written checkpoint was published in $dir"
}

for kind in full lora; do
  extra=()
  [ $kind = lora ] && extra=(--set lora='{"r": 4, "alpha": 8, "target_modules": ["c_attn"]}')
  train "${extra[@]}" --set output.dir="$WORK/$kind-straight" 2> "$WORK/$kind-straight.log" \
    || { cat "$WORK/$kind-straight.log"; fail "$kind: the uninterrupted run failed"; }
  [ "$(ls -d "$WORK/$kind-straight"/checkpoint-* | wc -l)" -eq 2 ] || fail "$kind: save_total_limit=2 left $(ls "$WORK/$kind-straight")"
  ck="$WORK/$kind-straight/checkpoint-8"
  grep -q '"finished": true' "$ck/trainer_state.json" || fail "$kind: the last checkpoint is not marked finished"
  python3 - "$ck" "$kind" <<'PY'
import json, struct, sys
ck, kind = sys.argv[1], sys.argv[2]
def names(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return set(json.loads(f.read(n))) - {"__metadata__"}
opt = names(ck + "/optimizer.safetensors")
assert {"body.exp_avg", "body.exp_avg_sq", "score.exp_avg", "score.exp_avg_sq"} <= opt, opt
if kind == "full":
    assert "score.weight" in names(ck + "/model.safetensors")
    assert json.load(open(ck + "/config.json"))["architectures"] == ["GPT2ForSequenceClassification"]
else:
    assert "base_model.model.score.weight" in names(ck + "/adapter_model.safetensors")
    assert json.load(open(ck + "/adapter_config.json"))["task_type"] == "SEQ_CLS"
st = json.load(open(ck + "/trainer_state.json"))
assert st["global_step"] == 8 and st["optimizer_steps"] == 8, st
assert len(st["loss_state"]) == 1 and st["loss_state"][0] > 0, st   # num_tokens so far
rows = [json.loads(l) for l in open(ck + "/../metrics.jsonl")]
assert rows[-1]["num_tokens"] == st["loss_state"][0], (rows[-1], st)
PY

  # killed before any checkpoint is complete: the resumed run starts over
  kill_at "$WORK/$kind-early" 2 "${extra[@]}"
  train "${extra[@]}" --set output.dir="$WORK/$kind-early" --set training.resume=true 2> "$WORK/$kind-early.log" \
    || { cat "$WORK/$kind-early.log"; fail "$kind: resume without a checkpoint failed"; }
  [ ! -e "$WORK/$kind-early/checkpoint-2.tmp" ] || fail "$kind: stale .tmp not removed"
  # killed while checkpoint-6 is written: resumes from checkpoint-4
  kill_at "$WORK/$kind-late" 6 "${extra[@]}"
  [ -f "$WORK/$kind-late/checkpoint-4/trainer_state.json" ] || fail "$kind: checkpoint-4 lost"
  train "${extra[@]}" --set output.dir="$WORK/$kind-late" --set training.resume=true 2> "$WORK/$kind-late.log" \
    || { cat "$WORK/$kind-late.log"; fail "$kind: resume failed"; }
  grep -q "resumed from .*checkpoint-4" "$WORK/$kind-late.log" || fail "$kind: did not resume from checkpoint-4: $(cat "$WORK/$kind-late.log")"

  if [ $kind = full ]; then files=(final/model.safetensors); else files=(final/adapter_model.safetensors merged/model.safetensors); fi
  for d in early late; do
    for f in "${files[@]}" metrics.jsonl metrics.csv; do
      cmp "$WORK/$kind-straight/$f" "$WORK/$kind-$d/$f" || fail "$kind-$d: $f differs from the uninterrupted run's"
    done
  done

  # a finished run resumed: nothing trained, the same final model
  cp -r "$WORK/$kind-straight" "$WORK/$kind-again"
  train "${extra[@]}" --set output.dir="$WORK/$kind-again" --set training.resume=true 2> "$WORK/$kind-again.log" \
    || { cat "$WORK/$kind-again.log"; fail "$kind: resuming a finished run failed"; }
  grep -q "nothing is trained" "$WORK/$kind-again.log" || fail "$kind: a finished run trained again: $(cat "$WORK/$kind-again.log")"
  cmp "$WORK/$kind-straight/${files[0]}" "$WORK/$kind-again/${files[0]}" || fail "$kind: final/ changed on resuming a finished run"
done

# a fresh run refuses a folder holding another run's checkpoints
expect_fail "checkpoint" train --set output.dir="$WORK/full-straight"
echo "reward resume: ok"
