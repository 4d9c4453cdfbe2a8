#!/usr/bin/env python3
"""Checks that the models `prefopt demo` saves load in Hugging Face transformers and score like prefopt.

For DIR/sft and DIR/best (written by `prefopt demo --out DIR`): loads each with AutoTokenizer and
AutoModelForCausalLM (GPT-2 + the demo's word-level tokenizer.json), tokenizes the example prompts and
continuations recorded in DIR/results.json, computes the continuations' summed log-probs with
transformers, runs `prefopt logps` on the same ids, and requires agreement within 1e-3 nats. Also
samples one continuation per prompt with transformers' generate, to show the model writes reviews.
Not a golden-data script: nothing is committed from it. Run after a demo, e.g.
  build/tools/prefopt/prefopt demo --quick --out /tmp/demo
  python3 tools/reference/demo_check_hf.py /tmp/demo build/tools/prefopt/prefopt
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main(out: Path, prefopt: Path) -> None:
    results = json.loads((out / "results.json").read_text())
    texts = [e for run in results["runs"] for e in run["examples"]]
    worst = 0.0
    for name in ("sft", "best"):
        tok = AutoTokenizer.from_pretrained(out / name)
        model = AutoModelForCausalLM.from_pretrained(out / name, dtype=torch.float32).eval()
        rows = []
        for t in texts:
            prompt, continuation = (s.strip() for s in t.split("|"))
            p = [tok.bos_token_id] + tok(prompt, add_special_tokens=False)["input_ids"]
            c = tok(continuation, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            if not continuation or tok.unk_token_id in p + c or len(p) + len(c) > model.config.n_positions:
                continue
            rows.append((p, c))
        hf = []
        with torch.no_grad():
            for p, c in rows:
                ids = torch.tensor([p + c])
                logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
                hf.append(sum(float(logp[len(p) - 1 + i, c[i]]) for i in range(len(c))))
        with tempfile.TemporaryDirectory() as tmp:
            data, scored = Path(tmp) / "pairs.jsonl", Path(tmp) / "logps.jsonl"
            data.write_text("".join(json.dumps({"prompt_input_ids": p, "chosen_input_ids": c, "rejected_input_ids": c}) + "\n"
                                    for p, c in rows))
            subprocess.run([str(prefopt), "logps", "--model", str(out / name), "--data", str(data), "--out", str(scored)],
                           check=True, capture_output=True)
            ours = [json.loads(line)["chosen_logps"] for line in scored.read_text().splitlines()]
        diff = max(abs(a - b) for a, b in zip(hf, ours))
        worst = max(worst, diff)
        print(f"{name}: {len(rows)} continuations, max |log-prob difference| transformers vs prefopt = {diff:.2e}")
        ids = torch.tensor([[tok.bos_token_id] + tok("the movie was", add_special_tokens=False)["input_ids"]])
        torch.manual_seed(0)
        gen = model.generate(ids, do_sample=True, max_new_tokens=20, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
        print(f"  transformers sample: {tok.decode(gen[0], skip_special_tokens=True)}")
    if worst > 1e-3:
        sys.exit(f"log-probs differ by {worst:.2e} > 1e-3")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: demo_check_hf.py DEMO_OUT_DIR PATH_TO_PREFOPT")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
