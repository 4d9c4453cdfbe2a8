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
expect_fail "pairs_tokenized.jsonl:12" "$PREFOPT" logps --model "$DATA/models/gpt2" --data "$DATA/cli/pairs_tokenized.jsonl" --out "$WORK/x.jsonl" --strict
echo "logps: ok"
