#!/usr/bin/env python3
"""Encode throughput of the Hugging Face tokenizers library on the same corpus as tokenizer_bench.

    RAYON_NUM_THREADS=1 python3 benchmarks/tokenizer_bench.py <tokenizer.json> <strings.jsonl> [rounds] [passes]

Each round makes `passes` passes encoding every string on its own (add_special_tokens=False); prints
the same JSON lines as the C++ program (MB/s over process CPU time).
"""
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
from tokenizers import Tokenizer  # noqa: E402


def main():
    tok = Tokenizer.from_file(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        texts = [json.loads(line) for line in f]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    passes = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    nbytes = passes * sum(len(t.encode("utf-8")) for t in texts)
    tok.encode(texts[0], add_special_tokens=False)
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        tokens = sum(len(tok.encode(t, add_special_tokens=False).ids) for _ in range(passes) for t in texts)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        print(json.dumps({"bytes": nbytes, "tokens": tokens, "wall_s": round(wall, 4), "cpu_s": round(cpu, 4),
                          "mb_per_s": round(nbytes / cpu / 1e6, 3)}), flush=True)


if __name__ == "__main__":
    main()
