#!/usr/bin/env bash
# prefopt reward train as a whole run, as prefopt train has it: TensorBoard events under TRL
# RewardTrainer's metric names (read back from the event file, equal to metrics.jsonl), early
# stopping at the step its rule gives, and continuing from a LoRA reward model's adapter (its
# first step scores the pairs as `prefopt reward score --adapter` does, and training moves on);
# gradient checkpointing (bit-equal to the run without it), the memory-fit check, refused fields.
source "$(dirname "$0")/common.sh"
cat > "$WORK/run.json" <<JSON
{
  "model": "$DATA/models/gpt2",
  "data": {"train": "$DATA/cli/pairs_tokenized.jsonl", "eval": "$DATA/cli/pairs_tokenized.jsonl"},
  "optimizer": {"learning_rate": 0.003},
  "training": {"max_steps": 6, "batch_size": 4, "logging_steps": 1, "eval_steps": 2}
}
JSON
train() { "$PREFOPT" reward train --config "$WORK/run.json" "$@"; }

# TensorBoard: every metrics.jsonl row is one event with the same values (float32), tags train/*, eval/*
train --set output.dir="$WORK/tb" 2> "$WORK/tb.log" || { cat "$WORK/tb.log"; fail "the TensorBoard run failed"; }
ls "$WORK/tb/runs"/events.out.tfevents.* > /dev/null || fail "no TensorBoard event file"
python3 - "$WORK/tb" <<'PY'
import glob, json, struct, sys
d = sys.argv[1]
def varint(b, i):
    r = s = 0
    while True:
        c = b[i]; i += 1; r |= (c & 0x7f) << s; s += 7
        if c < 0x80: return r, i
def fields(b):  # protobuf wire format: (field, value) pairs
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0: v, i = varint(b, i)
        elif w == 1: v, i = b[i:i + 8], i + 8
        elif w == 5: v, i = b[i:i + 4], i + 4
        elif w == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else: raise ValueError("wire type %d" % w)
        yield f, v
events = {}   # step -> {tag: value}; TFRecord: length, crc, Event, crc
files = glob.glob(d + "/runs/events.out.tfevents.*")
assert len(files) == 1, files
data = open(files[0], "rb").read()
i = 0
while i < len(data):
    n = struct.unpack("<Q", data[i:i + 8])[0]
    rec = data[i + 12:i + 12 + n]
    i += 12 + n + 4
    step, scalars = 0, {}
    for f, v in fields(rec):   # Event{wall_time = 1, step = 2, summary = 5}
        if f == 2: step = v
        if f == 5:
            for f2, value in fields(v):   # Summary{value = 1}: Value{tag = 1, simple_value = 2}
                if f2 != 1: continue
                kv = dict(fields(value))
                scalars[kv[1].decode()] = struct.unpack("<f", kv[2])[0]
    if scalars: events.setdefault(step, {}).update(scalars)
assert i == len(data), "trailing bytes in the event file"
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
for want in ["train/loss", "train/accuracy", "train/margin", "train/min_reward", "train/mean_reward", "train/max_reward",
             "train/num_tokens", "train/grad_norm", "train/learning_rate", "eval/loss", "eval/accuracy", "eval/margin"]:
    assert any(want in e for e in events.values()), (want, sorted(events[1]))
for r in rows:
    got = events[r["step"]]
    for k, v in r.items():
        if k == "step" or v is None: continue
        tag = "eval/" + k[5:] if k.startswith("eval_") else "train/" + k
        assert abs(got[tag] - v) <= 1e-6 * max(1.0, abs(v)), (r["step"], tag, got[tag], v)
assert sorted(events) == sorted({r["step"] for r in rows}), (sorted(events), [r["step"] for r in rows])
PY

# early stopping: greater_is_better on eval_loss stops once patience evaluations have not raised it
train --set training.max_steps=30 --set training.eval_steps=1 --set training.early_stopping_metric=eval_loss \
  --set training.greater_is_better=true --set training.early_stopping_patience=2 --set output.tensorboard=false \
  --set output.dir="$WORK/early" 2> "$WORK/early.log" || { cat "$WORK/early.log"; fail "the early stopping run failed"; }
grep -q "stopped early" "$WORK/early.log" || fail "early stopping did not stop: $(tail -3 "$WORK/early.log")"
python3 - "$WORK/early" <<'PY'
import json, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
best, bad, expected = None, 0, None
for r in rows:
    if "eval_loss" not in r: continue
    if best is None or r["eval_loss"] > best: best, bad = r["eval_loss"], 0
    else: bad += 1
    if bad >= 2:
        expected = r["step"]
        break
assert expected is not None and expected < 30, rows
assert rows[-1]["step"] == expected, (expected, rows[-1])
st = json.load(open("%s/checkpoint-%d/trainer_state.json" % (d, expected)))
assert st["finished"] and st["global_step"] == expected and st["evals_without_improvement"] == 2, st
PY
expect_fail "eval_nothing" train --set training.early_stopping_metric=eval_nothing --set output.dir="$WORK/bad"

# continuing a LoRA reward model from its adapter (final/: the PEFT adapter with the score head)
lora=(--set lora='{"r": 4, "alpha": 8, "target_modules": ["c_attn"]}')
train "${lora[@]}" --set training.max_steps=8 --set data.eval=null --set output.tensorboard=false --set output.dir="$WORK/first" \
  2> "$WORK/first.log" || { cat "$WORK/first.log"; fail "the first LoRA run failed"; }
"$PREFOPT" reward score --model "$DATA/models/gpt2" --adapter "$WORK/first/final" --data "$DATA/cli/pairs_tokenized.jsonl" \
  --batch-size 64 --out "$WORK/scores.jsonl" 2> "$WORK/score.log" || { cat "$WORK/score.log"; fail "scoring with --adapter failed"; }
