#!/usr/bin/env python3
"""Tokenizer encode throughput: prefopt against the Hugging Face tokenizers library, interleaved.

    python3 benchmarks/tokenizer_run.py --bench build/benchmarks/tokenizer_bench \\
        [--bench-label NAME] [--bench OTHER_BUILD --bench-label OTHER] [--rounds 7] [--passes 10]

Every round runs each program once per tokenizer family (gpt2, llama3, qwen2 from
tests/data/tokenizer) on tests/data/tokenizer/strings.jsonl, one after another, so that changes in
machine load hit every side alike; each program is a fresh process that reports MB/s over its
process CPU time. Prints the median and the range of MB/s per family and side, and checks that
every side produced the same number of tokens. Python's side (benchmarks/tokenizer_bench.py) runs
with the interpreter of --python, single-threaded (RAYON_NUM_THREADS=1).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "tokenizer"


def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", action="append", required=True, help="a tokenizer_bench binary (repeatable)")
    ap.add_argument("--bench-label", action="append", default=[], help="its label in the table")
    ap.add_argument("--python", default=sys.executable, help="a Python with `tokenizers` installed")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--families", default="gpt2,llama3,qwen2")
    args = ap.parse_args()
    labels = args.bench_label + [Path(b).as_posix() for b in args.bench[len(args.bench_label):]]
    sides = [(label, [b]) for label, b in zip(labels, args.bench)]
    sides.append((f"tokenizers (Python)", [args.python, str(ROOT / "benchmarks" / "tokenizer_bench.py")]))
    env = dict(os.environ, RAYON_NUM_THREADS="1", OMP_NUM_THREADS="1")
    corpus = DATA / "strings.jsonl"
    results = {}  # (family, side) -> [mb/s]
    tokens = {}
    for r in range(args.rounds):
        for family in args.families.split(","):
            tok = DATA / family / "tokenizer.json"
            for label, cmd in sides:
                line = run(cmd + [str(tok), str(corpus), "1", str(args.passes)], env)[0]
                results.setdefault((family, label), []).append(line["mb_per_s"])
                tokens.setdefault(family, set()).add(line["tokens"])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    for family, counts in tokens.items():
        if len(counts) != 1:
            sys.exit(f"{family}: the sides produced different token counts {sorted(counts)}")
    print(f"| family | implementation | MB/s (median; min..max over {args.rounds} rounds) | vs tokenizers |")
    print("|---|---|---|---|")
    for family in args.families.split(","):
        base = statistics.median(results[(family, sides[-1][0])])
        for label, _ in sides:
            v = results[(family, label)]
            med = statistics.median(v)
            print(f"| {family} | {label} | {med:.2f} ({min(v):.2f}..{max(v):.2f}) | {med / base:.2f}× |")


if __name__ == "__main__":
    main()
