#!/usr/bin/env bash
# Killing training while it writes a checkpoint never leaves a checkpoint that loads wrong, and the
# resumed run's numbers equal an uninterrupted run's.
source "$(dirname "$0")/common.sh"
args=(--set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl"
      --set training.max_steps=8 --set training.batch_size=3 --set training.save_steps=2 --set training.logging_steps=1
      --set optimizer.learning_rate=0.001 --set 'loss.type=["sigmoid","sft"]' --set output.tensorboard=false)
"$PREFOPT" train "${args[@]}" --set output.dir="$WORK/straight" 2> "$WORK/straight.log" || { cat "$WORK/straight.log"; fail "run failed"; }

# kill -9 while checkpoint-6 is being written (the pause sits between its files and its state)
PREFOPT_TEST_CHECKPOINT_PAUSE=30 "$PREFOPT" train "${args[@]}" --set output.dir="$WORK/killed" 2> "$WORK/killed.log" &
pid=$!
for _ in $(seq 1 600); do
  [ -d "$WORK/killed/checkpoint-2.tmp" ] && break
  sleep 0.1
done
[ -d "$WORK/killed/checkpoint-2.tmp" ] || { kill -9 $pid; fail "checkpoint-2.tmp never appeared"; }
kill -9 $pid
wait $pid 2>/dev/null || true
[ ! -e "$WORK/killed/checkpoint-2" ] || fail "a half-written checkpoint was published"
# resume: the half-written directory is ignored; the run restarts from scratch (no complete checkpoint)
"$PREFOPT" train "${args[@]}" --set output.dir="$WORK/killed" --set training.resume=true 2> "$WORK/resume1.log" \
  || { cat "$WORK/resume1.log"; fail "resume 1 failed"; }
[ ! -e "$WORK/killed/checkpoint-2.tmp" ] || fail "stale .tmp not removed"

# now kill after checkpoint-4 is complete, during checkpoint-6
PREFOPT_TEST_CHECKPOINT_PAUSE=30 PREFOPT_TEST_CHECKPOINT_PAUSE_STEP=6 "$PREFOPT" train "${args[@]}" --set output.dir="$WORK/second" 2>/dev/null &
pid=$!
for _ in $(seq 1 600); do
  [ -d "$WORK/second/checkpoint-6.tmp" ] && break
  sleep 0.1
done
kill -9 $pid
wait $pid 2>/dev/null || true
[ -f "$WORK/second/checkpoint-4/trainer_state.json" ] || fail "checkpoint-4 lost"
"$PREFOPT" train "${args[@]}" --set output.dir="$WORK/second" --set training.resume=true 2> "$WORK/resume2.log" \
  || { cat "$WORK/resume2.log"; fail "resume 2 failed"; }
grep -q "resumed from .*checkpoint-4" "$WORK/resume2.log" || fail "did not resume from checkpoint-4: $(cat "$WORK/resume2.log")"

for d in killed second; do
  cmp "$WORK/straight/final/model.safetensors" "$WORK/$d/final/model.safetensors" || fail "$d: final weights differ"
  cmp "$WORK/straight/metrics.jsonl" "$WORK/$d/metrics.jsonl" || fail "$d: metrics differ"
done
echo "resume: ok"
