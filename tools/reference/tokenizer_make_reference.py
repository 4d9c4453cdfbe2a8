#!/usr/bin/env python3
"""Golden data for prefopt::data::tokenizer, produced by the Hugging Face `tokenizers` library.

Run from the repository root with the project virtualenv (deterministic; rerunnable):
    pip install tokenizers
    python3 tools/reference/tokenizer_make_reference.py

Real GPT-2 / Llama-3 / Qwen2 tokenizer files cannot be downloaded here, so this script builds
tokenizers with the same configuration as each family (normalizer, pre-tokenizer with the real
regex patterns, model flags, special tokens, post-processor, decoder), trains their BPE
vocabularies on a seeded synthetic corpus, writes each as tokenizer.json and records what the
library does with them. Outputs under tests/data/tokenizer/:
  strings.jsonl                  test strings, one JSON string per line (shared by the families)
  <family>/tokenizer.json        gpt2, llama3, qwen2, variants, charlevel
  <family>/expected.jsonl        per string (same line): {"ids": [...]} plus, only where they
                                 differ, "special" (ids with add_special_tokens=True, when they are
                                 not meta's special_prefix + ids + special_suffix), "decoded"
                                 (decode(ids) when it is not the string), "decoded_skip"
                                 (decode(ids, skip_special_tokens=True) when it is not "decoded")
  <family>/decode.jsonl          random id sequences: {"ids", "skip", "text"}
  <family>/meta.json             vocab size, what add_special_tokens adds around the ids, added
                                 tokens with their ids, sample id -> token
  regex_cases.jsonl              {"pattern", "text", "matches": [[begin, end], ...]} in code
                                 points: the non-empty matches Oniguruma (inside tokenizers) finds
  charlevel/expected_nofuse.jsonl  the charlevel tokenizer with fuse_unk = false
Families: gpt2 (ByteLevel with GPT-2's regex, merges as "a b" strings, <|endoftext|> in the model
vocabulary), llama3 (Split with Llama-3's pattern + ByteLevel, ignore_merges, 256 special tokens,
TemplateProcessing with <|begin_of_text|>, merges as ["a", "b"] pairs, extra vocabulary entries
that only ignore_merges reaches), qwen2 (NFC, Split with Qwen2's pattern + ByteLevel, Qwen2.5's 22
added tokens of which 8 are not special), variants (every Split behavior, String patterns,
invert, Digits, ByteLevel add_prefix_space, lstrip/rstrip/single_word/normalized added tokens),
charlevel (no ByteLevel, Digits one by one, unk_token with fuse_unk, no decoder).
"""
import argparse
import json
import os
import random
import sys
import time

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

LLAMA3_SPECIAL = (["<|begin_of_text|>", "<|end_of_text|>"] + [f"<|reserved_special_token_{i}|>" for i in range(4)] +
                  ["<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"] +
                  [f"<|reserved_special_token_{i}|>" for i in range(5, 251)])
QWEN2_ADDED = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
               ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
               ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
               ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
               ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
               ("<|repo_name|>", False), ("<|file_sep|>", False)]
# (content, special, single_word, lstrip, rstrip, normalized)
VARIANT_ADDED = [("[CLS]", True, False, False, False, False), ("[SEP]", True, False, False, True, False),
                 ("<mask>", True, False, True, False, False), ("<|sp|>", True, False, False, False, False),
                 ("<w>", False, True, False, False, True), ("cafe\u0301", False, False, False, False, True),
                 ("##", False, False, True, True, False), ("<W>", False, True, True, True, False)]
SPECIAL_SNIPPETS = (["<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                     "<|eot_id|>", "<|reserved_special_token_0|>", "<|reserved_special_token_250|>", "<|im_start|>",
                     "<|im_end|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|file_sep|>", "<|vision_pad|>",
                     "<|endoftext", "<|im_start", "|>", "<|", "<s>", "[CLS]", "[SEP]", "<mask>", "<|sp|>", "<w>", "<W>",
                     "café", "cafe\u0301", "CAFÉ", "##"])

