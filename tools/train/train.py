"""Trains tidal-code-mini and exports it as a Hugging Face model folder (bf16 safetensors).

GPU recipe (one H100, one command of under 10 minutes): tools/train/run_gpu.sh
CPU recipe (the first shipped weights; 2 cores, bf16 autocast):
    python3 tools/train/train.py --model-dir models/tidal-code-mini --log bench/train/loss.csv \\
        --corpus-bytes 24000000 --tokens-per-batch 8192 --time-budget 1800 \\
        --log-every 10 --eval-every 50 --stages 0:256:0.15,0.25:512:0.3,0.6:1024:0.35

Long-context continuation (tools/train/run_long_gpu.sh): --init starts from a trained folder's
weights instead of random ones, and --max-positions sets the exported model's
max_position_embeddings; stages may add a cross-file probability and a span that stretches
their rows' positions (data.py: Curriculum, stretched_positions).

The tokenizer must already be in --model-dir (train_tokenizer.py). Progress through the
learning-rate schedule and the length curriculum is measured in steps (--steps) or, with
--time-budget, in elapsed seconds, so a run always finishes its cosine decay on time.
"""
import argparse
import csv
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import model as model_shape  # noqa: E402
from special_tokens import END_OF_TEXT, IM_END  # noqa: E402


def parse_stages(text):
    """"start:length:retrieval[:crossfile[:span]],..." -> [(start, length, retrieval[, crossfile[, span]])]
    (data.Curriculum takes a missing cross-file probability as 0, and a missing span as the
    length: rows whose positions are not stretched)."""
    stages = []
    for part in text.split(","):
        fields = part.split(":")
        if len(fields) not in (3, 4, 5):
            raise ValueError(f"a stage is start:length:retrieval[:crossfile[:span]], got '{part}'")
        stage = (float(fields[0]), int(fields[1]), *map(float, fields[2:4]))
        stages.append(stage + ((int(fields[4]),) if len(fields) == 5 else ()))
    return stages


def learning_rate(progress, peak, warmup_fraction, floor_fraction=0.1):
    if progress < warmup_fraction:
        return peak * progress / warmup_fraction
    decay = (progress - warmup_fraction) / max(1e-9, 1 - warmup_fraction)
    return peak * (floor_fraction + (1 - floor_fraction) * 0.5 * (1 + math.cos(math.pi * min(1.0, decay))))


def weighted_loss(logits, ids, weights):
    """Mean next-token cross entropy weighted by the target token's weight; also returns the
    unweighted per-row mean so losses can be reported per stream."""
    targets = ids[:, 1:]
    token_weights = weights[:, 1:]
    ce = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                         reduction="none").view_as(targets)
    loss = (ce * token_weights).sum() / token_weights.sum()
    return loss, ce.detach().mean(dim=1)


@torch.no_grad()
def held_out_loss(model, rows, device, autocast):
    model.eval()
    total, count = 0.0, 0
    for ids in rows:
        x = torch.from_numpy(ids[None]).to(device)
        with autocast():
            logits = model(input_ids=x).logits
        ce = F.cross_entropy(logits[0, :-1].float(), x[0, 1:], reduction="sum")
        total += ce.item()
        count += x.size(1) - 1
    model.train()
    return total / count


