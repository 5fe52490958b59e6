#!/usr/bin/env bash
# On the GPU machine (no Node there): unpacks the GPU test and bench binaries that were built
# here and carried in .carry/gpu (xz, stripped), points the engine at the cuBLAS that PyTorch
# ships, and runs them. Usage: bash bench/gpu/run_kernels.sh [TEST_GROUP] [BENCH_FLAG]
#   e.g. bash bench/gpu/run_kernels.sh "prefill" --prefill   (OUT: where the logs go)
# TEST_GROUP "none" skips the tests. The CLI (`tidal`) and the op harness are unpacked beside them when they were
# carried; KERNELS_THEN, if set, is a command run afterwards with $work naming that folder.
set -uo pipefail
group="${1:-}"
bench_flag="${2:---prefill}"
out="${OUT:-/tmp}"
work=$(mktemp -d)
python3 - "$work" <<'PY'
import lzma, os, sys
for name in ("tidal_gpu_tests", "tidal_gpu_bench", "tidal", "tidal_op_harness"):
    if not os.path.exists(f".carry/gpu/{name}.xz"):
        continue
    with lzma.open(f".carry/gpu/{name}.xz") as src, open(os.path.join(sys.argv[1], name), "wb") as dst:
        dst.write(src.read())
    os.chmod(os.path.join(sys.argv[1], name), 0o755)
PY
cublas=$(python3 -c "import nvidia.cublas, os; d=os.path.join(os.path.dirname(nvidia.cublas.__file__), 'lib'); print(os.path.join(d, sorted(f for f in os.listdir(d) if f.startswith('libcublas.so'))[0]))" 2>/dev/null)
export TIDAL_CUBLAS="$cublas"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
if [ "$group" = "none" ]; then :; elif [ -n "$group" ]; then "$work/tidal_gpu_tests" --only "$group" 2>&1 | tee "$out/tests.txt" | grep -v '^\[pass\]'; else "$work/tidal_gpu_tests" 2>&1 | tee "$out/tests.txt" | grep -v '^\[pass\]'; fi
echo "tests exit: ${PIPESTATUS[0]}"
[ "$bench_flag" = "none" ] || "$work/tidal_gpu_bench" $bench_flag 2>&1 | tee "$out/bench.txt"
if [ -n "${KERNELS_THEN:-}" ]; then export work; bash -c "$KERNELS_THEN"; fi
