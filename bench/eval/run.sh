#!/usr/bin/env bash
# Every run behind bench/eval/eval.md and eval_distractors.md, then the tables.
#
#   bash bench/eval/run.sh            # from the repository root, after `npm run build`
#
# TIDAL_EVAL (default `node dist/tidal-eval.js`), THREADS per process (default 2) and SHARDS
# (parallel processes per run, default 1; the samples are the same for any number of shards)
# can be set in the environment. On 2 cores this takes about an hour and a half, most of it in the
# 16K and 32K prefills (32K: about 200 s per sample on 3 threads of a 16-core machine).
set -euo pipefail
read -r -a TIDAL_EVAL <<< "${TIDAL_EVAL:-node dist/tidal-eval.js}"
THREADS=${THREADS:-2}
SHARDS=${SHARDS:-1}
RAW=bench/eval/raw
mkdir -p "$RAW"

# Held-out code: this repository's own sources at a fixed commit (the model was trained on a
# machine's installed Python packages and headers, never on this repository).
CORPUS=$(mktemp -d)
git archive 45be93b src native/src native/cli native/include native/addon | tar -x -C "$CORPUS"

run() {  # run NAME ARGS...: one eval, split over $SHARDS processes
  local name=$1; shift
  for ((s = 0; s < SHARDS; s++)); do
    "${TIDAL_EVAL[@]}" --model models/tidal-code-mini --corpus-base "$CORPUS" --threads "$THREADS" \
      --shard "$s/$SHARDS" --save "$RAW/${name}_$s.tsv" "$@" > /dev/null &
  done
  wait
}

run local_4k_8k_ppl --contexts 4096,8192 --trials 4 --perplexity-windows 4 --perplexity-length 4096 \
  --perplexity-scored 256
run local12k --contexts 12288 --trials 1 --perplexity-windows 0 --max-positions 32768
run local16k --contexts 16384 --trials 2 --perplexity-windows 0 --max-positions 32768
run local24k --contexts 24576 --trials 1 --perplexity-windows 0 --max-positions 32768
run d32k --contexts 32768 --trials 1 --perplexity-windows 0 --max-positions 32768
run distract --contexts 4096,8192 --trials 1 --distractors 2 --perplexity-windows 0 --max-positions 32768
rm -rf "$CORPUS"

join() { local IFS=,; echo "$*"; }
"${TIDAL_EVAL[@]}" --load "$(join $(ls $RAW/*.tsv | grep -v distract))" --output bench/eval/eval.md
"${TIDAL_EVAL[@]}" --load "$(join $RAW/distract*.tsv)" --output bench/eval/eval_distractors.md
