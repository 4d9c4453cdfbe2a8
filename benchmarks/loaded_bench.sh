#!/usr/bin/env bash
# benchmarks/loaded_bench.sh — what another busy process does to a DPO step on a small machine.
#
#   benchmarks/loaded_bench.sh BENCH_EXE MODEL_DIR PAIRS_JSON [STEPS]
#
# Runs prefopt_model_bench (two-row layout, fused head) with 1 and 2 OpenMP threads on the idle
# machine, then the same beside one busy process (a shell loop at the same priority, taking one
# core), and with 2 threads under OMP_WAIT_POLICY=passive (threads that wait sleep instead of
# spinning) and with OMP_PROC_BIND=false / OMP_DYNAMIC=true. Prints a Markdown table: median
# seconds per step over STEPS (default 2) after one warm-up, and the load average before each run.
# MODEL_DIR and PAIRS_JSON: as model_run.py prepares them (out/model_benchmarks/gpt2-small/...).
set -euo pipefail
exe=$1 model=$2 pairs=$3 steps=${4:-2}

row() {  # label threads busy(0|1) env...
  local label=$1 threads=$2 busy=$3
  shift 3
  local pid=""
  if [ "$busy" = 1 ]; then
    bash -c 'while :; do :; done' &
    pid=$!
    sleep 2
  fi
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  local s
  s=$(env OMP_NUM_THREADS="$threads" "$@" "$exe" --model "$model" --pairs "$pairs" --layout two_rows --warmup 1 \
        --steps "$steps" | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["median_s"])')
  [ -n "$pid" ] && kill "$pid" && wait "$pid" 2>/dev/null || true
  printf '| %s | %s | %s | %s | %s |\n' "$label" "$threads" "$([ "$busy" = 1 ] && echo "one busy process" || echo idle)" "$s" "$load"
  sleep 5
}

echo "| run | threads | machine | s / step | load before |"
echo "|---|---|---|---|---|"
row "default" 1 0
row "default" 2 0
row "default" 1 1
row "default" 2 1
row "OMP_WAIT_POLICY=passive" 2 1 OMP_WAIT_POLICY=passive
row "OMP_DYNAMIC=true" 2 1 OMP_DYNAMIC=true
