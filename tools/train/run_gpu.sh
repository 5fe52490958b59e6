#!/usr/bin/env bash
# Trains and evaluates tidal-code-mini on one GPU in a single command of under 10 minutes.
# The tokenizer already in models/tidal-code-mini is kept, so the vocabulary matches the shipped
# model; everything written goes under ${OUT:-out/train} as one tar file plus the logs.
#   bash tools/train/run_gpu.sh
set -euo pipefail
export PYTHONUNBUFFERED=1
out="${OUT:-out/train}"
mkdir -p "$out" bench/train
python3 tools/train/train.py --model-dir models/tidal-code-mini --log bench/train/loss.csv \
    --corpus-bytes 300000000 --tokens-per-batch 131072 --time-budget "${TRAIN_SECONDS:-420}" \
    --log-every 10 --eval-every 100 --lr 2e-3 --compile \
    --stages 0:1024:0.15,0.35:4096:0.3,0.7:8192:0.35 2>&1 | tee bench/train/train_log.txt
python3 tools/train/evaluate.py --model-dir models/tidal-code-mini --out bench/train/eval.md \
    --corpus-bytes 300000000 --fim-examples 300 --trials 10 2>&1 \
    | grep -v "max_new_tokens" | tee bench/train/eval_log.txt
tar -cf "$out/tidal-code-mini.tar" models/tidal-code-mini bench/train
