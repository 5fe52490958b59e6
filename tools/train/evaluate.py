"""Evaluates a tidal-code-mini folder with transformers alone (full attention, greedy generate):
held-out code loss and perplexity, FIM exact match, and passkey retrieval by context length and
depth. Prints a Markdown table and writes it, with the raw numbers, next to --out.

    python3 tools/train/evaluate.py --model-dir models/tidal-code-mini --out bench/train/eval.md
"""
import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

FIM_CONTEXT_TOKENS = 384  # prefix and suffix are each cropped to this many tokens next to the hole


@torch.no_grad()
def code_loss(model, buffer, device, windows, length, seed):
    rng = random.Random(seed)
    total, count = 0.0, 0
    for _ in range(windows):
        ids, _ = buffer.window(rng, length)
        x = torch.from_numpy(ids[None]).to(device)
        logits = model(input_ids=x).logits.float()
        total += F.cross_entropy(logits[0, :-1], x[0, 1:], reduction="sum").item()
        count += length - 1
    return total / count


@torch.no_grad()
def greedy(model, prompt, device, max_new_tokens, eos_ids):
    x = torch.tensor([prompt], device=device)
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                         do_sample=False, eos_token_id=eos_ids, pad_token_id=eos_ids[0])
    return out[0, x.size(1):].tolist()


def fim_exact_match(model, builder, tokens, device, examples, seed):
    rng = random.Random(seed)
    hits = 0
    for _ in range(examples):
        prefix, suffix, middle = builder.fim_example(rng, line_span=True)
        prompt, answer = builder.fim_ids(prefix, suffix, middle)
        # crop far context: keep the tokens nearest the hole on both sides
        cut = prompt.index(tokens.special[data.FIM_SUFFIX])
        prefix_ids, suffix_ids = prompt[1:cut], prompt[cut + 1:-1]
        prompt = ([prompt[0]] + prefix_ids[-FIM_CONTEXT_TOKENS:] + [prompt[cut]] +
                  suffix_ids[:FIM_CONTEXT_TOKENS] + [prompt[-1]])
        generated = greedy(model, prompt, device, len(answer) + 8, [tokens.eos])
        if generated and generated[-1] == tokens.eos:
            generated = generated[:-1]
        hits += tokens.decode(generated).strip() == middle.strip()
    return hits / examples


def passkey_accuracy(model, builder, tokens, device, length, depth, trials, seed):
    rng = random.Random(seed)
    hits = 0
    for _ in range(trials):
        needle = data.random_needle(rng)
        ids, answer_start, _ = builder.retrieval_ids(length, depth, needle, rng=rng)
        answer = ids[answer_start:]
        generated = greedy(model, ids[:answer_start], device, len(answer) + 2, [tokens.eos])
        hits += generated[:len(answer)] == answer
    return hits / trials


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--out", required=True, help="Markdown table; a .json with raw numbers goes beside it")
    parser.add_argument("--corpus-bytes", type=int, default=24_000_000, help="as in training, for the same split")
    parser.add_argument("--seed", type=int, default=1234, help="as in training, for the same split")
    parser.add_argument("--loss-windows", type=int, default=32)
    parser.add_argument("--fim-examples", type=int, default=200)
    parser.add_argument("--lengths", default="1024,2048,4096,8192")
    parser.add_argument("--depths", default="0.1,0.5,0.9")
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype).to(device).eval()
    tokens, _, held_out_files = data.load_splits(os.path.join(args.model_dir, "tokenizer.json"),
                                                 args.corpus_bytes, args.seed)
    builder = data.RowBuilder(tokens, held_out_files, seed=args.seed + 2)
    results = {"device": device, "dtype": str(dtype), "held_out_files": len(held_out_files)}

    started = time.time()
    loss = code_loss(model, builder.buffer, device, args.loss_windows, 1024, args.seed)
    results["code_loss"], results["code_perplexity"] = loss, math.exp(loss)
    print(f"held-out code loss {loss:.4f} ({time.time() - started:.0f}s)", flush=True)
    results["fim_exact_match"] = fim_exact_match(model, builder, tokens, device, args.fim_examples, args.seed)
    results["fim_examples"] = args.fim_examples
    print(f"FIM exact match {results['fim_exact_match']:.3f} ({time.time() - started:.0f}s)", flush=True)

    lengths = [int(v) for v in args.lengths.split(",")]
    depths = [float(v) for v in args.depths.split(",")]
    passkey = {}
    for length in lengths:
        for depth in depths:
            passkey[f"{length}@{depth}"] = passkey_accuracy(model, builder, tokens, device, length, depth,
                                                            args.trials, args.seed + length)
        print(f"passkey {length}: {[passkey[f'{length}@{d}'] for d in depths]} ({time.time() - started:.0f}s)",
              flush=True)
    results["passkey"], results["passkey_trials"] = passkey, args.trials

    lines = [f"| metric | value |", "| --- | --- |",
             f"| held-out code loss (nats/token, 1024-token windows x {args.loss_windows}) | {loss:.3f} |",
             f"| held-out code perplexity | {math.exp(loss):.1f} |",
             f"| FIM exact match (1-3 line middles, {args.fim_examples} held-out examples) | "
             f"{100 * results['fim_exact_match']:.1f}% |", "",
             "| passkey context | " + " | ".join(f"depth {int(d * 100)}%" for d in depths) + " | mean |",
             "| --- | " + " | ".join("---" for _ in depths) + " | --- |"]
    for length in lengths:
        values = [passkey[f"{length}@{d}"] for d in depths]
        lines.append(f"| {length} | " + " | ".join(f"{100 * v:.0f}%" for v in values) +
                     f" | {100 * sum(values) / len(values):.0f}% |")
    table = "\n".join(lines)
    print(table)
    with open(args.out, "w") as handle:
        handle.write(table + "\n")
    with open(os.path.splitext(args.out)[0] + ".json", "w") as handle:
        json.dump(results, handle, indent=2)
        handle.write("\n")


if __name__ == "__main__":
    main()
