#!/usr/bin/env bash
# `mpirun -np 2 prefopt train`: the same run as one process (metrics of every step and the final
# model's log-probs to 1e-6 relative, scale 1) for sigmoid, aot (batch-coupled) and KTO; rank 0
# alone writes the output folder; the sharded reference precompute writes the single process's
# cache file byte for byte; set-ups that cannot work are clear errors; a killed rank ends the job
# and resuming from the last checkpoint gives the uninterrupted run.
# Exit 77 (skipped) without mpirun or without MPI in this prefopt.
source "$(dirname "$0")/common.sh"
command -v mpirun > /dev/null || { echo "mpirun not found: skipped"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun -np 2 --oversubscribe)
out=$("${MPIRUN[@]}" "$PREFOPT" train --help 2>&1 || true)
if grep -q "built without MPI" <<<"$out"; then echo "prefopt built without MPI: skipped"; exit 77; fi

# numeric comparison of two CSV files with the same header: |a - b| <= 1e-6 * max(1, |a|, |b|)
same_csv() {
  awk -F, 'NR == FNR { for (i = 1; i <= NF; ++i) a[FNR, i] = $i; rows = FNR; next }
           { for (i = 1; i <= NF; ++i) { x = a[FNR, i]; y = $i
               if (x == y) continue
               d = x - y; if (d < 0) d = -d; s = 1; if (x > s) s = x; if (-x > s) s = -x; if (y > s) s = y; if (-y > s) s = -y
               if (d > 1e-6 * s) { printf "row %d column %d: %s vs %s\n", FNR, i, x, y; bad = 1 } } }
           END { if (FNR != rows) { print "row counts differ"; bad = 1 }; exit bad }' "$1" "$2"
}
logps_csv() {  # the final model's log-probs on the data, one "chosen,rejected" line per pair
  "$PREFOPT" logps --model "$1" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$1.logps.jsonl" > /dev/null 2>&1 \
    || fail "prefopt logps on $1 failed"
  sed -E 's/.*"chosen_logps": *([-0-9.e+]+).*"rejected_logps": *([-0-9.e+]+).*/\1,\2/' "$1.logps.jsonl"
}

base=(--set model="$DATA/models/gpt2" --set data.train="$DATA/cli/pairs_tokenized.jsonl" --set training.max_steps=5
      --set training.batch_size=4 --set training.logging_steps=1 --set optimizer.learning_rate=0.001
      --set output.tensorboard=false)
for loss in sigmoid aot kto; do
  args=("${base[@]}" --set "loss.type=[\"$loss\"]")
  [ "$loss" = kto ] && args+=(--set training.batch_size=6)  # 6 examples: 3 per rank, KL rows across the shares
  [ "$loss" = aot ] && args+=(--set data.eval_fraction=0.4 --set training.eval_steps=2)  # 9 eval pairs: 3 batches over 2 ranks
  "$PREFOPT" train "${args[@]}" --set output.dir="$WORK/one-$loss" 2> "$WORK/one-$loss.log" \
    || { cat "$WORK/one-$loss.log"; fail "$loss: one process failed"; }
  "${MPIRUN[@]}" "$PREFOPT" train "${args[@]}" --set output.dir="$WORK/two-$loss" 2> "$WORK/two-$loss.log" \
    || { cat "$WORK/two-$loss.log"; fail "$loss: 2 ranks failed"; }
  grep -q "2 ranks" "$WORK/two-$loss.log" || [ "$loss" = kto ] || fail "$loss: the log does not name the ranks"
  [ "$(grep -c '"loss"' "$WORK/two-$loss/metrics.jsonl")" -eq 5 ] || fail "$loss: metrics.jsonl is not one row per step (one writer)"
  same_csv "$WORK/one-$loss/metrics.csv" "$WORK/two-$loss/metrics.csv" || fail "$loss: metrics differ"
  [ "$loss" != aot ] || grep -q '"eval_loss"' "$WORK/two-$loss/metrics.jsonl" || fail "aot: no eval_loss on 2 ranks"
  logps_csv "$WORK/one-$loss/final" > "$WORK/one-$loss.logps"
  logps_csv "$WORK/two-$loss/final" > "$WORK/two-$loss.logps"
  [ -s "$WORK/one-$loss.logps" ] || fail "$loss: no log-probs of the final model"
  same_csv "$WORK/one-$loss.logps" "$WORK/two-$loss.logps" || fail "$loss: final models differ"