WORDS = """the of and to in is was he for it with as his on be at by had are but from or have an they which one you
were her all she there would their we him been has when who will more no if out so said what up its about into than
them can only other new some could time these two may then do first any my now such like our over man me even most
made after also did many before must through back years where much your way well down should because each just
those people how too little state good very make world still own see men work long get here between both life being
under never day same another know while last might us great old year off come since against go came right used take
three tokenizer merge vocabulary byte encode decode transformer attention gradient preference optimization reward
model policy reference batch sequence embedding layer norm softmax logits sample dataset python rust function
variable return import class struct template namespace const static inline vector string integer float double
Hello World Paris London Tokyo Berlin Monday January GPT Llama Qwen DPO KTO ORPO SimPO Adam Eve the The THE don't
won't can't I'm you're they've we'll she'd it's Let's O'Neil rock'n'roll ma'am""".split()
CODE_SNIPPETS = [
    "def f(x):\n    return x * 2\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "if __name__ == \"__main__\":\n    main()\n",
    "#include <vector>\nint main() { std::vector<int> v{1, 2, 3}; return v.size(); }\n",
    "class Foo:\n    def __init__(self, a, b=None):\n        self.a = a\n        self.b = b or {}\n",
    "    \tmixed = [1,2,3]  # comment\n\t\t\tdeep()\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;\r\n",
    "const x = (a, b) => { return a ?? b; };\n",
    "fn main() -> Result<(), Box<dyn Error>> {\n    println!(\"{:?}\", x);\n    Ok(())\n}\n",
    "x=1;y=2;z=x+y*3**2//4%5\n",
    "{\"key\": [1, 2.5e-3, true, null], \"nested\": {\"a\": \"b\"}}",
    "<div class=\"main\">\n  <p>Text &amp; more</p>\n</div>\n",
    "    \n        \n\t\n",
    "$ echo \"hello\" | grep -i 'h' && ls -la ~/work/*.cpp\n",
]
MULTILINGUAL = [
    "Le café est très bon à Paris.", "Ça coûte 12,50 € — n'est-ce pas ?", "Über den Wolken muß die Freiheit grenzenlos sein.",
    "El niño comió piña y jalapeño.", "Ἐν ἀρχῇ ἦν ὁ λόγος", "Съешь же ещё этих мягких французских булок.",
    "我爱自然语言处理。", "今天天气很好，我们去公园吧！", "日本語のテキストです。カタカナとひらがな。", "東京は日本の首都です",
    "한국어 문장입니다. 안녕하세요!", "مرحبا بالعالم، كيف حالك؟", "السلام عليكم ورحمة الله", "שלום עולם",
    "नमस्ते दुनिया, आप कैसे हैं?", "สวัสดีครับ ยินดีต้อนรับ", "Tiếng Việt có nhiều dấu: ệ, ở, ữ, ặ.",
    "ἄλφα βῆτα γάμμα", "Ελληνικά: Καλημέρα κόσμε", "Iñtërnâtiônàlizætiøn", "ﬁnancial ﬂow ﬀ", "Ⅻ ⅷ ② ⑩ ¼ ½ ¾ ² ³",
    "١٢٣٤٥ ۶۷۸ ०१२३ ๑๒๓", "１２３ＡＢＣ ｱｲｳ", "Ω Å K ſ ß ẞ", "z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇", "a\u0301\u0323 a\u0323\u0301 e\u0323\u0302 e\u0302\u0323",
    "\u1100\u1161\u11a8 \u1112\u1161\u11ab", "\uf900\uf901\u2126\u212b", "ﾊﾟ ガ ｶﾞ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕋𝕖𝕩𝕥 𝟙𝟚𝟛",
]
EMOJI = ["😀", "😂🤣", "👍", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "🧑🏽‍💻", "🏳️‍🌈", "🇫🇷🇯🇵", "1️⃣", "❤️", "✌🏻", "🤷‍♀️",
         "🐍🦀", "👩🏾‍🚀", "🫠", "☕", "©®™", "⭐️⭐️⭐️"]
