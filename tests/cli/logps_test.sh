#!/usr/bin/env bash
# prefopt logps on pre-tokenized pairs: one line out per good line in, bad lines reported by number.
source "$(dirname "$0")/common.sh"
"$PREFOPT" logps --model "$DATA/models/gpt2" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/out.jsonl" 2> "$WORK/err.txt"
[ "$(wc -l < "$WORK/out.jsonl")" -eq 24 ] || fail "expected 24 lines, got $(wc -l < "$WORK/out.jsonl")"
grep -q "pairs_tokenized.jsonl:12" "$WORK/err.txt" || fail "the bad line 12 is not reported: $(cat "$WORK/err.txt")"
grep -q "1 lines skipped" "$WORK/err.txt" || fail "skip count missing: $(cat "$WORK/err.txt")"
grep -q '"chosen_logps"' "$WORK/out.jsonl" || fail "no chosen_logps"
# the same pairs through the prefix-shared layout give the same numbers (to float tolerance)
"$PREFOPT" logps --model "$DATA/models/gpt2" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/shared.jsonl" --prefix-sharing 2>/dev/null
python3 - "$WORK/out.jsonl" "$WORK/shared.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b)
for x, y in zip(a, b):
    for k in ("chosen_logps", "rejected_logps"):
        assert abs(x[k] - y[k]) < 1e-4, (x, y)
PY
# --precision bf16 (core/bf16.hpp: matrix-product and attention inputs rounded to bf16, sums in fp32)
# on the eigen backend: the same lines, log-probs near fp32's but not equal to them.
"$PREFOPT" logps --model "$DATA/models/gpt2" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/bf16.jsonl" \
  --precision bf16 2>/dev/null || fail "--precision bf16 failed"
python3 - "$WORK/out.jsonl" "$WORK/bf16.jsonl" <<'PY' || fail "bf16 log-probs should be near fp32's and not equal"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
print("bf16 vs fp32, largest |difference| / (|fp32| + 1):", max(abs(x[k] - y[k]) / (abs(x[k]) + 1.0) for x, y in zip(a, b) for k in ("chosen_logps", "rejected_logps")))
assert len(a) == len(b) and [x["line"] for x in a] == [y["line"] for y in b]
worst = 0.0
for x, y in zip(a, b):
    assert x["chosen_tokens"] == y["chosen_tokens"] and x["rejected_tokens"] == y["rejected_tokens"]
    for k in ("chosen_logps", "rejected_logps"):
        worst = max(worst, abs(x[k] - y[k]) / (abs(x[k]) + 1.0))
assert 0.0 < worst < 1e-2, worst  # measured 2.9e-4: each input is off by at most 2^-9 relative
PY
expect_fail "--precision" "$PREFOPT" logps --model "$DATA/models/gpt2" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/x.jsonl" --precision fp8
expect_fail "--backend: 'tpu' is not one of eigen" "$PREFOPT" logps --model "$DATA/models/gpt2" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/x.jsonl" --backend tpu
# backend cuda here: the GPU's numbers are compared in cuda_test.sh; without a GPU or without the
# CUDA backend it is an error that says which.
if ! out=$("$PREFOPT" logps --model "$DATA/models/gpt2" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/cuda.jsonl" --backend cuda 2>&1); then
  grep -qE "no CUDA device is visible|built without the CUDA backend" <<<"$out" || fail "--backend cuda: $out"
fi
expect_fail "pairs_tokenized.jsonl:12" "$PREFOPT" logps --model "$DATA/models/gpt2" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/x.jsonl" --strict
echo "logps: ok"