done
echo "mpi (sigmoid, aot, kto equal one process): ok"

# the gradient all-reduce after backward (training.overlap_reduce=false) gives the overlapped run's bytes
"${MPIRUN[@]}" "$PREFOPT" train "${base[@]}" --set 'loss.type=["sigmoid"]' --set training.overlap_reduce=false \
  --set output.dir="$WORK/blocking" 2> "$WORK/blocking.log" || { cat "$WORK/blocking.log"; fail "overlap_reduce=false on 2 ranks"; }
cmp "$WORK/two-sigmoid/metrics.jsonl" "$WORK/blocking/metrics.jsonl" || fail "overlap_reduce=false: the metrics differ from the overlapped run"
cmp "$WORK/two-sigmoid/final/model.safetensors" "$WORK/blocking/final/model.safetensors" \
  || fail "overlap_reduce=false: the final weights differ from the overlapped run"
echo "mpi (overlapped all-reduce = the one after backward, bit for bit): ok"

# precomputed reference: the 2-rank cache file is the 1-process one; then the run resumes on 2 ranks
pre=("${base[@]}" --set reference.strategy=precomputed --set training.save_steps=2)
"$PREFOPT" train "${pre[@]}" --set output.dir="$WORK/pre1" --set reference.cache_dir="$WORK/cache1" 2> "$WORK/pre1.log" \
  || { cat "$WORK/pre1.log"; fail "precomputed, one process"; }
"${MPIRUN[@]}" "$PREFOPT" train "${pre[@]}" --set output.dir="$WORK/pre2" --set reference.cache_dir="$WORK/cache2" 2> "$WORK/pre2.log" \
  || { cat "$WORK/pre2.log"; fail "precomputed, 2 ranks"; }
cmp "$WORK/cache1/"ref-*.jsonl "$WORK/cache2/"ref-*.jsonl || fail "the 2-rank reference cache differs from the 1-process one"
same_csv "$WORK/pre1/metrics.csv" "$WORK/pre2/metrics.csv" || fail "precomputed: metrics differ"
rm -rf "$WORK/pre2/final" "$WORK/pre2/checkpoint-5" && head -4 "$WORK/pre2/metrics.csv" > "$WORK/pre2.csv" && cp "$WORK/pre2.csv" "$WORK/pre2/metrics.csv"
"${MPIRUN[@]}" "$PREFOPT" train "${pre[@]}" --set output.dir="$WORK/pre2" --set reference.cache_dir="$WORK/cache2" \
  --set training.resume=true 2> "$WORK/pre2r.log" || { cat "$WORK/pre2r.log"; fail "resume on 2 ranks"; }
grep -q "resumed from .*checkpoint-4" "$WORK/pre2r.log" || fail "did not resume from checkpoint-4: $(cat "$WORK/pre2r.log")"
same_csv "$WORK/pre1/metrics.csv" "$WORK/pre2/metrics.csv" || fail "resumed on 2 ranks: metrics differ"
echo "mpi (reference cache, resume): ok"

# ZeRO-1: the same run; its checkpoints hold the whole optimizer state (gathered), so a ZeRO-1
# checkpoint resumes on 2 ranks with ZeRO-1 and in one process alike
zero=("${base[@]}" --set training.zero=1 --set training.save_steps=2)
"${MPIRUN[@]}" "$PREFOPT" train "${zero[@]}" --set output.dir="$WORK/zero" 2> "$WORK/zero.log" \
  || { cat "$WORK/zero.log"; fail "ZeRO-1 on 2 ranks"; }