CONTRACTIONS = ["I'm", "I'M", "you're", "YOU'RE", "we've", "We'Ve", "they'll", "THEY'LL", "he'd", "He'D", "it's", "IT'S",
                "don't", "DON'T", "can't", "won't", "'s", "'S", "'t", "'ll", "'LL", "'Re", "'vE", "'m", "'d", "'D",
                "O'Neil's", "rock'n'roll", "'ſ", "'K", "’s", "it’s", "''s", "'''", "'", "' s", "x's's"]
PUNCT = ["!!!", "???", "?!", "...", "…", "---", "--", "—", "```", "'''", "<<>>", "$$$", "%%", "&&", "||", "::", ";;",
         "(((", ")))", "[[]]", "{{}}", "@#", "~~~", "^^", "**", "__init__", "->", "=>", "!=", "==", "<=", ">=", "#!"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2003", "\u2028", "\u200b", "\u2009", "\x0b",
          "\x0c", "\u0085", " \n", "\n ", "\t\t", "\n\n", " \t \n"]
WORD_SET = sorted(set(WORDS))


def rand_number(r):
    kind = r.randrange(6)
    if kind == 0:
        return str(r.randrange(10 ** r.randint(1, 25)))
    if kind == 1:
        return f"{r.uniform(-1e6, 1e6):.{r.randint(0, 6)}f}"
    if kind == 2:
        return "{:,}".format(r.randrange(10 ** r.randint(4, 12)))
    if kind == 3:
        return f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(1900, 2099)}"
    if kind == 4:
        return f"+1-{r.randint(200, 999)}-{r.randint(100, 999)}-{r.randint(1000, 9999)}"
    return "0" * r.randint(1, 5) + str(r.randrange(1000))


def rand_word(r):
    w = r.choice(WORD_SET)
    c = r.random()
    if c < 0.15:
        return w.capitalize()
    if c < 0.2:
        return w.upper()
    return w


def prose(r, n_words):
    out = []
    for i in range(n_words):
        w = rand_word(r)
        if i == 0:
            w = w.capitalize()
        out.append(w)
        if r.random() < 0.1:
            out[-1] += r.choice([",", ";", ":", ".", "!", "?"])
    return " ".join(out) + r.choice([".", "!", "?", "", "..."])


def fragment(r, specials):
    k = r.randrange(13)
    if k == 0:
        return prose(r, r.randint(1, 12))
    if k == 1:
        return r.choice(CODE_SNIPPETS)
    if k == 2:
        return r.choice(MULTILINGUAL)
    if k == 3:
        return "".join(r.choice(EMOJI) for _ in range(r.randint(1, 4)))
    if k == 4:
        return r.choice(CONTRACTIONS)
    if k == 5:
        return r.choice(PUNCT)
    if k == 6:
        return r.choice(SPACES) * r.randint(1, 4)
    if k == 7:
        return rand_number(r)
    if k == 8:
        return r.choice(specials)
    if k == 9:
        return rand_word(r) + rand_number(r) + rand_word(r)
    if k == 10:
        return " " * r.randint(2, 40) + rand_word(r)
    if k == 11:  # random code points from assigned blocks
        blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
                  (0x900, 0x97F), (0xE00, 0xE5B), (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x2000, 0x206F),
                  (0x3040, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0xFF01, 0xFF5E), (0x1F300, 0x1F64F)]
        s = []
        for _ in range(r.randint(1, 8)):
            lo, hi = r.choice(blocks)
            s.append(chr(r.randint(lo, hi)))
        return "".join(s)
    return r.choice(WORDS) + r.choice(["", "'s", "'S", "'ll", "n't", "'D"])


