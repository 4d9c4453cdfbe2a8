#!/usr/bin/env python3
"""Golden dataset files for tests/data/{jsonl,formats}_test.cpp, with TRL's own data functions.

Writes tests/data/datasets/:
  lines.jsonl, lines.jsonl.gz     a BOM, CRLF line ends, blank lines, no newline at the end (gzip: Python's gzip)
  lines_expected.json             [line number, value] of each non-blank line, from json.loads
  <format>.jsonl[.gz]             one small dataset per TRL format (conversational.jsonl.gz is gzip)
  formats_expected.json           what each should read as: trl.maybe_extract_prompt applied per record
  extract_prompt_cases.json       trl.extract_prompt on strings and message lists (or the exception it raised)
  unpair_order.json               trl.unpair_preference_dataset on 2300 pairs: (pair index, label) per row
Deterministic; rerun with python3 tools/reference/data_make_dataset_reference.py
"""
import gzip
import json
from pathlib import Path

from datasets import Dataset
from trl.data_utils import extract_prompt, is_conversational, maybe_extract_prompt, unpair_preference_dataset

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "datasets"


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


def dump(records):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


FORMATS = {
    "standard": [
        {"prompt": "The sky is", "chosen": " blue.", "rejected": " green.", "score_chosen": 8.5, "score_rejected": 2.0},
        {"prompt": "", "chosen": "Unconditional text.", "rejected": "Other text.", "id": "extra column, ignored"},
        {"prompt": "Ünïcödé 日本語 ", "chosen": "😀", "rejected": "😢", "preference_prob": 0.75, "weight": 2.0,
         "cost": -1.5},
        {"prompt": "Q: 1+1?\nA:", "chosen": " 2", "rejected": " 3", "preference_prob": None, "weight": None},
    ],
    "conversational": [
        {"prompt": [u("What color is the sky?")], "chosen": [a("It is blue.")], "rejected": [a("It is green.")]},
        {"prompt": [s("Be brief."), u("Hi"), a("Hello!"), u("Name a fruit.")], "chosen": [a("Apple.")],
         "rejected": [a("Carrot.")], "preference_prob": 1.0},
        {"prompt": [u("Continue: once upon"), a("a time")], "chosen": [a("there was a fox.")],
         "rejected": [a("the end.")], "weight": 0.0},
        {"prompt": [u("Use the tool."), {"role": "assistant", "content": "Calling.", "name": "x"},
                    {"role": "tool", "content": "42"}], "chosen": [a("The answer is 42.")], "rejected": [a("No idea.")]},
    ],
    "implicit_standard": [
        {"chosen": "The sky is blue.", "rejected": "The sky is green."},
        {"chosen": "Question: why? Answer: because.", "rejected": "Question: why? Answer: no reason."},
        {"chosen": "Café au lait", "rejected": "Café noir"},
        {"chosen": "same text", "rejected": "same text"},
        {"chosen": "abc", "rejected": "abcdef"},
        {"chosen": [u("ignored: a conversational prompt with string completions")][0]["content"] + " yes",
         "rejected": "ignored: a conversational prompt with string completions no",
         "prompt": [u("TRL drops this prompt: its kind differs from chosen's")]},
    ],
    "implicit_conversational": [
        {"chosen": [u("What color is the sky?"), a("It is blue.")],
         "rejected": [u("What color is the sky?"), a("It is green.")]},
        {"chosen": [s("sys"), u("q1"), a("a1"), u("q2"), a("good")],
         "rejected": [s("sys"), u("q1"), a("a1"), u("q2"), a("bad"), u("q3"), a("worse")]},
        {"prompt": "a string prompt next to message lists is dropped",
         "chosen": [u("Hi"), a("Hello")], "rejected": [u("Hi"), a("Go away")]},
        {"chosen": [u("same"), a("same")], "rejected": [u("same"), a("same")]},
    ],
    "unpaired_standard": [
        {"prompt": "The sky is", "completion": " blue.", "label": True},
        {"prompt": "The sky is", "completion": " green.", "label": False, "weight": 0.5},
    ],
    "unpaired_conversational": [
        {"prompt": [u("What color is the sky?")], "completion": [a("It is blue.")], "label": True},
        {"prompt": [s("Be rude."), u("Hi")], "completion": [a("Go away.")], "label": False},
    ],
    "tokenized": [
        {"prompt_input_ids": [1, 2, 3], "chosen_input_ids": [4, 5], "rejected_input_ids": [6],
         "prompt": "text columns are ignored when ids are present"},
        {"prompt_input_ids": [], "chosen_input_ids": [2147483647], "rejected_input_ids": [0, 0, 0],
         "preference_prob": 0.25},
    ],
    "tokenized_trl": [
        {"prompt_ids": [7, 8], "chosen_ids": [9], "rejected_ids": [10, 11], "weight": 3.0},
    ],
    "tokenized_unpaired": [
        {"prompt_input_ids": [1, 2, 3], "completion_input_ids": [4, 5], "label": True},
        {"prompt_ids": [7, 8], "completion_ids": [9], "label": False, "weight": 1.5},
    ],
}

