#!/usr/bin/env bash
# prefopt as a dependency: installed and found with find_package(prefopt CONFIG COMPONENTS eigen),
# and added from the source tree with add_subdirectory. $1 = build dir, $2 = source dir, $3 = scratch.
set -euo pipefail
BUILD=$1 SRC=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK"
cmake --install "$BUILD" --prefix "$WORK/prefix" > "$WORK/install.log"
cmake -S "$SRC/tests/install/consumer" -B "$WORK/pkg" -DPREFOPT_FROM=package -DCMAKE_PREFIX_PATH="$WORK/prefix" > "$WORK/pkg.log"
cmake --build "$WORK/pkg" > "$WORK/pkg-build.log"
"$WORK/pkg/consumer"
if [ -x "$WORK/pkg/consumer_cuda" ]; then "$WORK/pkg/consumer_cuda"; fi
cmake -S "$SRC/tests/install/consumer" -B "$WORK/sub" -DPREFOPT_FROM=subdirectory -DPREFOPT_SOURCE="$SRC" > "$WORK/sub.log"
cmake --build "$WORK/sub" --target consumer > "$WORK/sub-build.log"
"$WORK/sub/consumer"
# from the subdirectory, prefopt's own tests and tools stay off
if grep -q "test_losses" "$WORK/sub/prefopt/tests/CTestTestfile.cmake" 2>/dev/null; then echo "tests built as a subproject"; exit 1; fi
echo "install: ok"