def export(model, tokens, model_dir):
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.generation_config.eos_token_id = [tokens.eos, tokens.special[IM_END]]
    model.generation_config.pad_token_id = tokens.eos
    model.generation_config.bos_token_id = tokens.eos
    model.generation_config.do_sample = False
    model.save_pretrained(model_dir, safe_serialization=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--log", required=True, help="loss curve CSV")
    parser.add_argument("--corpus-bytes", type=int, default=300_000_000)
    parser.add_argument("--tokens-per-batch", type=int, default=131072)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--time-budget", type=float, default=None, help="seconds of training")
    parser.add_argument("--stages", default="0:1024:0.15,0.35:4096:0.3,0.7:8192:0.35")
    parser.add_argument("--fim-probability", type=float, default=0.25)
    parser.add_argument("--far-share", type=float, default=0.0,
                        help="share of stretched retrieval and cross-file rows whose position jump falls "
                             "between the planted key and the request (data.Curriculum)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=float, default=0.04, help="fraction of the run")
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--init", default=None, help="a model folder whose weights training starts from")
    parser.add_argument("--max-positions", type=int, default=None,
                        help="max_position_embeddings of the exported model (default: the longest stage, at least 16384)")
    parser.add_argument("--checkpoint", default=None, help="where to save optimizer state at the end")
    parser.add_argument("--resume", default=None)
    args = parser.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    started = time.time()
    tokens, train_files, held_out_files = data.load_splits(
        os.path.join(args.model_dir, "tokenizer.json"), args.corpus_bytes, args.seed)
    builder = data.RowBuilder(tokens, train_files, seed=args.seed)
    held_out = data.CodeBuffer(tokens, held_out_files)
    eval_rng = random.Random(args.seed + 1)
    eval_rows = [held_out.window(eval_rng, 1024)[0] for _ in range(16)]
    curriculum = data.Curriculum(parse_stages(args.stages), args.fim_probability, args.far_share)
    print(f"data: {len(train_files)} train files ({len(builder.buffer.ids) / 1e6:.1f}M tokens), "
          f"{len(held_out_files)} held-out files ({len(held_out.ids) / 1e6:.2f}M tokens), "
          f"prepared in {time.time() - started:.0f}s", flush=True)

    max_length = max(stage[1] for stage in curriculum.stages)
    max_span = max(max(stage[1], int(stage[4])) for stage in curriculum.stages)
    positions = args.max_positions or max(16384, max_span)
    if positions < max_span:
        raise SystemExit(f"--max-positions {positions} is shorter than the longest stage or span ({max_span})")
    if args.init:
        model = model_shape.load_model(args.init, positions)
        if model.config.vocab_size != tokens.tokenizer.get_vocab_size():
            raise SystemExit(f"--init {args.init} has a vocabulary of {model.config.vocab_size}, the tokenizer "
                             f"{tokens.tokenizer.get_vocab_size()}")
        model = model.to(device)
        print(f"initialised from {args.init}", flush=True)
    else:
        config = model_shape.build_config(tokens.tokenizer.get_vocab_size(), tokens.eos,
                                          max_position_embeddings=positions)
        model = model_shape.build_model(config).to(device)
    print(f"parameters: {model_shape.count_parameters(model) / 1e6:.2f}M", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=device == "cuda")
    step, tokens_seen, elapsed_before = 0, 0, 0.0
    if args.resume:
        state = torch.load(args.resume, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, tokens_seen, elapsed_before = state["step"], state["tokens_seen"], state["elapsed"]
        builder.rng.setstate(state["data_rng"])
    forward = torch.compile(model) if args.compile else model

    def autocast():
        return torch.autocast(device, dtype=torch.bfloat16)

    if device == "cuda" and max_length > 16384:
        # One row of the longest stage first, so a shape that does not fit fails in seconds, not
        # at the last stage; the time also says what the last stage's steps will cost.
        probe_started = time.time()
        probe = torch.randint(0, model.config.vocab_size, (1, max_length), device=device)
        with autocast():
            probe_loss = forward(input_ids=probe).logits.float().logsumexp(-1).mean()
        probe_loss.backward()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        print(f"probe: a {max_length}-token row forward and backward in {time.time() - probe_started:.1f}s, "
              f"peak {torch.cuda.max_memory_allocated() / 1e9:.1f} GB", flush=True)
        del probe, probe_loss

    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
    log_file = open(args.log, "a" if args.resume else "w", newline="")
    log = csv.writer(log_file)
    if not args.resume:
        log.writerow(["step", "tokens", "seconds", "seq_len", "lr", "loss", "code_loss", "fim_loss",
                      "retrieval_loss", "crossfile_loss", "held_out_loss"])
    train_started = time.time() - elapsed_before
    kind_losses = {"code": [], "fim": [], "retrieval": [], "crossfile": []}
    window_losses = []
    while True:
        elapsed = time.time() - train_started
        progress = elapsed / args.time_budget if args.time_budget else step / args.steps
        if progress >= 1.0:
            break
        lr = learning_rate(progress, args.lr, args.warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        ids, weights, position_ids, length, kinds = data.make_batch(builder, curriculum, progress,
                                                                    args.tokens_per_batch)
        x = torch.from_numpy(ids).to(device, non_blocking=True)
        w = torch.from_numpy(weights).to(device, non_blocking=True)
        stretched = {}
        if position_ids is not None:
            # The explicit all-ones mask matters: without one, transformers reads a jump in the
            # position ids as the start of another packed sequence and would mask attention
            # across the cut, the very distances the stretched rows are there to teach.
            stretched = {"position_ids": torch.from_numpy(position_ids).to(device, non_blocking=True),
                         "attention_mask": torch.ones_like(x)}
        with autocast():
            logits = forward(input_ids=x, **stretched).logits
        loss, row_losses = weighted_loss(logits, x, w)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += ids.size
        window_losses.append(loss.item())
        for kind, value in zip(kinds, row_losses.tolist()):
            kind_losses[kind].append(value)
        if step % args.log_every == 0:
            held = held_out_loss(model, eval_rows, device, autocast) if step % args.eval_every == 0 else ""

            def mean(values):
                return f"{sum(values) / len(values):.4f}" if values else ""
            row = [step, tokens_seen, f"{time.time() - train_started:.1f}", length, f"{lr:.2e}",
                   mean(window_losses), mean(kind_losses["code"]), mean(kind_losses["fim"]),
                   mean(kind_losses["retrieval"]), mean(kind_losses["crossfile"]), f"{held:.4f}" if held != "" else ""]
            log.writerow(row)
            log_file.flush()
            print(" ".join(str(v) for v in row), flush=True)
            window_losses = []
            kind_losses = {k: [] for k in kind_losses}

    final_held_out = held_out_loss(model, eval_rows, device, autocast)
    seconds = time.time() - train_started
    print(f"done: {step} steps, {tokens_seen / 1e6:.2f}M tokens, {seconds:.0f}s, "
          f"held-out loss {final_held_out:.4f}", flush=True)
    log_file.close()
    if args.checkpoint:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "tokens_seen": tokens_seen, "elapsed": seconds, "data_rng": builder.rng.getstate()},
                   args.checkpoint)
    export(model, tokens, args.model_dir)
    summary = {"steps": step, "tokens_seen": tokens_seen, "train_seconds": round(seconds, 1),
               "held_out_loss": round(final_held_out, 4), "device": device,
               "parameters": model_shape.count_parameters(model),
               "args": {k: v for k, v in vars(args).items() if k not in ("checkpoint", "resume")}}
    with open(os.path.join(os.path.dirname(os.path.abspath(args.log)), "train_summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")


if __name__ == "__main__":
    main()