EXTRACT_CASES = [
    ("The sky is blue.", "The sky is green."),
    ("Question: why? Answer: because.", "Question: why? Answer: no reason."),
    ("Café au lait", "Café noir"),
    ("naïve é", "naïve è"),  # differ inside a 2-byte character
    ("😀😀x", "😀😁y"),  # differ inside a 4-byte character
    ("same text", "same text"),
    ("abc", "abcdef"),
    ("abcdef", "abc"),
    ("a b", "a c"),  # space before the difference: it goes to the completions
    ("a  b", "a  c"),
    ("ab", "ac"),
    ("x", "y"),  # differ at once: TRL's prompt would be empty (prefopt: error)
    ("x ", "y"),  # differ at once and chosen ends with a space: TRL's quirk (prefopt: error)
    (" a", " b"),  # the space moves: prompt empty (prefopt: error)
    ("", "abc"),  # TRL raises
    ([u("What color is the sky?"), a("It is blue.")], [u("What color is the sky?"), a("It is green.")]),
    ([s("sys"), u("q"), a("a1")], [s("sys"), u("q"), a("a2"), u("more"), a("x")]),
    ([u("same"), a("same")], [u("same"), a("same")]),
    ([u("q"), a("a")], [u("q"), a("a"), u("q2"), a("b")]),
    ([u("q1"), a("a")], [u("q2"), a("a")]),  # differ at once (prefopt: error)
    ([u("q")], [u("q")]),  # one message, equal: prompt empty (prefopt: error)
]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    # Line handling: BOM, CRLF, blank and whitespace-only lines, no final newline.
    raw = ("\ufeff" + '{"a": 1}\r\n' + "\r\n" + '  {"b": [1, 2, {"c": "é"}]}\r\n' + "   \t \n" + "\n"
           + '"a bare string"\n' + '{"last": true}').encode("utf-8")
    (OUT / "lines.jsonl").write_bytes(raw)
    (OUT / "lines.jsonl.gz").write_bytes(gzip.compress(raw, 9, mtime=0))
    text = raw.decode("utf-8-sig")
    expected_lines = [[i + 1, json.loads(line)] for i, line in enumerate(text.split("\n")) if line.strip()]
    (OUT / "lines_expected.json").write_text(json.dumps(expected_lines, ensure_ascii=False, indent=1) + "\n")

    expected = {}
    for name, records in FORMATS.items():
        body = dump(records)
        if name == "conversational":
            (OUT / f"{name}.jsonl.gz").write_bytes(gzip.compress(body.encode("utf-8"), 6, mtime=0))
            fname = f"{name}.jsonl.gz"
        else:
            (OUT / f"{name}.jsonl").write_text(body, encoding="utf-8")
            fname = f"{name}.jsonl"
        rows = []
        for line, rec in enumerate(records, 1):
            out = dict(rec)
            if "chosen" in rec:
                out = {**rec, **maybe_extract_prompt(rec)}
            out["line"] = line
            out["is_conversational"] = is_conversational({k: v for k, v in rec.items() if k in ("chosen", "completion")})
            rows.append(out)
        expected[fname] = rows
    (OUT / "formats_expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n")

    cases = []
    for chosen, rejected in EXTRACT_CASES:
        # TRL looks at chosen[-1] when the very first element differs; prefopt refuses those pairs.
        first_differs = not chosen or not rejected or chosen[0] != rejected[0]
        case = {"chosen": chosen, "rejected": rejected, "first_differs": first_differs}
        try:
            case["trl"] = extract_prompt({"chosen": chosen, "rejected": rejected})
        except Exception as e:  # noqa: BLE001 - the exception is the expected value
            case["trl_error"] = type(e).__name__
        cases.append(case)
    (OUT / "extract_prompt_cases.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n")

    n = 2300
    ds = Dataset.from_dict({"prompt": [f"p{i}" for i in range(n)], "chosen": [f"c{i}" for i in range(n)],
                            "rejected": [f"r{i}" for i in range(n)]})
    un = unpair_preference_dataset(ds)
    order = []
    for row in un:
        i = int(row["prompt"][1:])
        assert row["completion"] == (f"c{i}" if row["label"] else f"r{i}")
        order.append([i, bool(row["label"])])
    (OUT / "unpair_order.json").write_text(json.dumps({"pairs": n, "rows": order}, separators=(",", ":")) + "\n")
    print("wrote", len(expected), "format files,", len(cases), "extract_prompt cases,", len(order), "unpaired rows")


if __name__ == "__main__":
    main()
