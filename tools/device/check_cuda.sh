#!/usr/bin/env bash
# tools/device/check_cuda.sh — build and run prefopt's GPU tests (ctest -L cuda) on a machine with
# an NVIDIA GPU, nvcc and CMake, but without Debian's -dev packages: the header-only dependencies
# come from .device/ (tools/device/prepare.sh, run beforehand where they are installed).
# Then the GPU benchmark (benchmarks/README.md, "GPU"): prefopt_model_bench with the cuda backend
# against PyTorch, TRL 1.16 and PEFT in bf16 (benchmarks/model_run.py --gpu), in the time the
# script has left of its budget; its table is appended to summary.txt (gpu_bench.md, gpu_bench.json
# beside it). TRL and its datasets dependency come from .device/wheels when python3 lacks them.
# Writes $OUT/summary.txt (GPU, toolkit, per-phase times, each test's result) and the logs
# configure.log, build.log, ctest.log, bench_build.log, bench.log; exits with ctest's status (1
# when a phase fails, the benchmark's check included).
#   OUT=/path tools/device/check_cuda.sh            (OUT defaults to ./out-cuda)
# Environment: JOBS (default: nproc), CUDA_ARCH (default: the visible GPU's compute capability),
# BUILD_DIR (default: build-device), CHECK_BUDGET_S (default 480: the whole script's seconds; the
# benchmark gets what is left), PREFOPT_GPU_BENCH=0 (skip the benchmark),
# PREFOPT_DEVICE_DRY_RUN=1 (a machine without a GPU: no GPU tests; builds prefopt_model_bench and
# runs the benchmark's rows at tiny sizes on the CPU: checks this script and the harness).
set -uo pipefail
SCRIPT_START=$(date +%s)
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/out-cuda}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
BUILD=${BUILD_DIR:-build-device}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
DEV=$ROOT/.device
BUDGET=${CHECK_BUDGET_S:-480}
DRY=${PREFOPT_DEVICE_DRY_RUN:-0}
BENCH=${PREFOPT_GPU_BENCH:-1}
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
phase_start=0
start() { phase_start=$(date +%s); }
took() { echo "$(( $(date +%s) - phase_start ))s"; }

if [ ! -f "$DEV/include/doctest/doctest.h" ]; then
  say "FAIL: $DEV is missing: run tools/device/prepare.sh on a machine with the -dev packages and carry .device/"
  exit 1
fi
NVCC=${CUDACXX:-$(command -v nvcc || true)}
[ -n "$NVCC" ] || NVCC=/usr/local/cuda/bin/nvcc
if [ ! -x "$NVCC" ]; then
  say "FAIL: no nvcc (PATH, \$CUDACXX, /usr/local/cuda/bin)"
  exit 1
fi
say "date: $(date -u +%FT%TZ)"
say "gpu: $(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
say "nvcc: $("$NVCC" --version | tail -1)"
say "cmake: $(cmake --version | head -1)"
say "c++: $(c++ --version | head -1)"
[ "$DRY" = 1 ] && say "dry run (PREFOPT_DEVICE_DRY_RUN=1): no GPU tests; the benchmark's rows at tiny sizes on the CPU"
if [ -z "${CUDA_ARCH:-}" ]; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  CUDA_ARCH=${cap:-90}
fi
say "architectures: $CUDA_ARCH, jobs: $JOBS"

start
if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
     -DPREFOPT_ENABLE_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" \
     -DCMAKE_PREFIX_PATH="$DEV" -DBOOST_ROOT="$DEV" -DBoost_NO_BOOST_CMAKE=ON -DBoost_NO_SYSTEM_PATHS=ON \
     -DPREFOPT_BUILD_EXAMPLES=OFF -DPREFOPT_BUILD_TOOLS=OFF -DPREFOPT_BUILD_BENCHMARKS=ON \
     > "$OUT/configure.log" 2>&1; then
  say "FAIL: configure ($(took)); tail of configure.log:"
  tail -30 "$OUT/configure.log" | tee -a "$SUMMARY"
  exit 1
fi
say "configure: $(took)"

