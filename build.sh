#!/usr/bin/env bash
# prefopt's two set-up commands on a fresh Debian 12 machine:
#   ./build.sh demo   install what is missing, build, and run the main job (a training run on the bundled default)
#   ./build.sh test   install what is missing, build, and run every test
# Other verbs: deps (install only), build (configure + build only).
# Environment: BUILD_DIR (default build), JOBS (default: number of cores), CXX, PREFOPT_CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")"

verb=${1:-}
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

# OpenBLAS built for OpenMP: prefopt's CPU backends own threading through OpenMP, and this build
# of OpenBLAS runs single-threaded inside their parallel regions instead of oversubscribing.
packages=(build-essential cmake ninja-build pkg-config libeigen3-dev libxtensor-dev libxtensor-blas-dev
          libboost-dev doctest-dev nlohmann-json3-dev libopenblas-openmp-dev
          zlib1g-dev libonig-dev libutf8proc-dev)

deps() {
  local missing=()
  for p in "${packages[@]}"; do
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
  *) echo "usage: ./build.sh demo|test|deps|build" >&2; exit 2 ;;
esac
