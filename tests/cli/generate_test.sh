#!/usr/bin/env bash
# prefopt generate: golden greedy ids (transformers, tests/data/generate/greedy.json) from
# prompt_input_ids, base (no end token) and LoRA (generation_config.json's end token 2); text prompts through the GPT-2 tokenizer; seeds independent of
# --batch-size and of the cache; stop strings; chat_template_kwargs and content lists; errors that name the line.
source "$(dirname "$0")/common.sh"
GOLD=$DATA/generate/greedy.json
python3 - "$GOLD" "$WORK/ids.jsonl" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for p in g["llama"]["prompts"]:
        f.write(json.dumps({"prompt_input_ids": p}) + "\n")
PY
"$PREFOPT" generate --model "$DATA/models/llama" --data "$WORK/ids.jsonl" --out "$WORK/greedy.jsonl" \
  --temperature 0 --max-new-tokens 24 --n 2 --batch-size 3 --eos-id -1 2> "$WORK/err.txt" || fail "generate failed: $(cat "$WORK/err.txt")"
"$PREFOPT" generate --model "$DATA/models/llama" --adapter "$DATA/models/llama_lora" --data "$WORK/ids.jsonl" \
  --out "$WORK/lora.jsonl" --temperature 0 --max-new-tokens 24 2>/dev/null || fail "generate --adapter failed"
python3 - "$GOLD" "$WORK/greedy.jsonl" "$WORK/lora.jsonl" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
for key, path, n in (("llama", sys.argv[2], 2), ("llama_lora", sys.argv[3], 1)):
    rows = [json.loads(l) for l in open(path)]
    assert len(rows) == len(g[key]["prompts"]), (path, len(rows))
    eos = key == "llama_lora"
    for r, want, p in zip(rows, g[key]["greedy"], g[key]["prompts"]):
        assert r["prompt"] == p, r
        assert len(r["completions"]) == n, r
        reason = "length"
        if eos and 2 in want:
            want, reason = want[:want.index(2) + 1], "eos"
        for c in r["completions"]:
            assert c["token_ids"] == want, (key, c["token_ids"], want)
            assert c["finish_reason"] == reason, c
    if eos:
        assert any(c["finish_reason"] == "eos" for r in rows for c in r["completions"])
PY
# Text prompts (GPT-2 tokenizer): sampled with a seed, the same whatever the batch size and the cache.
head -4 "$DATA/cli/pairs_text.jsonl" | python3 -c '
import json, sys
for l in sys.stdin: print(json.dumps({"prompt": json.loads(l)["prompt"]}))' > "$WORK/text.jsonl"
run() { "$PREFOPT" generate --model "$DATA/cli/gpt2_text" --tokenizer "$DATA/tokenizer/gpt2/tokenizer.json" \
  --data "$WORK/text.jsonl" --max-new-tokens 10 --n 3 --seed 7 --top-k 40 --top-p 0.9 --temperature 1.2 "$@" 2>/dev/null; }
run --out "$WORK/a.jsonl" --batch-size 12 || fail "text generate failed"
run --out "$WORK/b.jsonl" --batch-size 1
run --out "$WORK/c.jsonl" --batch-size 5 --no-cache
run --out "$WORK/d.jsonl" --batch-size 12 --seed 8
python3 - "$WORK" <<'PY'
import json, sys
def read(name): return [json.loads(l) for l in open(sys.argv[1] + "/" + name)]
a = read("a.jsonl")
assert len(a) == 4 and all(len(r["completions"]) == 3 for r in a)
for other in ("b.jsonl", "c.jsonl"):  # --batch-size 1, --no-cache: the same tokens, logp to float noise
    for x, y in zip(a, read(other)):
        for c, d in zip(x["completions"], y["completions"]):
            assert c["token_ids"] == d["token_ids"] and c["text"] == d["text"], (other, c, d)
            assert abs(c["logp"] - d["logp"]) < 1e-4, (other, c, d)
