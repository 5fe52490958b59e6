#!/usr/bin/env bash
# Per-kernel GPU times (Nsight Compute) of the benchmark at the 32K context, and the warp
# stall picture of one top-k launch. Needs ncu and a build from run_all.sh.
#   bash native/gpu_bench/profile.sh [log-dir]
logs=${1:-gpu-logs}
build=${TIDAL_GPU_BUILD:-/tmp/tidal-gpu-build}
mkdir -p "$logs"
ncu --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
    --print-summary per-kernel "$build/tidal_gpu_bench" --quick > "$logs/ncu_kernels.txt" 2>&1
# Kernel name lines and the duration / DRAM lines under them, shortened.
grep -E '^  [a-zA-Z_].*\(|gpu__time_duration|dram__throughput' "$logs/ncu_kernels.txt" |
  sed -E 's/tidal::cuda::detail::\(anonymous namespace\):://; s/\(tidal::cuda::detail::[A-Za-z]+\)//g; s/  +/ /g' | cut -c1-160
ncu -k regex:select_top_k --launch-skip 3 --launch-count 1 --section SpeedOfLight --section Occupancy \
    --section LaunchStats --section WarpStateStats "$build/tidal_gpu_bench" --quick > "$logs/ncu_topk.txt" 2>&1
grep -E 'Duration|Throughput|Achieved Occupancy|Theoretical Occupancy|Registers|Stall|Warp Cycles|Cluster|Block Limit' "$logs/ncu_topk.txt" | cut -c1-150 | head -40