def make_strings(seed, count, specials):
    r = random.Random(seed)
    out = ["", " ", "  ", "\n", "\r\n", "\t", "a", "A", "0", "'", "'s", "é", "e\u0301", "😀", "👨‍👩‍👧‍👦", "中",
           "Hello world", "Hello, world!", " Hello", "Hello ", "   leading and trailing   ", "a" * 600,
           " " * 1000, " " * 999 + "x", "\n" * 300, "\t" * 100 + "x", " \n" * 200, "\r\n\r\n" + " " * 50 + "\r\n",
           "1234567890" * 30, "x" + "😀" * 100, "ab" * 400 + " end", "=" * 300, "the " * 200]
    out += [s + t for s in specials[:12] for t in ("", " ", "x", "\n")]
    out += ["x" + s + "y" for s in specials] + [" " + s + " " for s in specials]
    out += [specials[0] + specials[1] + specials[0], specials[0] * 3]
    while len(out) < count:
        n = r.choice([1, 1, 2, 3, 4, 6, 10])
        pieces = [fragment(r, specials) for _ in range(n)]
        glue = r.choice(["", " ", "", "\n", " "])
        s = glue.join(pieces)
        if r.random() < 0.05:
            s = s.upper()
        if len(s) > 2000:
            s = s[:2000]
        out.append(s)
    return out[:count]


def corpus(seed, lines):
    r = random.Random(seed)
    out = []
    for _ in range(lines):
        n = r.randint(1, 8)
        out.append(" ".join(fragment(r, ["<|endoftext|>"]) if r.random() < 0.3 else prose(r, r.randint(3, 20))
                            for _ in range(n)))
    return out


def train(pre_tokenizer, normalizer, texts, vocab_size, byte_alphabet=True):
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tr = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=[],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if byte_alphabet else [])
    tok.train_from_iterator(texts, tr)
    model = json.loads(tok.to_str())["model"]
    return model["vocab"], [list(m) for m in model["merges"]]


def bpe_model(vocab, merges, spelling, **flags):
    m = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
         "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False}
    m.update(flags)
    m["vocab"] = vocab
    m["merges"] = [f"{a} {b}" for a, b in merges] if spelling == "string" else [[a, b] for a, b in merges]
    return m


def added(i, content, special, single_word=False, lstrip=False, rstrip=False, normalized=False):
    return {"id": i, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def byte_level(add_prefix_space, trim_offsets, use_regex, kind="ByteLevel"):
    return {"type": kind, "add_prefix_space": add_prefix_space, "trim_offsets": trim_offsets, "use_regex": use_regex}


def split(pattern, behavior="Isolated", invert=False, kind="Regex"):
    return {"type": "Split", "pattern": {kind: pattern}, "behavior": behavior, "invert": invert}


def document(added_tokens, normalizer, pre_tokenizer, post_processor, decoder, model):
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
            "decoder": decoder, "model": model}


def family_gpt2(texts):
    pre = byte_level(False, True, True)
    vocab, merges = train(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), None, texts, 2000)
    eot = len(vocab)
    vocab["<|endoftext|>"] = eot
    return document([added(eot, "<|endoftext|>", True, normalized=True)], None, pre, byte_level(True, False, True),
                    byte_level(True, True, True), bpe_model(vocab, merges, "string", continuing_subword_prefix="",
                                                            end_of_word_suffix=""))


LLAMA3_EXTRA = ["ĠHello", "Ġtokenizer", "Ġvocabulary", "Ġpreference", "Ġoptimization", "Ġtransformer", "Ġembedding",
                "Ġattention", "Ġgradient", "Ġnamespace", "Ġtemplate", "Ġreturn", "ĠParis", "ĠLondon", "ĠTokyo",
                "ĠBerlin", "ĠMonday", "ĠJanuary", "Ġpeople", "Ġbecause", "Ġthrough", "Ġbetween", "Ġanother",
                "tokenizer", "vocabulary", "Hello", "World", "ĠWorld", "ĊĊ", "ĠĠĠĠ", "ĉĉ", "Ġ{Ċ", "();Ċ",
                "123", "000", "999", "Ġdon", "'t", "'S", "Ġthe", "the", "ĠThe", "ĠTHE", "Ġand", "Ġof"]


def family_llama3(texts):
    pre = {"type": "Sequence", "pretokenizers": [split(LLAMA3_PATTERN), byte_level(False, True, False)]}
    lib_pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_PATTERN), "isolated"),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    vocab, merges = train(lib_pre, None, texts, 3000)
    for t in LLAMA3_EXTRA:  # whole-word entries without merges: only ignore_merges produces them
        if t not in vocab:
            vocab[t] = len(vocab)
    base = len(vocab)
    specials = [added(base + i, t, True) for i, t in enumerate(LLAMA3_SPECIAL)]
    post = {"type": "Sequence", "processors": [
        byte_level(True, False, True),
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [base], "tokens": ["<|begin_of_text|>"]}}}]}
    return document(specials, None, pre, post, byte_level(True, True, True),
                    bpe_model(vocab, merges, "pair", ignore_merges=True))


