#!/usr/bin/env bash
# prefopt iterate with loop.select: a round keeps the prompts whose K samples' judge scores spread
# most (rule spread, fraction 0.5: 3 of 6) and builds its pairs from those only — exactly the pairs
# an unselected run with the same seed builds for them; metrics.json and the log give the kept
# count; without loop.select neither mentions a selection; the pair rules reward and policy keep
# ⌈fraction·n⌉ of the unselected round's pairs (reward: those of smallest score gap; policy, in
# round 2: those of smallest |σ(β·h) − ½| by prefopt logps); a bad rule or
# fraction is an error naming the field; a restarted round counts the pairs its pairs.jsonl kept.
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
  "training": {"batch_size": 2, "max_steps": 2, "save_steps": 10, "logging_steps": 1, "seed": 4},
  "output": {"dir": "$WORK/all", "tensorboard": false},
  "loop": {"rounds": 1, "prompts": "$WORK/prompts.jsonl", "samples_per_prompt": 4,
           "generation": {"max_new_tokens": 8, "temperature": 1.0},
           "judge": {"type": "command", "command": ["awk", "-f", "$SRC/tests/cli/iterate_judge.awk"], "timeout_s": 60},
           "pairs": {"strategy": "all_pairs", "margin": 0}}
}
JSON
run() { "$PREFOPT" iterate --config "$WORK/run.json" --set output.dir="$WORK/$1" "${@:2}"; }
run all 2> "$WORK/all.log" || { cat "$WORK/all.log"; fail "run without selection failed"; }
if grep -q "active selection" "$WORK/all.log"; then fail "a run without loop.select logged a selection"; fi
if grep -q '"selected_prompts"' "$WORK/all/rounds/round-1/metrics.json"; then fail "metrics.json of a run without loop.select names a selection"; fi
# A folder whose iterate_config.json predates loop.select, mode, online_steps and
# missing_eos_penalty is continued (they take their defaults), not refused as another configuration.
awk 'skip { if ($0 ~ /^    }$/) skip = 0; next }
     /^    "(missing_eos_penalty|mode|online_steps)":/ { next }
     /^    "select": \{/ { sub(/,$/, "", prev); skip = 1; next }
     { if (have) print prev; prev = $0; have = 1 }
     END { print prev }' "$WORK/all/iterate_config.json" > "$WORK/old_config.json"
if grep -qE '"(select|mode|online_steps|missing_eos_penalty)"' "$WORK/old_config.json"; then fail "old configuration: $(cat "$WORK/old_config.json")"; fi
mv "$WORK/old_config.json" "$WORK/all/iterate_config.json"
run all 2> "$WORK/old.log" || { cat "$WORK/old.log"; fail "a folder from before loop.select was refused"; }
grep -q "round 1 is complete; skipped" "$WORK/old.log" || fail "the finished round was not skipped: $(cat "$WORK/old.log")"
run half --set 'loop.select={"rule": "spread", "fraction": 0.5}' 2> "$WORK/half.log" || { cat "$WORK/half.log"; fail "run with selection failed"; }
grep -q "active selection (spread, fraction 0.5) kept 3 of 6 prompts" "$WORK/half.log" || fail "no selection line: $(cat "$WORK/half.log")"
d=$WORK/half/rounds/round-1
grep -q '"selected_prompts": 3' "$d/metrics.json" && grep -q '"select_rule": "spread"' "$d/metrics.json" && grep -q '"prompts": 6' "$d/metrics.json" \
  || fail "metrics.json: $(cat "$d/metrics.json")"
cmp "$WORK/all/rounds/round-1/scores.jsonl" "$d/scores.jsonl" || fail "the same seed should give the same scores"
# The 3 prompts (rows) of largest spread, max - min of the 4 scores, ties in prompt order.
awk '{ s = $0; sub(/.*"scores":\[/, "", s); sub(/\].*/, "", s); n = split(s, v, ",")
       lo = v[1] + 0; hi = lo; for (i = 2; i <= n; i++) { x = v[i] + 0; if (x < lo) lo = x; if (x > hi) hi = x }
       print hi - lo, NR }' "$d/scores.jsonl" | sort -s -k1,1gr | head -3 | awk '{ print $2 }' | sort -n > "$WORK/kept"
[ "$(wc -l < "$WORK/kept")" -eq 3 ] || fail "kept: $(cat "$WORK/kept")"
# The pairs of the selected run are the unselected run's pairs of the kept prompts, in order; the
# other prompts gave pairs there, so the selection did drop some.
: > "$WORK/want.jsonl"
for k in 1 2 3 4 5 6; do
  p=$(sed -n "${k}p" "$WORK/prompts.jsonl" | sed 's/^{"prompt": \(".*"\)}$/\1/')
  if grep -qx "$k" "$WORK/kept"; then
    grep -F "\"prompt\":$p," "$WORK/all/rounds/round-1/pairs.jsonl" >> "$WORK/want.jsonl" || true
  else
    if grep -qF "\"prompt\":$p," "$d/pairs.jsonl"; then fail "pairs of prompt $k, which the selection dropped"; fi
    if grep -qF "\"prompt\":$p," "$WORK/all/rounds/round-1/pairs.jsonl"; then echo "$k" >> "$WORK/dropped_with_pairs"; fi
  fi
