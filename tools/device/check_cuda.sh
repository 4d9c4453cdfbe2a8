#!/usr/bin/env bash
# tools/device/check_cuda.sh — build and run prefopt's GPU tests (ctest -L cuda) on a machine with
# an NVIDIA GPU, nvcc and CMake, but without Debian's -dev packages: the header-only dependencies
# come from .device/ (tools/device/prepare.sh, run beforehand where they are installed).
# Writes $OUT/summary.txt (GPU, toolkit, per-phase times, each test's result) and the logs
# configure.log, build.log, ctest.log; exits with ctest's status (1 when a phase fails).
#   OUT=/path tools/device/check_cuda.sh            (OUT defaults to ./out-cuda)
# Environment: JOBS (default: nproc), CUDA_ARCH (default: the visible GPU's compute capability),
# BUILD_DIR (default: build-device).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/out-cuda}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
BUILD=${BUILD_DIR:-build-device}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
DEV=$ROOT/.device
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
if [ -z "${CUDA_ARCH:-}" ]; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  CUDA_ARCH=${cap:-90}
fi
say "architectures: $CUDA_ARCH, jobs: $JOBS"

start
if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
     -DPREFOPT_ENABLE_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" \
     -DCMAKE_PREFIX_PATH="$DEV" -DBOOST_ROOT="$DEV" -DBoost_NO_BOOST_CMAKE=ON -DBoost_NO_SYSTEM_PATHS=ON \
     -DPREFOPT_BUILD_EXAMPLES=OFF -DPREFOPT_BUILD_TOOLS=OFF -DPREFOPT_BUILD_BENCHMARKS=OFF \
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
start
if ! cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" > "$OUT/build.log" 2>&1; then
  say "FAIL: build ($(took)); errors from build.log:"
  grep -E "error|Error" "$OUT/build.log" | head -40 | tee -a "$SUMMARY"
  exit 1
fi
say "build (${targets[*]}): $(took)"

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
exit "$rc"
