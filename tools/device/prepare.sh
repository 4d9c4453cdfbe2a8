#!/usr/bin/env bash
# tools/device/prepare.sh — gather the header-only dependencies of the GPU tests into .device/ (a
# git-ignored install prefix) so that tools/device/check_cuda.sh builds on a GPU machine that has
# nvcc and CMake but none of Debian's -dev packages. Run it on a machine that has them
# (./build.sh deps); carry .device/ with the working tree.
#   .device/include/{eigen3/Eigen, boost/..., nlohmann, doctest}   headers
#   .device/share/eigen3/cmake, .device/share/cmake/nlohmann_json, .device/lib/cmake/doctest
#   .device/include/{zlib,zconf,oniguruma,utf8proc}.h, .device/lib/lib{z,onig,utf8proc,yaml-cpp}.so*
#   .device/include/yaml-cpp/                                      (YAML configs: CMakeLists.txt, prefopt::yaml)
#   .device/wheels/{trl,datasets,dill,multiprocess}-*.whl           (the GPU benchmark's PyTorch side: the GPU
#                                                                   machine's python3 has torch, transformers and
#                                                                   peft but not TRL; pure-Python wheels for
#                                                                   CPython 3.12, fetched with pip download;
#                                                                   PREFOPT_DEVICE_WHEELS=0 skips them)
# Boost: Hana (without its ext/ adapters for Fusion/MPL, which prefopt never includes), Boost.Config
# (CMake's FindBoost looks for boost/config.hpp) and the Boost headers a compile of prefopt's
# headers actually opens (g++ -M), nothing else.
# Prints the size; fails above 60 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${PREFOPT_DEVICE_SYSROOT:-/usr}
DEV=.device
rm -rf "$DEV"
mkdir -p "$DEV/include/boost" "$DEV/include/eigen3" "$DEV/share/eigen3" "$DEV/share/cmake" "$DEV/lib/cmake"

need() { [ -e "$1" ] || { echo "prepare.sh: $1 not found (install it: ./build.sh deps)" >&2; exit 1; }; }
need "$SRC/include/eigen3/Eigen/Core"
need "$SRC/include/boost/hana.hpp"
need "$SRC/include/nlohmann/json.hpp"
need "$SRC/include/doctest/doctest.h"

# Eigen: the Eigen/ module tree and its CMake package (relocatable: paths relative to the file).
cp -r "$SRC/include/eigen3/Eigen" "$SRC/include/eigen3/signature_of_eigen3_matrix_library" "$DEV/include/eigen3/"
cp -r "$SRC/share/eigen3/cmake" "$DEV/share/eigen3/"
# nlohmann-json and its CMake package (relocatable).
cp -r "$SRC/include/nlohmann" "$DEV/include/"
cp -r "$SRC/share/cmake/nlohmann_json" "$DEV/share/cmake/"
# doctest; Debian's doctestTargets.cmake names /usr: made relative to the package folder.
cp -r "$SRC/include/doctest" "$DEV/include/"
cp -r "$SRC/lib/cmake/doctest" "$DEV/lib/cmake/"
# shellcheck disable=SC2016  # ${CMAKE_CURRENT_LIST_DIR} is CMake's, written literally
sed -i 's|^set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
  "$DEV/lib/cmake/doctest/doctestTargets.cmake"
grep -q 'CMAKE_CURRENT_LIST_DIR}/../../..' "$DEV/lib/cmake/doctest/doctestTargets.cmake" ||
  { echo "prepare.sh: could not relocate doctestTargets.cmake" >&2; exit 1; }

# Boost: Hana without ext/, version.hpp (FindBoost reads it), and every other Boost header that
# compiling prefopt's headers opens.
cp "$SRC/include/boost/hana.hpp" "$SRC/include/boost/version.hpp" "$SRC/include/boost/config.hpp" "$DEV/include/boost/"
cp -r "$SRC/include/boost/config" "$DEV/include/boost/"  # FindBoost looks for boost/config.hpp
(cd "$SRC/include/boost" && find hana -path hana/ext -prune -o -type f -print) | while read -r f; do
  mkdir -p "$DEV/include/boost/$(dirname "$f")"
  cp "$SRC/include/boost/$f" "$DEV/include/boost/$f"
done
probe=$(mktemp --suffix=.cpp)
trap 'rm -f "$probe"' EXIT
{
  for h in include/prefopt/losses.hpp include/prefopt/losses/any_loss.hpp include/prefopt/models/*.hpp \
           include/prefopt/train/*.hpp include/prefopt/optim/*.hpp include/prefopt/io/*.hpp; do
    echo "#include \"${h#include/}\""
  done
} > "$probe"
g++ -std=c++20 -M -Iinclude -I"$SRC/include/eigen3" "$probe" | sed 's/\\$//' | tr -s ' ' '\n' | grep "^$SRC/include/boost/" | sort -u |
  while read -r f; do
    rel=${f#"$SRC/include/"}
    mkdir -p "$DEV/include/$(dirname "$rel")"
    cp "$f" "$DEV/include/$rel"
  done

# The data path's C libraries (zlib, Oniguruma, utf8proc; cmake/prefoptDependencies.cmake): headers
# and shared libraries (under the linker name and the soname the tests load at run time), found on
# the GPU machine through CMAKE_PREFIX_PATH without pkg-config.
LIBDIR=${PREFOPT_DEVICE_LIBDIR:-$SRC/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)}
mkdir -p "$DEV/lib"
for h in zlib.h zconf.h oniguruma.h utf8proc.h; do
  need "$SRC/include/$h"
  cp "$SRC/include/$h" "$DEV/include/"
done
need "$SRC/include/yaml-cpp/yaml.h"
cp -r "$SRC/include/yaml-cpp" "$DEV/include/"
for l in libz libonig libutf8proc libyaml-cpp; do
  need "$LIBDIR/$l.so"
  cp -L "$LIBDIR/$l.so" "$DEV/lib/$l.so"
  soname=$(objdump -p "$LIBDIR/$l.so" | awk '$1 == "SONAME" {print $2}')
  [ -z "$soname" ] || cp -L "$LIBDIR/$l.so" "$DEV/lib/$soname"
done

# The GPU benchmark's Python packages (benchmarks/README.md, "GPU"): TRL 1.16 and what it imports
# that the GPU machine lacks. --no-deps: the rest (torch, transformers, peft, accelerate, pyarrow,
# pandas, ...) is there.
if [ "${PREFOPT_DEVICE_WHEELS:-1}" != 0 ]; then
  read -r -a pip <<< "${PREFOPT_DEVICE_PIP:-python3 -m pip}"
  mkdir -p "$DEV/wheels"
  "${pip[@]}" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d "$DEV/wheels" \
    trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 ||
    { echo "prepare.sh: pip download of the benchmark's wheels failed (PREFOPT_DEVICE_WHEELS=0 skips them)" >&2; exit 1; }
fi

size_kib=$(du -sk "$DEV" | cut -f1)
echo "prepare.sh: $DEV holds $((size_kib / 1024)) MiB ($(find "$DEV" -type f | wc -l) files)"
if [ "$size_kib" -gt $((60 * 1024)) ]; then
  echo "prepare.sh: $DEV is larger than 60 MiB" >&2
  exit 1
fi