ids = lambda rows: [c["token_ids"] for r in rows for c in r["completions"]]
assert ids(a) != ids(read("d.jsonl")), "--seed 8 gave the samples of --seed 7"
assert len(set(map(tuple, ids(a)))) > 1, "all samples alike"
PY
# A stop string taken from a greedy completion ends it there (the string kept).
"$PREFOPT" generate --model "$DATA/cli/gpt2_text" --tokenizer "$DATA/tokenizer/gpt2/tokenizer.json" \
  --data "$WORK/text.jsonl" --out "$WORK/g.jsonl" --max-new-tokens 10 --temperature 0 2>/dev/null
STOP=$(python3 -c '
import json, sys
c = json.loads(open(sys.argv[1]).readline())["completions"][0]
assert c["finish_reason"] == "length" and len(c["token_ids"]) == 10, c
t = c["text"]; print(t[len(t) // 2:len(t) // 2 + 2])' "$WORK/g.jsonl")
[ -n "$STOP" ] || fail "empty greedy text"
"$PREFOPT" generate --model "$DATA/cli/gpt2_text" --tokenizer "$DATA/tokenizer/gpt2/tokenizer.json" \
  --data "$WORK/text.jsonl" --out "$WORK/s.jsonl" --max-new-tokens 10 --temperature 0 --stop "$STOP" 2>/dev/null
python3 - "$WORK/s.jsonl" "$STOP" <<'PY'
import json, sys
c = json.loads(open(sys.argv[1]).readline())["completions"][0]
assert c["finish_reason"] == "stop" and sys.argv[2] in c["text"] and len(c["token_ids"]) < 10, c
PY
# Conversational prompts go through the chat template (with the generation prompt).
printf '{"prompt": [{"role": "user", "content": "How was the food?"}]}\n{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}\n' > "$WORK/chat.jsonl"
"$PREFOPT" generate --model "$DATA/cli/gpt2_text" --tokenizer "$DATA/tokenizer/gpt2/tokenizer.json" --chat-template chatml \
  --data "$WORK/chat.jsonl" --out "$WORK/chat_out.jsonl" --max-new-tokens 5 --n 2 2>/dev/null || fail "conversational prompts failed"
python3 - "$WORK/chat_out.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2 and rows[0]["prompt"][0]["role"] == "user", rows
assert all(len(r["completions"]) == 2 and len(c["token_ids"]) == 5 for r in rows for c in r["completions"]), rows
PY
# A record's chat_template_kwargs reach the template: under Qwen3's, enable_thinking false adds an empty
# <think> block after the generation prompt (so the greedy token's log-prob changes); true renders as none.
printf '%s\n' '{"prompt": [{"role": "user", "content": "How was the food?"}]}' \
  '{"prompt": [{"role": "user", "content": "How was the food?"}], "chat_template_kwargs": {"enable_thinking": false}}' \
  '{"prompt": [{"role": "user", "content": "How was the food?"}], "chat_template_kwargs": {"enable_thinking": true}}' \
  > "$WORK/kwargs.jsonl"
"$PREFOPT" generate --model "$DATA/cli/gpt2_text" --tokenizer "$DATA/tokenizer/gpt2/tokenizer.json" \
  --chat-template "$DATA/chat/templates/qwen3.jinja" --data "$WORK/kwargs.jsonl" --out "$WORK/kwargs_out.jsonl" \
  --temperature 0 --max-new-tokens 1 2>/dev/null || fail "chat_template_kwargs prompts failed"
python3 - "$WORK/kwargs_out.jsonl" <<'PY'
import json, sys
logp = [json.loads(l)["completions"][0]["logp"] for l in open(sys.argv[1])]
assert logp[0] == logp[2] and logp[0] != logp[1], logp
PY
printf '%s\n' '{"prompt": [{"role": "user", "content": "Hi"}], "chat_template_kwargs": {"messages": []}}' > "$WORK/kw_bad.jsonl"
expect_fail "kw_bad.jsonl:1: field 'chat_template_kwargs.messages'" "$PREFOPT" generate --model "$DATA/cli/gpt2_text" \
  --tokenizer "$DATA/tokenizer/gpt2/tokenizer.json" --chat-template chatml --data "$WORK/kw_bad.jsonl" --out "$WORK/x.jsonl"
# Content lists reach the template as lists: ChatML's adds them to a string and fails on the record.
printf '%s\n' '{"prompt": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}' > "$WORK/parts.jsonl"
expect_fail "parts.jsonl:1: the chat template fails on this record" "$PREFOPT" generate --model "$DATA/cli/gpt2_text" \
  --tokenizer "$DATA/tokenizer/gpt2/tokenizer.json" --chat-template chatml --data "$WORK/parts.jsonl" --out "$WORK/x.jsonl"
printf '{"prompt": [{"role": "system", "content": "Only a system message"}]}\n' > "$WORK/sys.jsonl"
expect_fail "sys.jsonl:1" "$PREFOPT" generate --model "$DATA/cli/gpt2_text" --tokenizer "$DATA/tokenizer/gpt2/tokenizer.json" \
  --chat-template chatml --data "$WORK/sys.jsonl" --out "$WORK/x.jsonl"
# Errors name the file and line.
printf '{"prompt_input_ids": [1, 2]}\n{"text": "no prompt"}\n' > "$WORK/bad.jsonl"
expect_fail "bad.jsonl:2" "$PREFOPT" generate --model "$DATA/models/llama" --data "$WORK/bad.jsonl" --out "$WORK/x.jsonl"
printf '{"prompt_input_ids": [1, 99999]}\n' > "$WORK/vocab.jsonl"
expect_fail "vocab.jsonl:1" "$PREFOPT" generate --model "$DATA/models/llama" --data "$WORK/vocab.jsonl" --out "$WORK/x.jsonl"
expect_fail "top_p" "$PREFOPT" generate --model "$DATA/models/llama" --data "$WORK/ids.jsonl" --out "$WORK/x.jsonl" --top-p 0
# --backend eigen is the default's run, byte for byte; --precision bf16 (backends.md: matrix-product
# and attention inputs rounded to bf16, sums in fp32) gives log-probs near fp32's but not equal to
# them, for the completions whose greedy tokens it keeps (measured: 6 of 8, log-probs 8.7e-5 relative).
gen() { "$PREFOPT" generate --model "$DATA/models/llama" --data "$WORK/ids.jsonl" --temperature 0 --max-new-tokens 24 --eos-id -1 "$@"; }
gen --out "$WORK/eigen.jsonl" --n 2 --batch-size 3 --backend eigen 2>/dev/null || fail "--backend eigen failed"
cmp -s "$WORK/greedy.jsonl" "$WORK/eigen.jsonl" || fail "--backend eigen differs from the default"
gen --out "$WORK/bf16.jsonl" --n 2 --batch-size 3 --precision bf16 2>/dev/null || fail "--precision bf16 failed"
python3 - "$WORK/greedy.jsonl" "$WORK/bf16.jsonl" <<'PY' || fail "bf16 log-probs should be near fp32's and not equal"
import json, sys
a = [c for l in open(sys.argv[1]) for c in json.loads(l)["completions"]]
b = [c for l in open(sys.argv[2]) for c in json.loads(l)["completions"]]
assert len(a) == len(b) and a
same = [(x, y) for x, y in zip(a, b) if x["token_ids"] == y["token_ids"]]
worst = max(abs(x["logp"] - y["logp"]) / (abs(x["logp"]) + 1.0) for x, y in same)
print(f"bf16: {len(same)} of {len(a)} greedy completions keep fp32's tokens; largest |logp difference| / (|fp32| + 1): {worst:.2e}")
assert len(same) >= len(a) // 2, len(same)
assert 0.0 < worst < 1e-2, worst
PY
expect_fail "--precision" gen --out "$WORK/x.jsonl" --precision fp8
expect_fail "--backend: 'tpu' is not one of eigen" gen --out "$WORK/x.jsonl" --backend tpu
# backend cuda here: cuda_test.sh compares the GPU's tokens with eigen's; without a GPU or without
# the CUDA backend it is an error that says which.
if ! out=$(gen --out "$WORK/cuda.jsonl" --backend cuda 2>&1); then
  grep -qE "no CUDA device is visible|built without the CUDA backend" <<<"$out" || fail "--backend cuda: $out"
fi
echo "generate: ok"
