#!/usr/bin/env bash
# prefopt --help / --version, `--help` of every command (each option named with a description),
# and malformed command lines: exit status 2 and a message naming the option.
source "$(dirname "$0")/common.sh"

version=$(sed -n 's/^project(prefopt VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
[ -n "$version" ] || fail "no project version in CMakeLists.txt"
first=$("$PREFOPT" --version | head -n 1)
[ "$first" = "prefopt $version" ] || fail "--version printed '$first', not 'prefopt $version'"

# The BLAS line of --version (backends/eigen/openblas_kernels.hpp). With OpenBLAS's pre-AVX2 kernels
# forced and the switch kept off, a CPU with AVX2 is told what it could run; without it, prefopt
# restarts itself with OPENBLAS_CORETYPE set, so the kernels it runs are never the pre-AVX2 ones there.
blas=$("$PREFOPT" --version | sed -n 2p)
case "$blas" in "BLAS: "*) ;; *) fail "--version's second line is '$blas', not the BLAS kernels" ;; esac
if [ "${blas#BLAS: OpenBLAS}" != "$blas" ]; then
  forced=$(OPENBLAS_CORETYPE=Prescott "$PREFOPT" --version | sed -n 2p)
  case "$forced" in *"Prescott kernels (OPENBLAS_CORETYPE=Prescott)"*) ;; *) fail "forced Prescott kernels: '$forced'" ;; esac
  if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    case "$forced" in *"this CPU runs "*) ;; *) fail "no better kernels named for an AVX2 CPU: '$forced'" ;; esac
    case "$blas" in *"Prescott kernels"*|*"Core2 kernels"*|*"Nehalem kernels"*|*"Unknown kernels"*|*"this CPU runs"*)
      fail "prefopt runs pre-AVX2 kernels on an AVX2 CPU: '$blas'" ;; esac
  fi
fi

"$PREFOPT" --help > "$WORK/top.txt" || fail "prefopt --help exited non-zero"
for c in train eval logps generate reward demo --version; do
  grep -q -- "$c" "$WORK/top.txt" || fail "prefopt --help does not name '$c'"
done

# help_of "command words" option...: --help exits 0 and lists each option with a description
help_of() {
  local words=$1; shift
  local out
  # shellcheck disable=SC2086
  out=$("$PREFOPT" $words --help) || fail "prefopt $words --help exited non-zero"
  for o in "$@" help; do
    # the option, then on the same line some text after it: its one-line description
    grep -Eq -- "--$o( [A-Z=.]+)? +[^ ]" <<<"$out" || fail "prefopt $words --help: no described option --$o in: $out"
  done
}
help_of train config set data print-config
help_of eval config set data print-config
help_of logps model adapter data out batch-size prefix-sharing strict tokenizer chat-template max-length
help_of generate model adapter no-adapter data out n max-new-tokens temperature top-k top-p min-p repetition-penalty \
  stop eos-id seed batch-size no-cache tokenizer chat-template
help_of "reward train" config set
help_of "reward score" model data out batch-size strict tokenizer chat-template max-length
help_of demo out seed quick
"$PREFOPT" reward --help | grep -q "reward train" || fail "prefopt reward --help does not name 'reward train'"

# usage errors: status 2, the option named
expect_status() {  # expect_status STATUS "text in the message" command...
  local want_rc=$1 want=$2; shift 2
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" -eq "$want_rc" ] || fail "exit status $rc, not $want_rc: $*: $out"
  grep -qF -- "$want" <<<"$out" || fail "message lacks '$want': $out"
}
expect_status 2 "--frobnicate: unknown option" "$PREFOPT" logps --frobnicate
expect_status 2 "--out: needs a value" "$PREFOPT" logps --model m --data d --out
expect_status 2 "--strict: takes no value" "$PREFOPT" logps --strict=yes
expect_status 2 "--nope: unknown option" "$PREFOPT" reward score --nope 1
expect_status 2 "unknown command 'fly'" "$PREFOPT" fly
expect_status 1 "--out: is required" "$PREFOPT" logps --model m --data d   # an incomplete request, not a malformed line

# values: --key=value, and values that begin with '-'
"$PREFOPT" train --print-config --set loss.beta=-0.5 > "$WORK/neg.json"
grep -q '"beta": -0.5' "$WORK/neg.json" || fail "--set loss.beta=-0.5 (a value beginning with '-') was not applied"
"$PREFOPT" train --print-config --set=training.batch_size=3 --set training.seed=7 > "$WORK/eq.json"
grep -q '"batch_size": 3' "$WORK/eq.json" || fail "--set=KEY=VALUE was not applied"
grep -q '"seed": 7' "$WORK/eq.json" || fail "a second --set was not applied"
echo "help: ok"