grep "ZeRO-1: optimizer state" "$WORK/zero.log" || fail "the log does not report the ZeRO-1 optimizer state"
same_csv "$WORK/one-sigmoid/metrics.csv" "$WORK/zero/metrics.csv" || fail "ZeRO-1: metrics differ"
logps_csv "$WORK/zero/final" > "$WORK/zero.logps"
same_csv "$WORK/one-sigmoid.logps" "$WORK/zero.logps" || fail "ZeRO-1: final models differ"
for ranks in 2 1; do
  rm -rf "$WORK/zero$ranks" && cp -r "$WORK/zero" "$WORK/zero$ranks" && rm -rf "$WORK/zero$ranks/checkpoint-5" "$WORK/zero$ranks/final"
  if [ "$ranks" = 2 ]; then launch=("${MPIRUN[@]}"); else launch=(); fi
  "${launch[@]}" "$PREFOPT" train "${zero[@]}" --set output.dir="$WORK/zero$ranks" --set training.resume=true 2> "$WORK/zero$ranks.log" \
    || { cat "$WORK/zero$ranks.log"; fail "resuming the ZeRO-1 checkpoint on $ranks rank(s)"; }
  grep -q "resumed from .*checkpoint-4" "$WORK/zero$ranks.log" || fail "ZeRO-1, $ranks rank(s): did not resume from checkpoint-4"
  same_csv "$WORK/one-sigmoid/metrics.csv" "$WORK/zero$ranks/metrics.csv" || fail "ZeRO-1 resumed on $ranks rank(s): metrics differ"
done
echo "mpi (ZeRO-1, its checkpoints): ok"

# set-ups that cannot work
expect_fail "does not split over 2 ranks" "${MPIRUN[@]}" "$PREFOPT" train "${base[@]}" --set training.batch_size=3 \
  --set output.dir="$WORK/bad"
expect_fail "config (run.json with --set): differs between ranks" mpirun -np 1 "$PREFOPT" train "${base[@]}" \
  --set output.dir="$WORK/bad" : -np 1 "$PREFOPT" train "${base[@]}" --set output.dir="$WORK/bad" --set loss.beta=0.2
echo "mpi (errors): ok"

# A killed rank, then resume: rank 1 SIGKILLs itself after step 3 (PREFOPT_FAULT_KILL, train/fault.hpp;
# checkpoint-2 exists by then); mpirun must end the job with an error within 30 s; resuming on 2
# ranks from checkpoint-2 must give the uninterrupted 2-rank run: the same final weights (bytes of
# the safetensors) and the same metrics, every row.
kr=("${base[@]}" --set training.max_steps=6 --set training.save_steps=2)
"${MPIRUN[@]}" "$PREFOPT" train "${kr[@]}" --set output.dir="$WORK/straight" 2> "$WORK/straight.log" \
  || { cat "$WORK/straight.log"; fail "the uninterrupted 2-rank run failed"; }
expect_fail "PREFOPT_FAULT_KILL" env PREFOPT_FAULT_KILL="rank=one" "$PREFOPT" train "${kr[@]}" --set output.dir="$WORK/bad"
if PREFOPT_FAULT_KILL="rank=1,step=3" "${MPIRUN[@]}" "$PREFOPT" train "${kr[@]}" --set output.dir="$WORK/killed" \
     > "$WORK/killed.out" 2> "$WORK/killed.log"; then
  fail "the job did not fail when rank 1 was killed"
fi
t1=$(date +%s.%N)
t0=$(sed -nE 's/.*rank 1 kills itself after step 3 at ([0-9.]+) s.*/\1/p' "$WORK/killed.log")
[ -n "$t0" ] || { cat "$WORK/killed.log"; fail "rank 1 was not killed by the fault injection"; }
echo "mpi (killed rank): job ended $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s after rank 1 killed itself"
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 30) }' || fail "the job took 30 s or more to end after a rank died"
[ -d "$WORK/killed/checkpoint-2" ] || fail "no checkpoint-2 before the kill"
[ ! -e "$WORK/killed/final" ] || fail "a killed run wrote final/"
"${MPIRUN[@]}" "$PREFOPT" train "${kr[@]}" --set output.dir="$WORK/killed" --set training.resume=true 2> "$WORK/resumed.log" \
  || { cat "$WORK/resumed.log"; fail "resuming the killed run on 2 ranks failed"; }
grep -q "resumed from .*checkpoint-2" "$WORK/resumed.log" || fail "did not resume from checkpoint-2: $(cat "$WORK/resumed.log")"
cmp "$WORK/straight/final/model.safetensors" "$WORK/killed/final/model.safetensors" \
  || fail "killed + resumed: the final weights differ from the uninterrupted run"
cmp "$WORK/straight/metrics.jsonl" "$WORK/killed/metrics.jsonl" || fail "killed + resumed: the metrics differ from the uninterrupted run"
echo "mpi (killed rank, resumed = uninterrupted): ok"
