# Shared by the command line tests: $1 = prefopt binary, $2 = source dir, $3 = scratch dir.
set -euo pipefail
PREFOPT=$1
SRC=$2
WORK=$3
DATA=$SRC/tests/data
rm -rf "$WORK" && mkdir -p "$WORK"
export OMP_NUM_THREADS=1   # the resume test compares runs bit for bit
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_fail() {  # expect_fail "text in the message" command...
  local want=$1; shift
  local out
  if out=$("$@" 2>&1); then fail "expected failure: $*"; fi
  grep -qF -- "$want" <<<"$out" || fail "message lacks '$want': $out"
}
