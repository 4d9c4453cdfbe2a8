#!/usr/bin/env bash
# prefopt iterate with loop.mode online: 3 online DPO steps on the tiny GPT-2 with an awk judge
# write 3 metrics rows with TRL's online metric names and final/ (weights and tokenizer); two runs
# with the same seed end with byte-identical weights, another seed with other weights; a pairwise
# command judge runs too (no score metrics then); resume, selection and a reused folder are refused.
source "$(dirname "$0")/common.sh"
MODEL=$DATA/cli/gpt2_text
TOK=$DATA/tokenizer/gpt2/tokenizer.json
head -6 "$DATA/cli/pairs_text.jsonl" | sed 's/", "chosen".*/"}/' > "$WORK/prompts.jsonl"
cat > "$WORK/run.json" <<JSON
{
  "model": "$MODEL",
  "data": {"tokenizer": "$TOK"},
  "loss": {"type": ["sigmoid"], "beta": 0.1},
  "optimizer": {"learning_rate": 0.002},
  "training": {"batch_size": 2, "logging_steps": 1, "seed": 7},
  "output": {"dir": "$WORK/a", "tensorboard": false},
  "loop": {"mode": "online", "online_steps": 3, "prompts": "$WORK/prompts.jsonl",
           "generation": {"max_new_tokens": 8, "temperature": 1.0},
           "judge": {"type": "command", "command": ["awk", "-f", "$SRC/tests/cli/iterate_judge.awk"], "timeout_s": 60}}
}
JSON
run() { "$PREFOPT" iterate --config "$WORK/run.json" --set output.dir="$WORK/$1" "${@:2}"; }
run a 2> "$WORK/a.log" || { cat "$WORK/a.log"; fail "online run failed"; }
m=$WORK/a/metrics.jsonl
[ "$(wc -l < "$m")" -eq 3 ] || fail "metrics.jsonl should hold 3 rows: $(cat "$m")"
for key in objective/kl objective/scores rewards/chosen loss objective/entropy objective/rlhf_reward val/contain_eos_token beta; do
  [ "$(grep -c "\"$key\": [-0-9]" "$m")" -eq 3 ] || fail "metrics.jsonl lacks a number for $key in some row: $(cat "$m")"
done
for s in 1 2 3; do grep -q "^{\"step\": $s," "$m" || fail "no row for step $s"; done
grep -q '"episode": 6.0,' "$m" || fail "step 3 should have seen 6 prompts: $(tail -1 "$m")"
[ -s "$WORK/a/metrics.csv" ] || fail "no metrics.csv"
for f in model.safetensors config.json tokenizer.json; do [ -s "$WORK/a/final/$f" ] || fail "final/$f missing"; done
[ ! -e "$WORK/a/rounds" ] || fail "an online run has no rounds"
grep -q "online step 3/3" "$WORK/a.log" || fail "no step line in the log: $(cat "$WORK/a.log")"
# A row over several steps: the mean of their loss, the last step's grad_norm and learning_rate
# (as the training runner's rows and the Hugging Face Trainer's).
run w --set training.logging_steps=3 2> "$WORK/w.log" || { cat "$WORK/w.log"; fail "online run logging every 3 steps failed"; }
[ "$(wc -l < "$WORK/w/metrics.jsonl")" -eq 1 ] || fail "logging_steps 3 should give one row: $(cat "$WORK/w/metrics.jsonl")"
val() { grep -o "\"$2\": [-0-9.e+]*" "$1" | sed -n "${3}p" | awk '{print $2}'; }
[ "$(val "$WORK/w/metrics.jsonl" grad_norm 1)" = "$(val "$m" grad_norm 3)" ] || fail "grad_norm should be step 3's"
[ "$(val "$WORK/w/metrics.jsonl" learning_rate 1)" = "$(val "$m" learning_rate 3)" ] || fail "learning_rate should be step 3's"
awk -v w="$(val "$WORK/w/metrics.jsonl" loss 1)" -v a="$(val "$m" loss 1) $(val "$m" loss 2) $(val "$m" loss 3)" \
  'BEGIN { split(a, l, " "); mean = (l[1] + l[2] + l[3]) / 3; d = w - mean; if (d < 0) d = -d; exit !(d <= 1e-6 * (mean < 0 ? -mean : mean) + 1e-12) }' \
  || fail "loss of the 3-step row should be the mean of the 3 steps' losses"
run b 2> "$WORK/b.log" || { cat "$WORK/b.log"; fail "second online run failed"; }
cmp "$WORK/a/final/model.safetensors" "$WORK/b/final/model.safetensors" || fail "the same seed gave other weights"
cmp "$m" "$WORK/b/metrics.jsonl" || fail "the same seed gave other metrics"
run c --set training.seed=8 2> "$WORK/c.log" || { cat "$WORK/c.log"; fail "online run with another seed failed"; }
cmp -s "$WORK/a/final/model.safetensors" "$WORK/c/final/model.safetensors" && fail "another seed gave the same weights"
# The trained policy is no longer the initial model: its weights differ from a run with lr 0's.
run zero --set optimizer.learning_rate=0 2> "$WORK/zero.log" || { cat "$WORK/zero.log"; fail "lr 0 run failed"; }
cmp -s "$WORK/a/final/model.safetensors" "$WORK/zero/final/model.safetensors" && fail "training did not change the weights"
# A pairwise command (the first completion always wins): pairs, no score metrics.
run pairwise --set loop.online_steps=1 \
  --set 'loop.judge={"type": "pairwise_command", "command": ["/bin/sh", "-c", "while read -r l; do echo 0; done"]}' \
  2> "$WORK/pairwise.log" || { cat "$WORK/pairwise.log"; fail "online run with a pairwise judge failed"; }
[ "$(wc -l < "$WORK/pairwise/metrics.jsonl")" -eq 1 ] && grep -q '"objective/kl": ' "$WORK/pairwise/metrics.jsonl" || fail "pairwise metrics"
if grep -q 'objective/scores' "$WORK/pairwise/metrics.jsonl"; then fail "a pairwise judge gives no scores"; fi
expect_fail "field 'training.resume': an online run (loop.mode online) does not checkpoint or resume" run r --set training.resume=true
expect_fail "holds an earlier run's outputs and an online run does not resume" run a
expect_fail "field 'loop.select.rule'" run s --set 'loop.select={"rule": "spread", "fraction": 0.5}'
expect_fail "field 'loop.mode': 'offline' is not one of rounds, online" run m --set loop.mode=offline
expect_fail "field 'loop.online_steps'" run o --set loop.online_steps=0
expect_fail "judge 'sh -c exit 3': exited with status 3" run j --set 'loop.judge.command=["sh","-c","exit 3"]'
run a --set output.overwrite=true --set loop.online_steps=1 2> "$WORK/over.log" || { cat "$WORK/over.log"; fail "overwrite failed"; }
[ "$(wc -l < "$m")" -eq 1 ] || fail "overwrite should start a fresh metrics.jsonl"
echo "iterate_online: ok"