def family_qwen2(texts):
    pre = {"type": "Sequence", "pretokenizers": [split(QWEN2_PATTERN), byte_level(False, False, False)]}
    lib_pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_PATTERN), "isolated"),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    vocab, merges = train(lib_pre, normalizers.NFC(), texts, 2500)
    base = len(vocab)
    toks = [added(base + i, t, special) for i, (t, special) in enumerate(QWEN2_ADDED)]
    return document(toks, {"type": "NFC"}, pre, byte_level(False, False, False), byte_level(False, False, False),
                    bpe_model(vocab, merges, "string", continuing_subword_prefix="", end_of_word_suffix=""))


def family_variants(texts):
    steps = [split(r"[;|]", "Removed"), split("--", "MergedWithNext", kind="String"),
             split(r"\.+", "MergedWithPrevious"), split(r"\p{N}", "Contiguous", invert=True),
             split(r"(?i:x+)|(?>ab|a)c|q*?z|\bw\B|[\p{Nd}&&[^5-9]]|[^\P{L}a-z]{2,}", "Isolated"),
             {"type": "Digits", "individual_digits": False}, byte_level(True, True, True)]
    pre = {"type": "Sequence", "pretokenizers": steps}
    lib_pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[;|]"), "removed"), pre_tokenizers.Split("--", "merged_with_next"),
        pre_tokenizers.Split(Regex(r"\.+"), "merged_with_previous"),
        pre_tokenizers.Split(Regex(r"\p{N}"), "contiguous", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    vocab, merges = train(lib_pre, normalizers.Sequence([normalizers.NFC()]), texts, 1000)
    base = len(vocab)
    toks = [added(base + i, c, s, sw, ls, rs, nz) for i, (c, s, sw, ls, rs, nz) in enumerate(VARIANT_ADDED)]
    cls, sep = base, base + 1
    post = {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [cls], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [sep], "tokens": ["[SEP]"]}}}
    return document(toks, {"type": "Sequence", "normalizers": [{"type": "NFC"}]}, pre, post,
                    {"type": "Sequence", "decoders": [{"type": "ByteLevel", "add_prefix_space": True,
                                                       "trim_offsets": True, "use_regex": True}]},
                    bpe_model(vocab, merges, "pair"))


def family_charlevel(texts):
    pre = {"type": "Sequence", "pretokenizers": [split(r"\s+", "Removed"), {"type": "Digits", "individual_digits": True}]}
    ascii_texts = ["".join(c for c in t if ord(c) < 0x7F) for t in texts]
    vocab, merges = train(pre_tokenizers.Split(Regex(r"\s+"), "removed"), None, ascii_texts, 300, byte_alphabet=False)
    vocab["<unk>"] = len(vocab)
    return document([added(vocab["<unk>"], "<unk>", True)], None, pre, None, None,
                    bpe_model(vocab, merges, "pair", unk_token="<unk>", fuse_unk=True))


