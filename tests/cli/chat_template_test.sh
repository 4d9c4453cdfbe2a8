#!/usr/bin/env bash
# --chat-template with a .jinja file: the Jinja interpreter renders ChatML exactly as the built-in
# chatml does (the same log-probs line for line); a template prefopt cannot run is an error naming
# the construct and its line.
source "$(dirname "$0")/common.sh"
run() {  # run <chat-template> <out>
  "$PREFOPT" logps --model "$DATA/cli/gpt2_text" --tokenizer "$DATA/tokenizer/llama3/tokenizer.json" \
    --data "$DATA/collate/conversations.jsonl" --out "$2" --chat-template "$1"
}
run chatml "$WORK/builtin.jsonl" 2>/dev/null
run "$DATA/chat/templates/chatml.jinja" "$WORK/jinja.jsonl" 2>/dev/null
[ -s "$WORK/builtin.jsonl" ] || fail "no output with the built-in chatml"
cmp -s "$WORK/builtin.jsonl" "$WORK/jinja.jsonl" || fail "the .jinja file renders differently from chatml"
printf '{%% for m in messages %%}\n{%% include "x.jinja" %%}{%% endfor %%}\n' > "$WORK/bad.jinja"
expect_fail "bad.jinja line 2: unsupported construct: {% include %}" run "$WORK/bad.jinja" "$WORK/x.jsonl"
expect_fail "chat template 'no-such-template': unknown" run no-such-template "$WORK/x.jsonl"
echo "chat_template: ok"
