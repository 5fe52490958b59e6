#!/usr/bin/env bash
# Runs the end-to-end replay on the GPU machine (no Node there): unpacks what bench/e2e/pack.sh
# put in .carry/e2e (Node, the addon, the bundled replay), writes the random-weight 8B-shaped
# model, runs the replay at about 99K repository tokens on CUDA, and leaves the tables and the
# key figures in $OUT. From the repository root:
#
#   bash bench/e2e/run_gpu.sh
#
# Settings (environment): OUT (required), E2E_BACKEND (cuda), E2E_TARGET_TOKENS (99000),
# E2E_ATTENTION (tidal), E2E_TINY (0; 1: the 2-layer model, for a CPU run), E2E_WORK
# (/tmp/tidal-e2e: node, model, KV store), E2E_BUDGET_S (540: the whole script's time; the replay
# skips its last phases rather than run past it), E2E_DROP_CACHES (1: drop the page cache
# before the restore, so the KV is read from the disk), E2E_EXTRA (more replay options).
set -euo pipefail

: "${OUT:?set OUT to the folder for the results}"
BACKEND=${E2E_BACKEND:-cuda}
TARGET=${E2E_TARGET_TOKENS:-99000}
ATTENTION=${E2E_ATTENTION:-tidal}
TINY=${E2E_TINY:-0}
WORK=${E2E_WORK:-/tmp/tidal-e2e}
BUDGET=${E2E_BUDGET_S:-540}
DROP_CACHES=${E2E_DROP_CACHES:-1}
CARRY=.carry/e2e
START=$SECONDS

if [ ! -f "$CARRY/node.xz" ] || [ ! -f "$CARRY/tidal_native.node.xz" ] || [ ! -f "$CARRY/replay.js" ]; then
  echo "run_gpu: $CARRY is incomplete (run bench/e2e/pack.sh first and name .carry/e2e in carry)" >&2
  ls -la "$CARRY" >&2 || true
  exit 2
fi
mkdir -p "$OUT" "$WORK/bin/native"

unxz() { python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"), 1 << 20)' "$1" "$2"; }
unxz "$CARRY/node.xz" "$WORK/bin/node"
chmod +x "$WORK/bin/node"
unxz "$CARRY/tidal_native.node.xz" "$WORK/bin/native/tidal_native.node"
cp "$CARRY/replay.js" "$WORK/bin/replay.js"
echo "run_gpu: unpacked Node $("$WORK/bin/node" --version) and the addon in $((SECONDS - START)) s"

if [ "$BACKEND" = cuda ]; then
  # cuBLAS comes with PyTorch's wheel, not with the toolkit.
  TIDAL_CUBLAS=$(find $(python3 -c 'import site; print(" ".join(site.getsitepackages()))') -name 'libcublas.so*' 2>/dev/null | sort -r | head -1 || true)
  export TIDAL_CUBLAS
  echo "run_gpu: TIDAL_CUBLAS=$TIDAL_CUBLAS"
  nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader || true
fi
df -hT "$WORK" | tail -1 || true

if [ "$TINY" = 1 ]; then
  MODEL="$WORK/model-tiny"
  MODEL_ARGS=(--tiny)
else
  MODEL="$WORK/model-llama8b"
  MODEL_ARGS=()
fi
if [ -f "$MODEL/model.safetensors" ]; then
  echo "run_gpu: reusing the model in $MODEL"
else
  python3 bench/e2e/make_model.py --out "$MODEL" ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} 2>&1 | tee "$OUT/make_model.log"
fi

LEFT=$((BUDGET - (SECONDS - START)))
echo "run_gpu: $((SECONDS - START)) s so far; the replay gets ${LEFT} s"
set +e
PERSIST="$WORK/kv"
rm -rf "$PERSIST"
# shellcheck disable=SC2086
timeout --signal=TERM --kill-after=20 "$LEFT" "$WORK/bin/node" "$WORK/bin/replay.js" \
  --model "$MODEL" --backend "$BACKEND" --target-tokens "$TARGET" --attention "$ATTENTION" \
  --out "$OUT/e2e.json" --persist-dir "$PERSIST" --deadline-s $((LEFT - 40)) --drop-caches "$DROP_CACHES" \
  ${E2E_EXTRA:-} 2>&1 | tee "$OUT/e2e.log"
STATUS=${PIPESTATUS[0]}
set -e
rm -rf "$PERSIST"

echo
echo "run_gpu: replay exit status $STATUS after $((SECONDS - START)) s; results in $OUT (e2e.md, e2e.json, e2e.log)"
python3 - "$OUT/e2e.json" <<'EOF' || true
import json, sys
figures = json.load(open(sys.argv[1]))
keys = ['repository_tokens', 'warmup_s', 'first_completion_after_warmup_ms', 'keystroke_ttft_p50_ms', 'keystroke_ttft_p95_ms',
        'host_ms_per_keystroke_100k', 'file_switch_ttft_p50_ms', 'save_edit_middle_ttft_ms', 'save_edit_middle_noshift_ttft_ms',
        'save_edit_middle_noshift_ready_ms', 'chat_ttft_ms', 'restore_s', 'restore_over_prefill_100k', 'error']
print('summary: ' + ', '.join(f'{key} {str(figures[key]).splitlines()[0]}' for key in keys if figures.get(key) is not None))
for note in figures.get('notes', []):
    print(f'note: {note}')
EOF
exit "$STATUS"
