#!/usr/bin/env bash
# prefopt train on hostile input: a deeply nested run.json, integers that would wrap, a thread count
# beyond the cores, a run larger than the memory limit, token ids beyond the vocabulary — each an
# error naming the file (and line or field), or a warning, before training starts.
source "$(dirname "$0")/common.sh"
M="$DATA/models/gpt2"
D="$DATA/cli/pairs_tokenized.jsonl"
base=(--set model="$M" --set data.train="$D" --set training.max_steps=1 --set data.eval_fraction=0 --set output.dir="$WORK/out" --set output.overwrite=true
      --set output.tensorboard=false)
python3 -c 'print("{\"model\": " + "[" * 100000 + "]" * 100000 + "}")' > "$WORK/deep.json"
expect_fail "$WORK/deep.json: nests arrays and objects deeper than 256 levels" "$PREFOPT" train --config "$WORK/deep.json"
echo '{"model": "m", "model": "n"}' > "$WORK/dup.json"
expect_fail "key 'model' appears more than once" "$PREFOPT" train --config "$WORK/dup.json"
expect_fail "training.batch_size: must be an integer in" "$PREFOPT" train "${base[@]}" --set training.batch_size=4294967297
expect_fail "training.max_steps: must be an integer in" "$PREFOPT" train "${base[@]}" --set training.max_steps=1e30
expect_fail "field 'data.pad_to_multiple_of'" "$PREFOPT" train "${base[@]}" --set data.pad_to_multiple_of=1073741824
expect_fail "field 'lora.r'" "$PREFOPT" train "${base[@]}" --set 'lora={"r": 1000000}'
# the memory estimate: printed, and an error above the limit
expect_fail "KiB of the configured limit" "$PREFOPT" train "${base[@]}" --set training.memory_limit_gib=0.000001
# a thread count beyond the cores: clamped with a warning, and the run goes on
"$PREFOPT" train "${base[@]}" --set training.threads=100000 2> "$WORK/threads.log" || { cat "$WORK/threads.log"; fail "training failed"; }
grep -q "warning: training.threads 100000 is more than the" "$WORK/threads.log" || fail "no thread warning: $(cat "$WORK/threads.log")"
grep -q "this run needs about" "$WORK/threads.log" || fail "no memory estimate: $(cat "$WORK/threads.log")"
# token ids beyond the model's vocabulary (301): found at load time, with file:line
{ head -3 "$D"; echo '{"prompt_input_ids": [1, 2], "chosen_input_ids": [3, 500], "rejected_input_ids": [4]}'; } > "$WORK/oov.jsonl"
expect_fail "oov.jsonl:4: field 'chosen': token id 500" "$PREFOPT" train "${base[@]}" --set data.train="$WORK/oov.jsonl" --set data.strict=true
"$PREFOPT" train "${base[@]}" --set data.train="$WORK/oov.jsonl" 2> "$WORK/oov.log" || { cat "$WORK/oov.log"; fail "skip mode failed"; }
grep -q "skipped .*oov.jsonl:4: field 'chosen'" "$WORK/oov.log" || fail "the line is not reported: $(cat "$WORK/oov.log")"
# a NUL byte and garbage after a good record: refused under data.strict
{ head -2 "$D"; printf '{"prompt_input_ids": [1], "chosen_input_ids": [2], "rejected_input_ids": [3]}\0garbage\n'; } > "$WORK/nul.jsonl"
expect_fail "nul.jsonl:3: not valid JSON: NUL byte" "$PREFOPT" train "${base[@]}" --set data.train="$WORK/nul.jsonl" --set data.strict=true
echo "limits: ok"
