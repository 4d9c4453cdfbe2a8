#!/usr/bin/env bash
# prefopt's two set-up commands on a fresh Debian 12 machine:
#   ./build.sh demo   install what is missing, build, and run the main job (a training run on the bundled default)
#   ./build.sh test   install what is missing, build, and run every test
# Other verbs: deps (install only), build (configure + build only), and two checks for CI:
#   ./build.sh sanitize   the unit tests of SANITIZE_LABELS with ASan + UBSan (PREFOPT_SANITIZE=ON)
#                         in build-sanitize: only those tests' executables are built, then ctest.
#   ./build.sh fuzz       the libFuzzer targets of tests/fuzz (Clang, PREFOPT_FUZZ=ON) in build-fuzz,
#                         each run for FUZZ_SECONDS from its committed seed corpus; a summary line per
#                         target (execs, cov, corpus, findings); crashing inputs land in fuzz-findings/.
# Environment: BUILD_DIR (default build), JOBS (default: number of cores), CXX, PREFOPT_CMAKE_ARGS;
#   sanitize: SANITIZE_BUILD_DIR (build-sanitize), SANITIZE_LABELS (default below);
#   fuzz: FUZZ_BUILD_DIR (build-fuzz), FUZZ_SECONDS (600 per target), FUZZ_TARGETS (all), FUZZ_SEED (0: a new one each run),
#   FUZZ_TIMEOUT (25 s per input), FUZZ_FINDINGS (fuzz-findings).
set -euo pipefail
cd "$(dirname "$0")"

verb=${1:-}
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

# OpenBLAS built for OpenMP: prefopt's CPU backends own threading through OpenMP, and this build
# of OpenBLAS runs single-threaded inside their parallel regions instead of oversubscribing.
packages=(build-essential cmake ninja-build pkg-config libeigen3-dev libxtensor-dev libxtensor-blas-dev
          libboost-dev doctest-dev nlohmann-json3-dev libopenblas-openmp-dev
          zlib1g-dev libonig-dev libutf8proc-dev libyaml-cpp-dev libopenmpi-dev openmpi-bin libcli11-dev)

# The fuzz verb's extra packages (demo and test never need them): Clang 14, its sanitizer and
# libFuzzer runtimes, and llvm-symbolizer (in llvm-14) for readable stack traces. The sanitize verb
# uses the default compiler (GCC 12 ships ASan and UBSan) and needs nothing more.
fuzz_packages=(clang-14 libclang-rt-14-dev llvm-14)