REGEX_CASES = [
    (LLAMA3_PATTERN, None), (QWEN2_PATTERN, None), (GPT2_PATTERN, None),
    (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)", ["'s 'S 'ſ 'K 'T 'Re 'rE 'VE 'M 'LL 'lL 'D 'x 'ß"]),
    (r"(?i:k)", ["k K \u212a x"]), (r"(?i:[a-z]+)", ["ABC\u212aſ-xyz"]), (r"(?i:[^k])", ["kK\u212ax"]),
    (r"(?i:σ)+", ["Σσς abc"]), (r"a(?=b)", ["ab ac abab"]), (r"a(?!b)", ["ab ac abab a"]),
    (r"\s+(?!\S)|\s+", ["a    b   ", "   ", "x \t\n y", "\u3000\u3000z"]), (r"\p{N}{1,3}", ["1234567 89 12a345"]),
    (r"\p{N}{2,}", ["1 22 333"]), (r"x{,2}y", ["xxxy xy y"]), (r"a{2}+", ["aaaaa"]), (r"a{2}", ["aaaaa"]),
    (r"a+?b", ["aaab ab b"]), (r"a*?", ["aaa"]), (r"a??b", ["ab b"]), (r"(?>a+)b", ["aaab"]), (r"(?>a|ab)c", ["abc ac"]),
    (r"a++b", ["aaab"]), (r"a*+a", ["aaaa"]), (r"(a|ab)(c|bcd)", ["abcd"]), (r"^\w+", ["foo bar\nbaz qux"]),
    (r"\w+$", ["foo bar\nbaz qux"]), (r"\A\w+", ["foo bar"]), (r"\w+\z", ["foo bar\n"]), (r"\w+\Z", ["foo bar\n"]),
    (r"\bx\w*", ["x xa ax x_y"]), (r"\Bx", ["x ax xx"]), (r".", ["a\nb"]), (r"(?m:.)", ["a\nb"]),
    (r"[\w&&[^aeiou]]+", ["education is key"]), (r"[a-c[x-z]]+", ["abxyq"]), (r"[^\s\p{L}\p{N}]+", ["a!@# 1$%^ b&*"]),
    (r"[\p{L}\p{N}]+", ["héllo wörld 42 ²³ 中文"]), (r"\P{L}+", ["abc123 def"]), (r"\p{^N}+", ["abc123 def"]),
    (r"\h+", ["0x1F 'g' cafe"]), (r"\H+", ["0x1F g"]), (r"\D+", ["a1b22c"]), (r"\S+", ["a b\u3000c"]), (r"\W+", ["a, b!c"]),
    (r"[\x41-\x43\u00e9\x{1F600}]+", ["ABCDé😀"]), (r"\t|\n|\r|\f|\v", ["a\tb\nc\rd\x0ce\x0bf"]), (r"\.\*\+\?", [".*+? ."]),
    (r"(?:ab)+", ["ababab aba"]), (r"(?<n>a)b", ["ab"]), (r"a(?#comment)b", ["ab"]), (r"(?i)ab|cd", ["AB Cd"]),
    (r"(?i:a(?-i:b))", ["ab AB Ab aB"]), (r"x*", ["abc"]), (r"\d*", ["a12b"]), (r"(?=a)", ["aaa"]), (r"|a", ["aa"]),
    (r"[-a]+", ["a-b--"]), (r"[a-]+", ["a-b--"]), (r"[]a]+", ["]a]b"]), (r"\p{Nd}+", ["١٢٣ 12 ²"]),
    (r"[^\r\n\p{L}\p{N}]?\p{L}+", ["\u00a0word\r\nword \u200bword"]), (r"\s*[\r\n]+", [" \n \n  x \r\n\r\n"]),
]


def regex_texts(r):
    frags = SPACES + PUNCT + CONTRACTIONS + EMOJI + MULTILINGUAL[:12] + ["abc", "ABC", "123", "1234567", "x", "_"]
    return ["".join(r.choice(frags) for _ in range(r.randint(1, 12))) for _ in range(60)]


def write_regex_cases(path, r):
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for pattern, texts in REGEX_CASES:
            for text in (texts if texts is not None else regex_texts(r)):
                pieces = pre_tokenizers.Split(Regex(pattern), "removed", invert=True).pre_tokenize_str(text)
                f.write(json.dumps({"pattern": pattern, "text": text, "matches": [list(o) for _, o in pieces]},
                                   ensure_ascii=False) + "\n")
                n += 1
    return n


