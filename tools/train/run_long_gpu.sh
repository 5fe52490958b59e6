#!/usr/bin/env bash
# Long-context continuation of tidal-code-mini on one GPU, in a single command of under 10
# minutes: starts from the shipped weights, trains in stages of 16K, 32K, 64K and 128K tokens on
# real code, FIM, passkey retrieval and cross-file helper calls (data.py), exports a folder with
# max_position_embeddings 131072, and evaluates it with transformers at 1K-32K (the short
# contexts it must not lose), then, with .carry/eval packed (bench/e2e/pack.sh --eval), runs
# tidal-eval on the engine's CUDA backend at 16K-128K. Everything written goes under
# ${OUT:-out/train-long}: the loss curve, the evaluation tables, and one tar (the model folder,
# its transformers fixture for test/fixtures/shipped-model, the JSON summaries) cut into pieces
# under 16 MiB: 7 files, of the 8 that come back from the GPU machine.
#   bash tools/train/run_long_gpu.sh
# LONG_EVAL_ONLY=1 skips the training, the transformers evaluation and the tar, and runs only
# the engine's evaluation of LONG_INIT (e.g. other selection layers for a model trained before).
# TRAIN_FIM (default 0.2) is the share of FIM rows at every length. A stage's fifth field stretches
# its rows' positions to a longer span (train.py, data.stretched_positions): the shipped weights'
# last stage ran 16K rows spanning up to 128K, then real 128K rows, from stage 4's folder:
#   LONG_INIT=<stage 4> LONG_NAME=model6 TRAIN_SECONDS=400 TRAIN_LR=3e-4 TRAIN_FIM=0.1 \
#   TRAIN_STAGES=0:16384:0.5:0.35:131072,0.65:131072:0.5:0.35 bash tools/train/run_long_gpu.sh
# TRAIN_FAR (default 0) is the share of stretched retrieval and cross-file rows whose position jump
# is pinned between the planted key (or helper file) and the request, so that each of them teaches
# a distance past the row's length (data.Curriculum). The next stage, from the shipped weights, for
# the cross-file helpers that sit 50K-120K tokens back (bench/NOTES.md, Version 33):
#   LONG_NAME=model7 TRAIN_SECONDS=420 TRAIN_LR=2e-4 TRAIN_FIM=0.1 TRAIN_FAR=1 \
#   TRAIN_STAGES=0:16384:0.3:0.55:131072,0.6:131072:0.3:0.5 bash tools/train/run_long_gpu.sh
# The rows' structure is checked first (tools/train/test_data.py, with the real tokenizer).
# EVAL_SELECTION (default '2,4') and EVAL_BUDGETS (default 256,1024,2048) choose the engine
# evaluation's TidalDecode selection-layer sets (';' between sets, e.g. '2,4;1,3;2,3;3') and budgets.
# EVAL_EXTRA adds options to it, e.g. '--selection-policies perQueryHead,perKvHeadMax,perKvHeadSum'.
# A second stage on the same (warm) machine continues from the first's folder, longer rows:
#   LONG_INIT=/tmp/tidal-code-long/model LONG_NAME=model2 TRAIN_SECONDS=270 TRAIN_LR=4e-4 \
#   TRAIN_STAGES=0:32768:0.4:0.25,0.3:65536:0.4:0.3,0.6:131072:0.4:0.3 bash tools/train/run_long_gpu.sh
# (bench/train/long/ holds both stages' logs, bench/eval/long_stage*_h100.md their tables.)
# Nothing of /tmp survives the machine, and 30 MB of weights do not fit in what travels to it, so
# a later session runs the stages again before the next one, e.g. a third stage that starts the
# cross-file rows at 8K, where the small model can learn the skill before it must reach far:
#   LONG_INIT=/tmp/tidal-code-long/model2 LONG_NAME=model3 TRAIN_SECONDS=280 TRAIN_LR=3e-4 \
#   TRAIN_STAGES=0:8192:0.2:0.5,0.25:32768:0.35:0.35,0.5:65536:0.35:0.3,0.75:131072:0.4:0.3 ...
set -euo pipefail
export PYTHONUNBUFFERED=1
out="${OUT:-out/train-long}"
work="${LONG_WORK:-/tmp/tidal-code-long}"
mkdir -p "$out" "$work"
init="${LONG_INIT:-models/tidal-code-mini}"
name="${LONG_NAME:-model}"
model="$work/$name"
if [ "${LONG_EVAL_ONLY:-0}" = 1 ]; then
  model="$init"  # no training: the engine's evaluation below, of LONG_INIT as it is