# Installs whichever of the given packages are missing (default: the build's own list).
deps() {
  local missing=() wanted=("$@")
  ((${#wanted[@]})) || wanted=("${packages[@]}")
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "prefopt: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

build() {
  # shellcheck disable=SC2086
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${PREFOPT_CMAKE_ARGS:-}
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

# What the sanitize verb runs by default: unit-test areas (CTest labels) and single tests
# (area/name) — the parsers and everything that reads user input or files, the trainers, and the
# loop's external-command judge (child processes and pipes). Left out of the default to keep CI
# within its budget: cli (the program itself built with the sanitizers, ~11 CPU-minutes, then its
# end-to-end scripts; every parser it runs has a fuzz target) and the backend/model/loss/loop
# suites (parity tests over two backends). SANITIZE_LABELS=all runs every area.
default_sanitize_labels="core io data optim train loop/command_judge"

sanitize() {
  local dir=${SANITIZE_BUILD_DIR:-build-sanitize} labels=${SANITIZE_LABELS:-$default_sanitize_labels}
  [ "$labels" = all ] && labels="core io data optim train cli losses models backends loop comm"
  # Without the CUDA backend: its runtime does not run under ASan, and its GPU tests skip here anyway.
  # shellcheck disable=SC2086
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPREFOPT_SANITIZE=ON -DPREFOPT_ENABLE_CUDA=OFF \
        -DPREFOPT_BUILD_EXAMPLES=OFF -DPREFOPT_BUILD_BENCHMARKS=OFF ${PREFOPT_CMAKE_ARGS:-}
  local targets=() regex="" single="" area f name
  for area in $labels; do
    if [[ $area == */* ]]; then  # one test: loop/command_judge -> test_loop_command_judge
      single+="${single:+|}$area"
      targets+=("test_${area//\//_}")
      continue
    fi
    regex+="${regex:+|}$area"
    if [ "$area" = cli ]; then targets+=(prefopt_cli); continue; fi
    # Every test of the area, in subfolders too (tests/data/jinja/template_test.cpp -> test_data_jinja_template).
    while IFS= read -r f; do
      name=${f#tests/}
      name=${name%_test.cpp}
      targets+=("test_${name//\//_}")
    done < <(find tests/"$area" -name '*_test.cpp' | sort)
  done
  cmake --build "$dir" -j "$JOBS" --target "${targets[@]}"
  # Any report fails its test: UBSan stops at the first finding, ASan checks leaks at exit.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  if [ -n "$regex" ]; then
    ctest --test-dir "$dir" -j "$JOBS" -L "^($regex)\$" -LE '^mpi$' --output-on-failure
  fi
  if [ -n "$single" ]; then
    ctest --test-dir "$dir" -j "$JOBS" -R "^($single)\$" -LE '^mpi$' --output-on-failure
  fi
}

fuzz() {
  local dir=${FUZZ_BUILD_DIR:-build-fuzz} seconds=${FUZZ_SECONDS:-600} findings=${FUZZ_FINDINGS:-fuzz-findings}
  CXX=${FUZZ_CXX:-clang++-14} cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPREFOPT_FUZZ=ON
  local targets=${FUZZ_TARGETS:-} t
  if [ -z "$targets" ]; then
    for t in tests/fuzz/*_fuzz.cpp; do targets+="${targets:+ }$(basename "$t" _fuzz.cpp)"; done
  fi
  local exe=()
  for t in $targets; do exe+=("fuzz_$t"); done
  cmake --build "$dir" -j "$JOBS" --target "${exe[@]}"
  local failed=0 summary=()
  for t in $targets; do
    local work="$dir/corpus/$t" out="$findings/$t" log="$dir/fuzz-$t.log"
    mkdir -p "$work" "$out"
    local before after start=$SECONDS rc=0
    # Findings: crash-, leak-, timeout- and oom- files; slow-unit- files (an input over 10 s) are
    # listed but do not fail the run.
    before=$(find "$out" -type f ! -name 'slow-unit-*' | wc -l)
    local slow_before slow
    slow_before=$(find "$out" -type f -name 'slow-unit-*' | wc -l)
    echo "prefopt fuzz: $t for ${seconds}s (corpus tests/fuzz/corpus/$t, findings in $out/)"
    # The working corpus comes first (new inputs are written there); the committed seeds second.
    "$dir/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-25}" -rss_limit_mb=2048 \
      -seed="${FUZZ_SEED:-0}" \
      -artifact_prefix="$out/" -print_final_stats=1 "$work" "tests/fuzz/corpus/$t" > "$log" 2>&1 || rc=$?
    after=$(find "$out" -type f ! -name 'slow-unit-*' | wc -l)
    slow=$(($(find "$out" -type f -name 'slow-unit-*' | wc -l) - slow_before))
    local cov execs corpus
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    corpus=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
    summary+=("$(printf '%-20s %6ss  execs %-9s cov %-6s corpus %-12s findings %s  slow units %s' "$t" \
                 "$((SECONDS - start))" "${execs:-?}" "${cov:-?}" "${corpus:-?}" "$((after - before))" "$slow")")
    if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
      failed=1
      echo "prefopt fuzz: $t FAILED (exit $rc); its log: $log" >&2
      grep -E 'ERROR|runtime error|SUMMARY|property violated|terminate called|what\(\)' "$log" | head -20 >&2 || true
    fi
  done
  printf '%s\n' "prefopt fuzz summary:" "${summary[@]}"
  return "$failed"
}

case "$verb" in
  deps) deps ;;
  build) deps; build ;;
  test)
    deps; build
    ctest --test-dir "$BUILD_DIR" -j "$JOBS" --output-on-failure
    ;;
  demo)
    deps; build
    if [ -x "$BUILD_DIR/tools/prefopt/prefopt" ]; then
      "$BUILD_DIR/tools/prefopt/prefopt" demo --out "${DEMO_OUT:-demo-out}"
    else
      "$BUILD_DIR/examples/example_01_dpo_log_linear"
    fi
    ;;
  sanitize) deps; sanitize ;;
  fuzz) deps "${packages[@]}" "${fuzz_packages[@]}"; fuzz ;;
  *) echo "usage: ./build.sh demo|test|deps|build|sanitize|fuzz" >&2; exit 2 ;;
esac