done
[ -s "$WORK/want.jsonl" ] || fail "the kept prompts gave no pair"
[ -s "$WORK/dropped_with_pairs" ] || fail "the dropped prompts gave no pair without selection either: the test selects nothing"
cmp "$WORK/want.jsonl" "$d/pairs.jsonl" || fail "pairs differ from the unselected run's pairs of the kept prompts"
# fraction 1: every prompt kept, the same pairs as without selection.
run whole --set 'loop.select={"rule": "spread", "fraction": 1}' 2> "$WORK/whole.log" || { cat "$WORK/whole.log"; fail "fraction 1 failed"; }
grep -q "kept 6 of 6 prompts" "$WORK/whole.log" || fail "fraction 1 should keep every prompt"
cmp "$WORK/all/rounds/round-1/pairs.jsonl" "$WORK/whole/rounds/round-1/pairs.jsonl" || fail "fraction 1 changed the pairs"
# The pair rules rank the pairs the round built (without selection: the unselected run's pairs).
# reward, fraction 0.5: the ⌈n/2⌉ pairs of smallest judge score gap |s_c - s_r| (equal gaps in pair
# order), in the round's order.
all_pairs=$WORK/all/rounds/round-1/pairs.jsonl
n=$(wc -l < "$all_pairs")
k=$(( (n + 1) / 2 ))
[ "$k" -lt "$n" ] || fail "too few pairs ($n) for a selection to drop any"
run rew --set 'loop.select={"rule": "reward", "fraction": 0.5}' 2> "$WORK/rew.log" || { cat "$WORK/rew.log"; fail "rule reward failed"; }
grep -q "active selection (reward, fraction 0.5) kept $k of $n pairs" "$WORK/rew.log" || fail "no reward selection line: $(cat "$WORK/rew.log")"
d=$WORK/rew/rounds/round-1
grep -q "\"selected_pairs\": $k" "$d/metrics.json" && grep -q '"select_rule": "reward"' "$d/metrics.json" \
  || fail "metrics.json: $(cat "$d/metrics.json")"
python3 - "$all_pairs" "$k" > "$WORK/want_rew.jsonl" <<'PY'
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
gap = [abs(json.loads(l)["score_chosen"] - json.loads(l)["score_rejected"]) for l in lines]
if len(set(gap)) < 2: sys.exit("every pair has the same score gap: the test selects by order only")
keep = sorted(sorted(range(len(lines)), key=lambda i: gap[i])[: int(sys.argv[2])])
print("\n".join(lines[i] for i in keep))
PY
cmp "$WORK/want_rew.jsonl" "$d/pairs.jsonl" || fail "rule reward did not keep the pairs of smallest score gap"
# A round stopped after its pairs and restarted reuses pairs.jsonl and counts the kept pairs there.
set +e
PREFOPT_TEST_ITERATE_EXIT=1:pairs run rewr --set 'loop.select={"rule": "reward", "fraction": 0.5}' 2> "$WORK/rewr.log"
st=$?
set -e
[ "$st" -eq 75 ] || { cat "$WORK/rewr.log"; fail "the fault point after the pairs should exit 75, not $st"; }
run rewr --set 'loop.select={"rule": "reward", "fraction": 0.5}' 2> "$WORK/rewr2.log" || { cat "$WORK/rewr2.log"; fail "restart failed"; }
grep -q "active selection (reward, fraction 0.5) kept $k of $n pairs" "$WORK/rewr2.log" || fail "restart: $(cat "$WORK/rewr2.log")"
grep -q "\"selected_pairs\": $k" "$WORK/rewr/rounds/round-1/metrics.json" || fail "restart: $(cat "$WORK/rewr/rounds/round-1/metrics.json")"
cmp "$d/pairs.jsonl" "$WORK/rewr/rounds/round-1/pairs.jsonl" || fail "the restarted round's pairs differ"
# policy, fraction 0.5: ⌈n/2⌉ of the unselected run's pairs, in their order. Round 1's policy is
# its reference (the initial model), so every implicit margin is 0 and the first ⌈n/2⌉ are kept.
run pol --set 'loop.select={"rule": "policy", "fraction": 0.5}' 2> "$WORK/pol.log" || { cat "$WORK/pol.log"; fail "rule policy failed"; }
grep -q "active selection (policy, fraction 0.5) kept $k of $n pairs" "$WORK/pol.log" || fail "no policy selection line: $(cat "$WORK/pol.log")"
d=$WORK/pol/rounds/round-1
grep -q "\"selected_pairs\": $k" "$d/metrics.json" && grep -q '"select_rule": "policy"' "$d/metrics.json" \
  || fail "metrics.json: $(cat "$d/metrics.json")"