else
  python3 tools/train/test_data.py > "$work/test_data.txt" 2>&1 || { tail -40 "$work/test_data.txt"; exit 1; }
  rm -rf "$model"
  cp -r "$init" "$model"
  python3 tools/train/train.py --init "$init" --model-dir "$model" --log "$out/loss.csv" \
      --corpus-bytes 300000000 --tokens-per-batch 131072 --time-budget "${TRAIN_SECONDS:-240}" \
      --log-every 5 --eval-every 50 --lr "${TRAIN_LR:-6e-4}" --warmup 0.03 --max-positions 131072 \
      --stages "${TRAIN_STAGES:-0:16384:0.3:0.2,0.3:32768:0.3:0.25,0.55:65536:0.3:0.25,0.8:131072:0.3:0.25}" \
      --fim-probability "${TRAIN_FIM:-0.2}" --far-share "${TRAIN_FAR:-0}" > "$work/train_log.txt" 2>&1 || { tail -40 "$work/train_log.txt"; exit 1; }
  grep -v "^[0-9]" "$work/train_log.txt"; awk 'NR % 10 == 0' "$out/loss.csv" | tail -30
  python3 tools/train/evaluate.py --model-dir "$model" --out "$out/eval.md" \
      --corpus-bytes 300000000 --fim-examples "${EVAL_FIM:-100}" --trials 10 \
      --lengths "${EVAL_LENGTHS:-1024,2048,4096,8192,16384,32768}" 2>&1 \
      | grep -v "max_new_tokens" | tee "$work/eval_log.txt"

  # transformers' logits of the new weights, for test/fixtures/shipped-model should they ship;
  # the model goes into the tar before the engine's evaluation, so a failure there loses nothing.
  python3 tools/fixtures/record_shipped_model.py --model "$model" --out "$work/shipped-model" > /dev/null
  mkdir -p "$work/results"
  mv "$out/train_summary.json" "$out/eval.json" "$work/results/" 2>/dev/null || true
  tar -C "$work" -cf "$work/model.tar" "$name" shipped-model results
  split -b 15M -d "$work/model.tar" "$out/model.tar.part"
  sha256sum "$work/model.tar"
fi

# The engine itself on CUDA at 16K-128K, when bench/e2e/pack.sh --eval packed Node, the addon and
# tidal-eval into .carry/eval: passkey and cross-file completion for full / TidalDecode / Quest,
# records saved as they finish (a run stopped by its time limit keeps them).
if [ -f .carry/eval/node.xz ]; then
  bin="$work/bin"
  mkdir -p "$bin/native"
  xz -d -c .carry/eval/node.xz > "$bin/node" && chmod +x "$bin/node"
  xz -d -c .carry/eval/tidal_native.node.xz > "$bin/native/tidal_native.node"
  xz -d -c .carry/eval/tidal-eval.js.xz > "$bin/tidal-eval.js"
  # cuBLAS from PyTorch's wheel when it is there (else the engine looks for the system's).
  cublas=$(find $(python3 -c 'import site; print(" ".join(site.getsitepackages()))') -name 'libcublas.so*' 2>/dev/null | sort -r | head -1 || true)
  [ -n "$cublas" ] && export TIDAL_CUBLAS="$cublas"
  evaluate() {  # evaluate NAME SECONDS ARGS...
    local name=$1 seconds=$2; shift 2
    timeout "$seconds" "$bin/node" "$bin/tidal-eval.js" --backend cuda --model "$model" --corpus-base . \
      --depths 0.1,0.5,0.9 --budgets "${EVAL_BUDGETS:-256,1024,2048}" --selection-choices "${EVAL_SELECTION:-2,4}" \
      --trained-length 131072 \
      --save "$work/$name.tsv" ${EVAL_EXTRA:-} "$@" > /dev/null 2> "$work/$name.log" || echo "tidal-eval $name: exit $?"
    cat "$work/$name.log"
  }
  evaluate long_a "${EVAL_A_SECONDS:-110}" --contexts 32768,100000 --trials "${EVAL_TRIALS:-6}" \
    --crossfile-trials "${EVAL_TRIALS:-6}" --perplexity-windows 2 --perplexity-length 32768 --perplexity-scored 128
  evaluate long_b "${EVAL_B_SECONDS:-110}" --contexts 16384,65536,131072 --trials "${EVAL_TRIALS:-6}" \
    --crossfile-trials "${EVAL_TRIALS:-6}" --perplexity-windows 0
  cat "$work/long_a.tsv" "$work/long_b.tsv" > "$out/long.tsv" 2>/dev/null || true
  "$bin/node" "$bin/tidal-eval.js" --load "$out/long.tsv" --trained-length 131072 --output "$out/long.md" > /dev/null \
    && cat "$out/long.md"
fi