# Only the GPU test executables (and what they link): tests/cuda/<name>_test.{cpp,cu} → test_cuda_<name>.
targets=()
for f in "$ROOT"/tests/cuda/*_test.cpp "$ROOT"/tests/cuda/*_test.cu; do
  [ -e "$f" ] || continue
  n=$(basename "$f")
  targets+=("test_cuda_${n%_test.*}")
done
[ "$DRY" = 1 ] && targets=()
if [ "${#targets[@]}" -gt 0 ]; then
  start
  if ! cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" > "$OUT/build.log" 2>&1; then
    say "FAIL: build ($(took)); errors from build.log:"
    grep -E "error|Error" "$OUT/build.log" | head -40 | tee -a "$SUMMARY"
    exit 1
  fi
  say "build (${targets[*]}): $(took)"
fi

# The benchmark's program builds on the CPUs while the GPU tests run.
bench_pid=
if [ "$BENCH" = 1 ]; then
  bench_start=$(date +%s)
  cmake --build "$BUILD" -j "$JOBS" --target prefopt_model_bench > "$OUT/bench_build.log" 2>&1 &
  bench_pid=$!
fi

rc=0
if [ "$DRY" != 1 ]; then
  start
  ctest --test-dir "$BUILD" -L cuda --output-on-failure --timeout 400 > "$OUT/ctest.log" 2>&1
  rc=$?
  say "ctest -L cuda: $(took), exit $rc"
  grep -E "^ *[0-9]+/[0-9]+ Test|tests passed|tests failed|Skipped|\*\*\*" "$OUT/ctest.log" | tee -a "$SUMMARY"
  # A suite that skipped (exit 77) saw no GPU: on this machine that is a failure.
  if grep -q "Not Run\|Skipped" "$OUT/ctest.log"; then
    say "FAIL: a GPU test skipped itself: no CUDA device visible to the tests"
    [ "$rc" -ne 0 ] || rc=1
  fi
fi

[ -n "$bench_pid" ] || exit "$rc"
if ! wait "$bench_pid"; then
  say "FAIL: build of prefopt_model_bench ($(( $(date +%s) - bench_start ))s); errors from bench_build.log:"
  grep -E "error|Error" "$OUT/bench_build.log" | head -40 | tee -a "$SUMMARY"
  exit 1
fi
say "build (prefopt_model_bench): $(( $(date +%s) - bench_start ))s from its start (beside ctest)"

# Python: TRL 1.16 and the packages it needs that the GPU machine's python3 lacks, from .device/wheels.
PY=${PYTHON:-python3}
if ! "$PY" -c "import trl, datasets, peft, transformers" > /dev/null 2>&1 && ls "$DEV"/wheels/*.whl > /dev/null 2>&1; then
  site=$(mktemp -d)
  if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$DEV"/wheels/*.whl > "$OUT/bench.log" 2>&1; then
    say "FAIL: installing .device/wheels (bench.log)"
    exit 1
  fi
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
elif ! "$PY" -c "import trl" > /dev/null 2>&1; then
  say "benchmark: $PY has no trl and .device/wheels holds none (tools/device/prepare.sh): the PyTorch rows will fail"
fi
left=$(( BUDGET - ($(date +%s) - SCRIPT_START) - 15 ))
if [ "$left" -lt 60 ]; then
  say "benchmark: not run, ${left}s left of the ${BUDGET}s budget"
  exit "$rc"
fi
start
rm -f "$OUT/gpu_bench.md" "$OUT/gpu_bench.json"
if [ "$DRY" = 1 ]; then
  bench_args=(--tiny --gpu-device cpu)
else
  bench_args=()
fi
PYTHONUNBUFFERED=1 "$PY" benchmarks/model_run.py --gpu ${bench_args[@]+"${bench_args[@]}"} --rounds 1 --steps 3 --budget-s "$left" \
  --bench-exe "$BUILD/benchmarks/prefopt_model_bench" --workdir "$BUILD/model_benchmarks" --out "$OUT" >> "$OUT/bench.log" 2>&1
brc=$?
say "benchmark (model_run.py --gpu, budget ${left}s): $(took), exit $brc"
if [ -f "$OUT/gpu_bench.md" ]; then
  cat "$OUT/gpu_bench.md" >> "$SUMMARY"
else
  tail -30 "$OUT/bench.log" | tee -a "$SUMMARY"
fi
[ "$brc" -eq 0 ] || [ "$rc" -ne 0 ] || rc=1
say "total: $(( $(date +%s) - SCRIPT_START ))s"
exit "$rc"
