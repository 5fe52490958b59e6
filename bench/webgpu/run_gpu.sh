#!/usr/bin/env bash
# The WebGPU decode-step benchmark on the GPU machine (no Node there): unpacks what
# bench/webgpu/pack.sh put in .carry/webgpu, installs the Vulkan loader, writes the random-weight
# Llama-3.1-8B-shaped model (bench/e2e/make_model.py), and runs decode-step.js: CUDA prefills
# the context and times decode steps, then the WebGPU backend (Dawn on Vulkan on the same GPU)
# loads the same K/V and times the same steps. From the repository root:
#
#   OUT=... bash bench/webgpu/run_gpu.sh
#
# Settings (environment): OUT (required), WEBGPU_CONTEXT (32768), WEBGPU_STEPS (16),
# WEBGPU_MODES (full,tidal), WEBGPU_WORK (/tmp/tidal-webgpu), WEBGPU_EXTRA (more options).
set -euo pipefail

: "${OUT:?set OUT to the folder for the results}"
CONTEXT=${WEBGPU_CONTEXT:-32768}
STEPS=${WEBGPU_STEPS:-16}
MODES=${WEBGPU_MODES:-full,tidal}
WORK=${WEBGPU_WORK:-/tmp/tidal-webgpu}
CARRY=.carry/webgpu
START=$SECONDS

# Node and the addon may come from .carry/e2e instead (the same build), so that one call can
# carry both benchmarks within the 64 MiB that travels.
NODE_CARRY=$CARRY
if [ ! -f "$CARRY/node.xz" ] && [ -f .carry/e2e/node.xz ] && [ -f .carry/e2e/tidal_native.node.xz ]; then
  NODE_CARRY=.carry/e2e
fi
for needed in "$NODE_CARRY/node.xz" "$NODE_CARRY/tidal_native.node.xz" "$CARRY/decode-step.js" "$CARRY/webgpu/dawn.node.xz" "$CARRY/webgpu/index.js"; do
  if [ ! -f "$needed" ]; then
    echo "run_gpu: $needed is missing (run bench/webgpu/pack.sh here first and name .carry/webgpu in carry)" >&2
    exit 2
  fi
done
mkdir -p "$OUT" "$WORK/bin/native" "$WORK/bin/node_modules/webgpu/dist/linux-x64"
unxz() { python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"), 1 << 20)' "$1" "$2"; }
unxz "$NODE_CARRY/node.xz" "$WORK/bin/node"
chmod +x "$WORK/bin/node"
unxz "$NODE_CARRY/tidal_native.node.xz" "$WORK/bin/native/tidal_native.node"
cp "$CARRY/decode-step.js" "$WORK/bin/"
cp "$CARRY/webgpu/index.js" "$CARRY/webgpu/package.json" "$WORK/bin/node_modules/webgpu/"
unxz "$CARRY/webgpu/dawn.node.xz" "$WORK/bin/node_modules/webgpu/dist/linux-x64/dawn.node"

# Vulkan: the loader and libglvnd (which NVIDIA's Vulkan driver needs) from the carried .debs
# when the machine lacks them; NVIDIA's ICD file where
# the loader does not find it by itself.
if ! ldconfig -p | grep -q 'libvulkan.so.1' || ! ldconfig -p | grep -q 'libGLdispatch.so.0'; then
  for deb in "$CARRY"/*.deb; do dpkg -x "$deb" /; done
  ldconfig
fi
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$ICD" ] && ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
  export VK_DRIVER_FILES=$ICD
fi
echo "run_gpu: Vulkan loader $(ldconfig -p | grep -m1 'libvulkan.so.1' || echo missing); VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"

TIDAL_CUBLAS=$(find $(python3 -c 'import site; print(" ".join(site.getsitepackages()))') -name 'libcublas.so*' 2>/dev/null | sort -r | head -1 || true)
export TIDAL_CUBLAS
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader || true

MODEL="$WORK/model-llama8b"
if [ ! -f "$MODEL/model.safetensors" ]; then
  python3 bench/e2e/make_model.py --out "$MODEL" 2>&1 | tee "$OUT/make_model.log"
fi
echo "run_gpu: ready after $((SECONDS - START)) s"

set +e
# shellcheck disable=SC2086
"$WORK/bin/node" "$WORK/bin/decode-step.js" --model "$MODEL" --reference cuda --context "$CONTEXT" --steps "$STEPS" \
  --modes "$MODES" --work "$WORK" --addon-dir "$WORK/bin" --out-json "$OUT/webgpu_decode.json" --out-md "$OUT/webgpu_decode.md" \
  ${WEBGPU_EXTRA:-} 2>&1 | grep -v 'artificially reduced' | tee "$OUT/webgpu_decode.log"
STATUS=${PIPESTATUS[0]}
set -e
echo "run_gpu: exit status $STATUS after $((SECONDS - START)) s; results in $OUT (webgpu_decode.md, .json, .log)"
exit "$STATUS"
