#!/usr/bin/env python3
"""Writes a GPT-2-small-shaped model (12 layers, width 768, 12 heads, vocab 50257, 1024 positions;
config.json + model.safetensors, Hugging Face names) and tokenized random pairs for dp_bench.sh.
Standard library only: the weights repeat one block of N(0, 0.02) values (biases 0, norms 1), which
is enough for timing and memory. Usage: dp_model.py OUT_DIR [PAIRS] [PROMPT] [COMPLETION]"""
import array, json, os, random, struct, sys

out = sys.argv[1]
pairs, prompt, completion = (int(a) for a in (sys.argv[2:5] + ["16", "64", "64"][len(sys.argv[2:5]):]))
L, C, H, V, P = 12, 768, 12, 50257, 1024
os.makedirs(os.path.join(out, "model"), exist_ok=True)
cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
       "n_layer": L, "n_embd": C, "n_head": H, "n_inner": None, "n_positions": P, "vocab_size": V,
       "layer_norm_epsilon": 1e-5, "attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0,
       "bos_token_id": 50256, "eos_token_id": 50256, "tie_word_embeddings": True, "dtype": "float32"}
json.dump(cfg, open(os.path.join(out, "model", "config.json"), "w"), indent=1)

shapes = [("transformer.wte.weight", [V, C]), ("transformer.wpe.weight", [P, C])]
for i in range(L):
    p = f"transformer.h.{i}."
    shapes += [(p + "ln_1.weight", [C]), (p + "ln_1.bias", [C]), (p + "attn.c_attn.weight", [C, 3 * C]),
               (p + "attn.c_attn.bias", [3 * C]), (p + "attn.c_proj.weight", [C, C]), (p + "attn.c_proj.bias", [C]),
               (p + "ln_2.weight", [C]), (p + "ln_2.bias", [C]), (p + "mlp.c_fc.weight", [C, 4 * C]),
               (p + "mlp.c_fc.bias", [4 * C]), (p + "mlp.c_proj.weight", [4 * C, C]), (p + "mlp.c_proj.bias", [C])]
shapes += [("transformer.ln_f.weight", [C]), ("transformer.ln_f.bias", [C])]
rng = random.Random(0)
block = array.array("f", (rng.gauss(0.0, 0.02) for _ in range(100003))).tobytes()
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name, shape in shapes:
    n = 1
    for s in shape:
        n *= s
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * n]}
    offset += 4 * n
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(out, "model", "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for name, shape in shapes:
        n = 1
        for s in shape:
            n *= s
        if len(shape) == 1:
            f.write(array.array("f", [1.0 if name.endswith("ln_1.weight") or name.endswith("ln_2.weight")
                                      or name.endswith("ln_f.weight") else 0.0]).tobytes() * n)
        else:
            full, rest = divmod(4 * n, len(block))
            f.write(block * full + block[:rest])
ids = lambda n: [rng.randrange(V - 1) for _ in range(n)]
with open(os.path.join(out, "pairs.jsonl"), "w") as f:
    for _ in range(pairs):
        f.write(json.dumps({"prompt_input_ids": ids(prompt), "chosen_input_ids": ids(completion),
                            "rejected_input_ids": ids(completion)}) + "\n")
