#!/usr/bin/env bash
# The CUDA backend end to end on a machine with a Hopper GPU, from the repository root:
#   bash native/gpu_bench/run_backend.sh [log-dir] [bench options...]
# Builds `tidal` and the GPU tests, runs the tests (kernels + whole model against the CPU
# backend), then `tidal bench` with the SDPA peer. Logs go to log-dir (default gpu-logs).
# cuBLAS is found on the loader path or in a Python wheel ($TIDAL_CUBLAS overrides).
set -o pipefail
logs=${1:-gpu-logs}
shift || true
build=${TIDAL_GPU_BUILD:-/tmp/tidal-gpu-build}
mkdir -p "$logs"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv 2>&1 | tee "$logs/gpu.txt"
if [ -z "$TIDAL_CUBLAS" ] && ! ldconfig -p | grep -q 'libcublas\.so'; then
  for dir in /usr/local/cuda/lib64 $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
    found=$(find "$dir" -name 'libcublas.so*' 2>/dev/null | sort -r | head -1)
    if [ -n "$found" ]; then export TIDAL_CUBLAS=$found; break; fi
  done
fi
echo "cuBLAS: ${TIDAL_CUBLAS:-from the loader path}" | tee -a "$logs/gpu.txt"
if ! { cmake -S native -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a &&
       cmake --build "$build" --target tidal tidal_gpu_tests; } > "$logs/build.txt" 2>&1; then
  tail -40 "$logs/build.txt"
  exit 1
fi
"$build/tidal_gpu_tests" > "$logs/tests.txt" 2>&1
tests_status=$?
grep -v '^\[pass\] \(decode\|sparse\|top-k\|quest\|dense\)' "$logs/tests.txt" | tail -60
PYTHONUNBUFFERED=1 "$build/tidal" bench --sdpa-peer native/gpu_bench/sdpa_peer.py "$@" 2> "$logs/bench_progress.txt" |
  tee "$logs/bench.txt"
exit $tests_status
