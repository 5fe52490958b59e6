"""Trains the byte-level BPE tokenizer of tidal-code-mini on source code found on this machine and
checks that it round-trips text exactly.

    python3 tools/train/train_tokenizer.py --out models/tidal-code-mini

Pre-tokenization splits like Qwen2 (letters with one leading non-letter, single digits,
punctuation runs, newline runs, whitespace runs), then maps bytes to the GPT-2 byte alphabet, so
every byte string is representable and decode(encode(x)) == x for any text. Single-digit tokens
keep numbers copyable digit by digit, which the passkey task relies on.
"""
import argparse
import json
import os
import random
import sys

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
from special_tokens import (CHAT_TEMPLATE, END_OF_TEXT, SPECIAL_TOKENS)  # noqa: E402

SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

ROUND_TRIP_SAMPLES = [
    "def f(x):\n\treturn x  \n\n\n",
    "    \t  mixed\t\tindent   \r\n trailing \t",
    "naïve café — Ünïcödé ∑ λx.x → ∞ 漢字 テスト 🙂👩‍💻 e\u0301 \u200b zero-width",
    "x = \"SECRET_KEY_alpha = '0123456789'\"  # ->  ",
    "",
    " ",
    "\n",
    "<|endoftext|> literal special token text <|fim_prefix|>",
    "\x01\x7f control chars \ufeff BOM",
]


def build_tokenizer():
    tokenizer = Tokenizer(models.BPE(byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train(files, vocab_size):
    tokenizer = build_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator((f.text for f in files), trainer=trainer, length=len(files))
    return tokenizer


def write_tokenizer_config(out_dir, model_max_length):
    added = {}
    for token in SPECIAL_TOKENS:
        added[str(SPECIAL_TOKENS.index(token))] = {
            "content": token, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "additional_special_tokens": SPECIAL_TOKENS[1:],
        "bos_token": None,
        "eos_token": END_OF_TEXT,
        "pad_token": END_OF_TEXT,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as handle:
        json.dump(config, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def check_round_trip(out_dir, texts):
    """Raw tokenizers and transformers' AutoTokenizer must both give back the exact text."""
    tokenizer = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    failures = 0
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        if tokenizer.decode(ids, skip_special_tokens=False) != text:
            failures += 1
    try:
        from transformers import AutoTokenizer
    except ImportError:
        print("transformers not installed: AutoTokenizer check skipped")
        return failures
    auto = AutoTokenizer.from_pretrained(out_dir)
    for text in texts:
        ids = auto.encode(text, add_special_tokens=False)
        if auto.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) != text:
            failures += 1
    chat = auto.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                    add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", chat
    assert auto.eos_token == END_OF_TEXT and auto.pad_token == END_OF_TEXT
    for index, token in enumerate(SPECIAL_TOKENS):
        assert auto.convert_tokens_to_ids(token) == index, token
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--sample-bytes", type=int, default=48_000_000)
    parser.add_argument("--model-max-length", type=int, default=16384)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    assert 8192 <= args.vocab_size <= 16384

    files = corpus.load_corpus(max_bytes=args.sample_bytes, seed=args.seed)
    train_files, held_out = corpus.split(files)
    print(f"tokenizer corpus: {len(train_files)} train files, {len(held_out)} held out, "
          f"{sum(len(f.text) for f in train_files) / 1e6:.1f} MB")
    tokenizer = train(train_files, args.vocab_size)
    os.makedirs(args.out, exist_ok=True)
    tokenizer.save(os.path.join(args.out, "tokenizer.json"))
    write_tokenizer_config(args.out, args.model_max_length)

    sample = random.Random(args.seed).sample(held_out, min(200, len(held_out)))
    texts = [f.text for f in sample] + ROUND_TRIP_SAMPLES
    failures = check_round_trip(args.out, texts)
    total_bytes = sum(len(f.text.encode()) for f in sample)
    total_tokens = sum(len(tokenizer.encode(f.text).ids) for f in sample)
    print(f"vocab {tokenizer.get_vocab_size()}; held-out compression {total_bytes / total_tokens:.2f} "
          f"bytes/token; round-trip failures {failures} of {2 * len(texts)} checks")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
