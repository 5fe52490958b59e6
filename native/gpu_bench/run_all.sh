#!/usr/bin/env bash
# Builds the GPU tests and the kernel benchmark, runs both, then PyTorch's SDPA decode as a
# peer. Run from the repository root on a machine with a Hopper GPU:
#   bash native/gpu_bench/run_all.sh [log-dir]
# Logs (build, tests, bench, sdpa) go to log-dir (default gpu-logs); the build to
# $TIDAL_GPU_BUILD (default /tmp/tidal-gpu-build). Exit status: that of the tests.
set -o pipefail
logs=${1:-gpu-logs}
build=${TIDAL_GPU_BUILD:-/tmp/tidal-gpu-build}
mkdir -p "$logs"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv 2>&1 | tee "$logs/gpu.txt"
if ! { cmake -S native -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a &&
       cmake --build "$build" --target tidal_gpu_tests tidal_gpu_bench; } > "$logs/build.txt" 2>&1; then
  tail -40 "$logs/build.txt"
  exit 1
fi
"$build/tidal_gpu_tests" > "$logs/tests.txt" 2>&1
tests_status=$?
grep -v '^\[pass\]' "$logs/tests.txt"
"$build/tidal_gpu_bench" 2>&1 | tee "$logs/bench.txt"
bandwidth=$(sed -n 's/.*copy: \([0-9]*\) GB\/s.*/\1/p' "$logs/bench.txt")
PYTHONUNBUFFERED=1 python3 native/gpu_bench/sdpa_peer.py "${bandwidth:-0}" 2>&1 | tee "$logs/sdpa.txt"
exit $tests_status
