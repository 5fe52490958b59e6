#!/usr/bin/env bash
# Per-kernel GPU times of whole decode steps (Nsight Compute, clocks left alone), summed by
# kernel over one step of each attention mode, beside the step's wall time from `tidal bench`.
#   bash native/gpu_bench/profile_step.sh [log-dir] [tidal binary] [bench options...]
# Default options: one shape at one context, 2 timed steps per mode.
set -o pipefail
logs=${1:-gpu-logs}
tidal=${2:-${TIDAL_GPU_BUILD:-/tmp/tidal-gpu-build}/tidal}
shift 2 || shift $#
options=("$@")
[ ${#options[@]} -eq 0 ] && options=(--shapes llama-3.1-8b --contexts 100000 --decode-tokens 2)
mkdir -p "$logs"
ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
    --launch-count "${TIDAL_NCU_LAUNCHES:-6000}" "$tidal" bench "${options[@]}" > "$logs/ncu_step.csv" 2> "$logs/ncu_step.err"
python3 "$(dirname "$0")/step_kernels.py" "$logs/ncu_step.csv"