train --set adapter="$WORK/first/final" --set training.batch_size=64 --set training.max_steps=3 --set data.eval=null \
  --set output.tensorboard=false --set output.dir="$WORK/next" 2> "$WORK/next.log" || { cat "$WORK/next.log"; fail "continuing from the adapter failed"; }
# the same first step from a fresh LoRA model (the base with new adapters and head): where training began
train "${lora[@]}" --set training.batch_size=64 --set training.max_steps=1 --set data.eval=null --set output.tensorboard=false \
  --set output.dir="$WORK/fresh" 2> "$WORK/fresh.log" || { cat "$WORK/fresh.log"; fail "the fresh LoRA run failed"; }
grep -q "from adapter" "$WORK/next.log" || fail "the continued run does not say it starts from the adapter: $(cat "$WORK/next.log")"
python3 - "$WORK/scores.jsonl" "$WORK/next/metrics.jsonl" "$WORK/fresh/metrics.jsonl" <<'PY'
import json, math, sys
scores = [json.loads(l) for l in open(sys.argv[1])]
rows = [json.loads(l) for l in open(sys.argv[2])]
fresh = json.loads(open(sys.argv[3]).readline())
c = [s["chosen_score"] for s in scores]
r = [s["rejected_score"] for s in scores]
n = len(c)
want = {"loss": sum(math.log1p(math.exp(-(a - b))) for a, b in zip(c, r)) / n,
        "accuracy": sum(a > b for a, b in zip(c, r)) / n,
        "margin": sum(a - b for a, b in zip(c, r)) / n,
        "mean_reward": (sum(c) + sum(r)) / (2 * n), "min_reward": min(c + r), "max_reward": max(c + r)}
step1 = rows[0]   # one batch holds every pair: step 1 scores them all before its update
assert step1["step"] == 1, step1
for k, v in want.items():
    assert abs(step1[k] - v) <= 1e-5 * max(1.0, abs(v)), (k, step1[k], v)
assert step1["loss"] < fresh["loss"] - 1e-3, (step1["loss"], fresh["loss"])  # it starts where the first run ended, not afresh
assert rows[-1]["loss"] < step1["loss"], rows                                       # and trains on
PY
cmp -s "$WORK/first/final/adapter_model.safetensors" "$WORK/next/final/adapter_model.safetensors" && fail "the continued adapter did not change"
grep -q GPT2ForSequenceClassification "$WORK/next/merged/config.json" || fail "the continued run has no merged classifier"
expect_fail "adapter_config.json" train --set adapter="$WORK/first/missing" --set output.dir="$WORK/bad2"
# training.gradient_checkpointing: the same metrics and weights as the run without it, bit for bit
# (the backward recomputes each layer with the same ops in the same order), full and LoRA; the log
# says it is on. The memory-fit check runs before the model is built, as prefopt train's: a too
# small training.memory_limit_gib is an error naming it; -1 skips the check.
ck() {  # ck <output dir> [--set ...]
  local out=$1
  shift
  train --set training.max_steps=3 --set data.eval=null --set output.tensorboard=false --set output.dir="$WORK/$out" "$@" \
    2> "$WORK/$out.log" || { cat "$WORK/$out.log"; fail "run $out failed"; }
}
ck ck-off
ck ck-on --set training.gradient_checkpointing=true --set training.memory_limit_gib=-1
grep -q "gradient checkpointing" "$WORK/ck-on.log" || fail "the log does not say checkpointing is on: $(cat "$WORK/ck-on.log")"
grep -q "gradient checkpointing" "$WORK/ck-off.log" && fail "the log says checkpointing is on in a run without it"
cmp "$WORK/ck-off/metrics.jsonl" "$WORK/ck-on/metrics.jsonl" || fail "checkpointing changed the metrics"
cmp "$WORK/ck-off/final/model.safetensors" "$WORK/ck-on/final/model.safetensors" || fail "checkpointing changed the weights"
ck lora-ck-off "${lora[@]}"
ck lora-ck-on "${lora[@]}" --set training.gradient_checkpointing=true
grep -q "+ LoRA + gradient checkpointing" "$WORK/lora-ck-on.log" || fail "the LoRA log does not say checkpointing is on"
cmp "$WORK/lora-ck-off/final/adapter_model.safetensors" "$WORK/lora-ck-on/final/adapter_model.safetensors" \
  || fail "checkpointing changed the LoRA reward model"
# The estimate is printed before the run and falls with checkpointing (its total, in KiB).
total_kib() {
  sed -n 's/.*needs about \([0-9.]*\) \([KMG]iB\).*/\1 \2/p' "$WORK/$1.log" | head -1 |
    awk '{ f = $2 == "GiB" ? 1048576 : $2 == "MiB" ? 1024 : 1; print $1 * f }'
}
awk -v a="$(total_kib ck-on)" -v b="$(total_kib ck-off)" 'BEGIN { exit !(a > 0 && a < b) }' \
  || fail "the memory estimate did not fall: $(total_kib ck-on) KiB vs $(total_kib ck-off) KiB"
expect_fail "set training.memory_limit_gib to a larger figure" ck small --set training.memory_limit_gib=0.000001
[ -e "$WORK/small/final" ] && fail "a run refused by the memory check wrote a model"
# run.json fields prefopt train honours and reward training cannot are errors naming the field
expect_fail "field 'training.zero': not supported by prefopt reward train" ck zero --set training.zero=1
expect_fail "field 'data.pad_to_multiple_of': not supported by prefopt reward train" ck pad --set data.pad_to_multiple_of=8
echo "reward run: ok"