[ "$(wc -l < "$d/pairs.jsonl")" -eq "$k" ] || fail "rule policy wrote $(wc -l < "$d/pairs.jsonl") pairs, not $k"
if grep -Fxvq -f "$all_pairs" "$d/pairs.jsonl"; then fail "rule policy kept a pair the unselected round does not have"; fi
head -n "$k" "$all_pairs" | cmp - "$d/pairs.jsonl" || fail "equal margins (all 0 in round 1) should keep the first pairs"
# policy in round 2, where the policy (round 1's) is not the reference (the initial model): a
# two-round run without selection, and a copy of its round 1 continued with rule policy (its
# iterate_config.json says so), keep the same samples and build the same pairs in round 2.
run two --set loop.rounds=2 2> "$WORK/two.log" || { cat "$WORK/two.log"; fail "two rounds failed"; }
mkdir -p "$WORK/pol2/rounds" && cp -r "$WORK/two/rounds/round-1" "$WORK/pol2/rounds/"
python3 - "$WORK/two/iterate_config.json" > "$WORK/pol2/iterate_config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1], encoding="utf-8"))
c["loop"]["select"] = {"rule": "policy", "fraction": 0.5}
print(json.dumps(c, indent=2))
PY
run pol2 --set loop.rounds=2 --set 'loop.select={"rule": "policy", "fraction": 0.5}' 2> "$WORK/pol2.log" \
  || { cat "$WORK/pol2.log"; fail "rule policy in round 2 failed"; }
grep -q "round 1 is complete; skipped" "$WORK/pol2.log" || fail "round 1 was not reused: $(cat "$WORK/pol2.log")"
two_pairs=$WORK/two/rounds/round-2/pairs.jsonl
cmp "$WORK/two/rounds/round-2/scores.jsonl" "$WORK/pol2/rounds/round-2/scores.jsonl" || fail "round 2 should score the same samples"
n2=$(wc -l < "$two_pairs")
k2=$(( (n2 + 1) / 2 ))
grep -q "round 2: active selection (policy, fraction 0.5) kept $k2 of $n2 pairs" "$WORK/pol2.log" || fail "no round-2 selection line: $(cat "$WORK/pol2.log")"
d=$WORK/pol2/rounds/round-2
[ "$(wc -l < "$d/pairs.jsonl")" -eq "$k2" ] || fail "round 2 kept $(wc -l < "$d/pairs.jsonl") pairs, not $k2"
if grep -Fxvq -f "$two_pairs" "$d/pairs.jsonl"; then fail "rule policy kept a pair round 2 without selection does not have"; fi
if head -n "$k2" "$two_pairs" | cmp -s - "$d/pairs.jsonl"; then fail "round 2 kept its first pairs: the margins did not rank them"; fi
# The kept pairs are those of smallest |σ(β·h) − ½| (β 0.1), h from prefopt logps under round 1's
# policy and the initial model.
"$PREFOPT" logps --model "$WORK/two/rounds/round-1/final" --data "$two_pairs" --out "$WORK/lp_policy.jsonl" --tokenizer "$TOK" 2> /dev/null \
  || fail "prefopt logps under the policy failed"
"$PREFOPT" logps --model "$MODEL" --data "$two_pairs" --out "$WORK/lp_ref.jsonl" --tokenizer "$TOK" 2> /dev/null \
  || fail "prefopt logps under the reference failed"
python3 - "$two_pairs" "$WORK/lp_policy.jsonl" "$WORK/lp_ref.jsonl" "$k2" > "$WORK/want_pol.jsonl" <<'PY'
import json, math, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
pol = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
ref = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
h = [(p["chosen_logps"] - r["chosen_logps"]) - (p["rejected_logps"] - r["rejected_logps"]) for p, r in zip(pol, ref)]
dist = [abs(1 / (1 + math.exp(-0.1 * x)) - 0.5) for x in h]
keep = sorted(sorted(range(len(lines)), key=lambda i: dist[i])[: int(sys.argv[4])])
print("\n".join(lines[i] for i in keep))
PY
cmp "$WORK/want_pol.jsonl" "$d/pairs.jsonl" || fail "rule policy did not keep the pairs of smallest |sigmoid(beta*h) - 1/2|"
expect_fail "field 'loop.select.rule': 'random' is not one of none, spread, policy, reward" run bad --set loop.select.rule=random
expect_fail "field 'loop.select.fraction': must lie in (0, 1]" run bad --set 'loop.select={"rule": "reward", "fraction": 0}'
expect_fail "field 'loop.select.fraction': must lie in (0, 1]" run bad --set 'loop.select={"rule": "spread", "fraction": 1.5}'
expect_fail "field 'loop.select.fraction'" run bad --set loop.select.fraction=0
expect_fail "loop.select.top_n" run bad --set 'loop.select={"rule": "spread", "top_n": 2}'
echo "iterate_select: ok"
