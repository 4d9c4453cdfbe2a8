#!/usr/bin/env bash
# Resume at the end of a run and around checkpoints, with the on-disk states a kill leaves:
#  - a finished run (killed while final/ was written, or complete) is never trained further: resume
#    writes final/ from the last checkpoint, weights and metrics equal to the uninterrupted run's;
#  - the last checkpoint is written once, even when max_steps is a multiple of save_steps;
#  - the metrics row that straddles a resume equals the uninterrupted run's (logging every 3 steps,
#    checkpoints every 2);
#  - a fresh run refuses a folder holding another run's checkpoints unless told to overwrite.
source "$(dirname "$0")/common.sh"
args=(--set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl"
      --set training.max_steps=6 --set training.batch_size=3 --set training.save_steps=2 --set training.logging_steps=3
      --set training.save_total_limit=1 --set optimizer.learning_rate=0.001 --set output.tensorboard=false)
train() { "$PREFOPT" train "${args[@]}" "$@"; }
inode() { stat -c %i "$1"; }

# The uninterrupted run. checkpoint-6 (the last, 6 = 3 * save_steps) must be written once: the
# pause sits inside its writing; once it is published its weights file must stay the same file.
PREFOPT_TEST_CHECKPOINT_PAUSE=2 PREFOPT_TEST_CHECKPOINT_PAUSE_STEP=6 train --set output.dir="$WORK/straight" 2> "$WORK/straight.log" &
pid=$!
for _ in $(seq 1 1200); do
  [ -f "$WORK/straight/checkpoint-6/trainer_state.json" ] && break
  sleep 0.05
done
[ -f "$WORK/straight/checkpoint-6/trainer_state.json" ] || { kill -9 $pid; fail "checkpoint-6 never appeared"; }
first=$(inode "$WORK/straight/checkpoint-6/model.safetensors")
wait $pid || { cat "$WORK/straight.log"; fail "the run failed"; }
[ "$(inode "$WORK/straight/checkpoint-6/model.safetensors")" = "$first" ] || fail "checkpoint-6 was written twice"
[ "$(ls -d "$WORK"/straight/checkpoint-* | wc -l)" -eq 1 ] || fail "save_total_limit=1 left $(ls "$WORK/straight")"
grep -q '"finished": true' "$WORK/straight/checkpoint-6/trainer_state.json" || fail "the last checkpoint is not marked finished"
cp -r "$WORK/straight" "$WORK/ref"   # what every later run is compared with

same_as_straight() {  # same_as_straight DIR: final weights, metrics and the last checkpoint equal the straight run's
  cmp "$WORK/ref/final/model.safetensors" "$1/final/model.safetensors" || fail "$1: final weights differ"
  cmp "$WORK/ref/checkpoint-6/model.safetensors" "$1/checkpoint-6/model.safetensors" || fail "$1: checkpoint-6 changed"
  cmp "$WORK/ref/metrics.jsonl" "$1/metrics.jsonl" || fail "$1: metrics.jsonl differs"
  cmp "$WORK/ref/metrics.csv" "$1/metrics.csv" || fail "$1: metrics.csv differs"
}
finished_resume() {  # finished_resume NAME: resume $WORK/NAME, which must train nothing
  train --set output.dir="$WORK/$1" --set training.resume=true 2> "$WORK/$1.log" || { cat "$WORK/$1.log"; fail "$1: resume failed"; }
  grep -q "already finished at step 6" "$WORK/$1.log" || fail "$1: not taken as finished: $(cat "$WORK/$1.log")"
  if grep -q "step 7\|7/6" "$WORK/$1.log"; then fail "$1: trained past max_steps"; fi
  same_as_straight "$WORK/$1"
}
# killed before final/ was published: only a final.tmp (or nothing)
cp -r "$WORK/straight" "$WORK/nofinal"
mv "$WORK/nofinal/final" "$WORK/nofinal/final.tmp"
head -c 100 "$WORK/straight/final/model.safetensors" > "$WORK/nofinal/final.tmp/model.safetensors"
finished_resume nofinal
[ ! -e "$WORK/nofinal/final.tmp" ] || fail "final.tmp left behind"
# a final/ cut short (as a prefopt that wrote it in place left it)
cp -r "$WORK/straight" "$WORK/torn"
head -c 100 "$WORK/straight/final/model.safetensors" > "$WORK/torn/final/model.safetensors"
finished_resume torn
# a last checkpoint without the 'finished' mark (written by an older prefopt, or killed before the mark)
cp -r "$WORK/straight" "$WORK/unmarked"
rm -r "$WORK/unmarked/final"
sed -i 's/"finished": true/"finished": false/' "$WORK/unmarked/checkpoint-6/trainer_state.json"
finished_resume unmarked
# a complete run resumed again
finished_resume straight

# Killed while checkpoint-4 was written (checkpoint-2 complete, metrics logged up to step 3): the
# row of step 6 averages steps 4..6, that of step 3 steps 1..3 across the checkpoint at step 2.
PREFOPT_TEST_CHECKPOINT_PAUSE=30 PREFOPT_TEST_CHECKPOINT_PAUSE_STEP=4 train --set output.dir="$WORK/killed" 2>/dev/null &
pid=$!
for _ in $(seq 1 1200); do
  [ -d "$WORK/killed/checkpoint-4.tmp" ] && break
  sleep 0.05
done
kill -9 $pid
wait $pid 2>/dev/null || true
[ -f "$WORK/killed/checkpoint-2/trainer_state.json" ] || fail "checkpoint-2 lost"
# resume from checkpoint-2: the window of steps 1..2 comes from the checkpoint, the row of step 3 is dropped
train --set output.dir="$WORK/killed" --set training.resume=true 2> "$WORK/killed.log" || { cat "$WORK/killed.log"; fail "resume failed"; }
grep -q "resumed from .*checkpoint-2 (step 2)" "$WORK/killed.log" || fail "did not resume from checkpoint-2: $(cat "$WORK/killed.log")"
same_as_straight "$WORK/killed"

# A fresh run in a folder with another run's checkpoints
expect_fail "holds checkpoints of an earlier run" train --set output.dir="$WORK/straight"
expect_fail "output.overwrite=true" train --set output.dir="$WORK/straight"
[ -f "$WORK/straight/checkpoint-6/trainer_state.json" ] || fail "a refused run touched the checkpoints"
cp -r "$WORK/straight" "$WORK/over"
mkdir "$WORK/over/checkpoint-10"
train --set output.dir="$WORK/over" --set output.overwrite=true --set optimizer.learning_rate=0.002 2> "$WORK/over.log" \
  || { cat "$WORK/over.log"; fail "output.overwrite run failed"; }
[ ! -e "$WORK/over/checkpoint-10" ] || fail "output.overwrite kept an old checkpoint"
if cmp -s "$WORK/ref/final/model.safetensors" "$WORK/over/final/model.safetensors"; then fail "output.overwrite did not train anew"; fi
expect_fail "set only one" train --set output.dir="$WORK/over" --set output.overwrite=true --set training.resume=true
echo "resume at the end: ok"
