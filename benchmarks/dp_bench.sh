#!/usr/bin/env bash
# Data parallel on one machine: `prefopt train` with 1 rank × 2 threads against `mpirun -np 2`
# ranks × 1 thread, GPT-2-small shape (dp_model.py), the same config and global batch; prints the
# time per step (the runner's own, after the reference precompute) and the peak resident memory of
# each process (GNU time); then 2 ranks × 1 thread again with ZeRO-1 (training.zero=1).
# Usage: dp_bench.sh PREFOPT_BINARY WORK_DIR [STEPS]
set -euo pipefail
PREFOPT=$1 WORK=$2 STEPS=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK"
[ -f "$WORK/model/model.safetensors" ] || python3 "$here/dp_model.py" "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
args=(--set model="$WORK/model" --set data.train="$WORK/pairs.jsonl" --set training.batch_size=4
      --set training.max_steps="$STEPS" --set training.logging_steps=1 --set reference.strategy=precomputed
      --set optimizer.learning_rate=1e-5 --set output.tensorboard=false --set output.overwrite=true)
run() {  # name, threads, launcher...
  local name=$1 threads=$2; shift 2
  "$@" /usr/bin/time -f "peak RSS %M KiB (process), %e s" "$PREFOPT" train "${args[@]}" --set training.threads="$threads" \
    --set output.dir="$WORK/$name" --set reference.cache_dir="$WORK/cache-$name" > "$WORK/$name.log" 2>&1
  echo "$name: $(grep -o '[0-9]* steps in [0-9.]* s' "$WORK/$name.log") ($(grep -c 'peak RSS' "$WORK/$name.log") process(es))"
  grep 'peak RSS' "$WORK/$name.log" | sed 's/^/  /'
}
run "1x2" 2 env
run "2x1" 1 mpirun -np 2 --oversubscribe
args+=(--set training.zero=1)
run "2x1-zero1" 1 mpirun -np 2 --oversubscribe