def compact(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_family(name, doc, strings, r, extra_nofuse=False):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    text = json.dumps(doc, ensure_ascii=False, indent=None, separators=(",", ":"))
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(text + "\n")
    tok = Tokenizer.from_str(text)
    # What add_special_tokens=True puts around the ids (read off the empty string's encoding and
    # a probe), so that expected.jsonl needs "special" only where the template is not all.
    probe = tok.encode("a", add_special_tokens=False).ids
    around = tok.encode("a", add_special_tokens=True).ids
    cut = next(i for i in range(len(around)) if around[i:i + len(probe)] == probe) if probe else len(around)
    prefix, suffix = around[:cut], around[cut + len(probe):]
    with open(os.path.join(folder, "expected.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for s in strings:
            ids = tok.encode(s, add_special_tokens=False).ids
            rec = {"ids": ids}
            with_special = tok.encode(s, add_special_tokens=True).ids
            if with_special != prefix + ids + suffix:
                rec["special"] = with_special
            decoded = tok.decode(ids, skip_special_tokens=False)
            if decoded != s:
                rec["decoded"] = decoded
            skipped = tok.decode(ids, skip_special_tokens=True)
            if skipped != decoded:
                rec["decoded_skip"] = skipped
            f.write(compact(rec) + "\n")
    if extra_nofuse:
        d2 = json.loads(text)
        d2["model"]["fuse_unk"] = False
        tok2 = Tokenizer.from_str(json.dumps(d2))
        with open(os.path.join(folder, "expected_nofuse.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for s in strings:
                f.write(compact({"ids": tok2.encode(s, add_special_tokens=False).ids}) + "\n")
    vocab_size = max(tok.get_vocab(with_added_tokens=True).values()) + 1
    with open(os.path.join(folder, "decode.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for i in range(150):
            ids = [r.randrange(vocab_size) for _ in range(r.randint(0, 12))]
            skip = i % 2 == 1
            f.write(compact({"ids": ids, "skip": skip, "text": tok.decode(ids, skip_special_tokens=skip)}) + "\n")
    decoder = tok.get_added_tokens_decoder()
    sample = {str(i): tok.id_to_token(i) for i in sorted({0, 1, 100, 255, vocab_size // 2, vocab_size - 1})}
    meta = {"library": f"tokenizers {tokenizers.__version__}", "vocab_size": vocab_size,
            "special_prefix": prefix, "special_suffix": suffix,
            "added": [{"content": t.content, "id": i, "special": t.special, "token": tok.id_to_token(i)}
                      for i, t in sorted(decoder.items())],
            "id_to_token": sample}
    with open(os.path.join(folder, "meta.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(meta, ensure_ascii=False) + "\n")
    return tok


def main():
    argparse.ArgumentParser(description=__doc__).parse_args()
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    os.makedirs(OUT, exist_ok=True)
    r = random.Random(20240611)
    strings = make_strings(7, 3000, SPECIAL_SNIPPETS)
    with open(os.path.join(OUT, "strings.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for s in strings:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    texts = corpus(11, 6000)
    print(f"regex cases: {write_regex_cases(os.path.join(OUT, 'regex_cases.jsonl'), r)}")
    families = [("gpt2", family_gpt2(texts), 3000), ("llama3", family_llama3(texts), 3000),
                ("qwen2", family_qwen2(texts), 3000), ("variants", family_variants(texts), 700),
                ("charlevel", family_charlevel(texts), 300)]
    for name, doc, count in families:
        t0 = time.perf_counter()
        tok = write_family(name, doc, strings[:count], r, extra_nofuse=name == "charlevel")
        if name == "llama3":  # how often ignore_merges decides the ids
            d2 = json.loads(json.dumps(doc))
            d2["model"]["ignore_merges"] = False
            plain = Tokenizer.from_str(json.dumps(d2))
            diff = sum(tok.encode(s).ids != plain.encode(s).ids for s in strings[:count])
            print(f"  llama3: ignore_merges changes the ids of {diff} strings")
        print(f"{name}: {count} strings, vocab {tok.get_vocab_size()} ({time.perf_counter() - t0:.1f} s)")
    total = sum(len(s.encode()) for s in strings)
    for name in ("gpt2", "llama3", "qwen2"):
        tok = Tokenizer.from_file(os.path.join(OUT, name, "tokenizer.json"))
        t0 = time.perf_counter()
        for _ in range(5):
            for s in strings:
                tok.encode(s)
        dt = time.perf_counter() - t0
        print(f"library encode throughput {name}: {5 * total / dt / 1e6:.2f} MB/s (encode per string, {total} bytes x 5)")


if __name__ == "__main__":
    main()
