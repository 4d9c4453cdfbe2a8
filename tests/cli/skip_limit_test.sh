#!/usr/bin/env bash
# A loss or gradient that is never finite ends `prefopt train` with an error naming the cause and
# the step, after training.max_consecutive_skipped_steps skipped steps in a row; a run whose every
# step was skipped never reports success. Every run is bounded by `timeout`: a regression (the run
# loops forever appending metrics rows) fails here instead of hanging the test suite.
source "$(dirname "$0")/common.sh"
# batch size 2: 12 steps an epoch, more than the skip limit
base=(--set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" --set training.batch_size=2
      --set output.tensorboard=false)
LIMIT=120
# bounded NAME ARGS...: runs prefopt train into $WORK/NAME, log in $WORK/NAME.log; fails on success or timeout
bounded() {
  local name=$1; shift
  local rc=0
  timeout $LIMIT "$PREFOPT" train "${base[@]}" --set output.dir="$WORK/$name" "$@" > "$WORK/$name.log" 2>&1 || rc=$?
  [ $rc -ne 124 ] || fail "$name: still running after $LIMIT s (every step skipped, the run never ends)"
  [ $rc -ne 0 ] || fail "$name: a run with every step skipped reported success: $(tail -3 "$WORK/$name.log")"
}
has() { grep -qF -- "$2" "$WORK/$1.log" || fail "$1: the message lacks '$2': $(tail -3 "$WORK/$1.log")"; }

# the reported case: max_steps with beta = 1e308 (the gradient norm overflows at every step)
bounded beta --set training.max_steps=2 --set loss.beta=1e308
has beta "error: training: step 1"
has beta "5 consecutive steps skipped: non-finite gradient norm"
has beta "training.max_consecutive_skipped_steps"
[ "$(wc -l < "$WORK/beta/metrics.jsonl")" -eq 0 ] || fail "beta: rows were logged for steps that did not happen"
[ ! -e "$WORK/beta/final" ] || fail "beta: a final model was written"

# the limit is an option
bounded limit2 --set training.max_steps=2 --set loss.beta=1e308 --set training.max_consecutive_skipped_steps=2
has limit2 "2 consecutive steps skipped"

# 0: no limit on skips in a row, but an epoch without a single update still ends the run
bounded nolimit --set training.max_steps=2 --set loss.beta=1e308 --set training.max_consecutive_skipped_steps=0
has nolimit "every step of epoch 1 was skipped"

# epochs instead of max_steps: every step skipped is an error, not success
bounded epochs --set training.num_train_epochs=1 --set loss.beta=1e308 --set training.max_consecutive_skipped_steps=100
has epochs "was skipped"

# a learning rate that turns the weights into infinities after the first update
bounded lr --set training.max_steps=3 --set optimizer.learning_rate=1e300
has lr "error: training: step 2"
has lr "consecutive steps skipped: non-finite"

# the same in the KTO trainer
bounded kto --set 'loss.type=["kto"]' --set training.max_steps=3 --set optimizer.learning_rate=1e300
has kto "consecutive steps skipped: non-finite"

# rope_theta = 0 (NaN rotary angles): a skip-limit error, or a load-time error naming rope_theta
mkdir -p "$WORK/qwen0"
cp "$DATA/models/qwen2/"*.json "$DATA/models/qwen2/model.safetensors" "$WORK/qwen0/"
sed -i 's/"rope_theta": [0-9.e+]*/"rope_theta": 0.0/' "$WORK/qwen0/config.json"
grep -q '"rope_theta": 0.0' "$WORK/qwen0/config.json" || fail "could not set rope_theta in the test model"
bounded rope --set model="$WORK/qwen0" --set training.max_steps=2
grep -q "consecutive steps skipped\|was skipped\|rope_theta" "$WORK/rope.log" || fail "rope: $(tail -3 "$WORK/rope.log")"

expect_fail "training.max_consecutive_skipped_steps" "$PREFOPT" train "${base[@]}" --set training.max_consecutive_skipped_steps=-1 \
  --set output.dir="$WORK/bad"
echo "skip limit: ok"
