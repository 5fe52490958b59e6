#!/usr/bin/env bash
# GPU out-of-memory, end to end (bench/e2e/oom_check.js) on the GPU machine: unpacks Node and the
# addon that bench/e2e/pack.sh put in .carry/e2e, writes the random-weight model (8B shape unless
# OOM_SHAPE says otherwise) and runs the cases. From the repository root, with OUT set:
#
#   bash bench/e2e/oom_gpu.sh
set -euo pipefail
: "${OUT:?set OUT to the folder for the results}"
WORK=${E2E_WORK:-/tmp/tidal-e2e}
CARRY=.carry/e2e
mkdir -p "$OUT" "$WORK/bin/native"
unxz() { python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"), 1 << 20)' "$1" "$2"; }
[ -x "$WORK/bin/node" ] || { unxz "$CARRY/node.xz" "$WORK/bin/node"; chmod +x "$WORK/bin/node"; }
unxz "$CARRY/tidal_native.node.xz" "$WORK/bin/native/tidal_native.node"
TIDAL_CUBLAS=$(find $(python3 -c 'import site; print(" ".join(site.getsitepackages()))') -name 'libcublas.so*' 2>/dev/null | sort -r | head -1 || true)
export TIDAL_CUBLAS
MODEL="$WORK/model-llama8b"
[ -f "$MODEL/model.safetensors" ] || python3 bench/e2e/make_model.py --out "$MODEL" > "$OUT/make_model.log" 2>&1
set +e
timeout --signal=TERM --kill-after=10 "${OOM_BUDGET_S:-240}" "$WORK/bin/node" bench/e2e/oom_check.js \
  "$WORK/bin/native/tidal_native.node" "$MODEL" "$OUT/oom.json" 2>&1 | tee "$OUT/oom.log"
STATUS=${PIPESTATUS[0]}
echo "oom_gpu: exit status $STATUS"
exit "$STATUS"
