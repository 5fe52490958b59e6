"""PyTorch's scaled_dot_product_attention on the decode shapes of tidal_gpu_bench, as a peer.

One query token per head (bf16, enable_gqa for GQA), K/V [1, kv_heads, context, head_dim]
bf16; median of 30 CUDA-event intervals after warm-up, the launches queued behind a sleep,
rotating K/V buffers past the L2. Tries each SDPA backend and reports the fastest that runs.
Prints rows for the bench table (floor: K+V bytes / the copy bandwidth passed as argv[1]).
"""
import math
import sys
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [("Llama-3.1-8B", 32, 8, 128), ("Llama-2-7B", 32, 32, 128)]
CONTEXTS = [10000, 32000, 100000]
BACKENDS = [
    ("default", None),
    ("flash", SDPBackend.FLASH_ATTENTION),
    ("efficient", SDPBackend.EFFICIENT_ATTENTION),
    ("cudnn", SDPBackend.CUDNN_ATTENTION),
    ("math", SDPBackend.MATH),
]


def median_us(fn, reps=30, warmup=5):
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    stops = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    torch.cuda._sleep(int(2e6))  # about a millisecond: the host queues the runs behind it
    for i in range(reps):
        starts[i].record()
        fn(warmup + i)
        stops[i].record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) * 1000.0 for s, e in zip(starts, stops))
    return times[len(times) // 2]


def main():
    warnings.filterwarnings("ignore")  # SDPA explains every backend it skips
    copy_gbs = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    print("| model | context | op | time (us) | floor (us) | time/floor | GB/s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name, heads, kv_heads, d in SHAPES:
        for context in CONTEXTS:
            layer_bytes = 2 * kv_heads * context * d * 2
            buffers = max(2, math.ceil(4 * l2 / layer_bytes))
            q = torch.randn(1, heads, 1, d, device="cuda", dtype=torch.bfloat16)
            kvs = [
                (torch.randn(1, kv_heads, context, d, device="cuda", dtype=torch.bfloat16),
                 torch.randn(1, kv_heads, context, d, device="cuda", dtype=torch.bfloat16))
                for _ in range(buffers)
            ]
            best = None
            for label, backend in BACKENDS:

                def run(i):
                    k, v = kvs[i % buffers]
                    F.scaled_dot_product_attention(q, k, v, enable_gqa=kv_heads != heads)

                try:
                    if backend is None:
                        us = median_us(run)
                    else:
                        with sdpa_kernel([backend]):
                            us = median_us(run)
                except Exception:  # a backend that does not take this shape
                    continue
                if best is None or us < best[1]:
                    best = (label, us)
            del kvs
            torch.cuda.empty_cache()
            if best is None:
                print(f"| {name} | {context // 1000}K | torch SDPA | no backend ran | | | |")
                continue
            floor_us = layer_bytes / (copy_gbs * 1e3) if copy_gbs else float("nan")
            print(f"| {name} | {context // 1000}K | torch SDPA ({best[0]}) | {best[1]:.1f} | {floor_us:.1f} | "
                  f"{best[1] / floor_us:.2f} | {layer_bytes / best[1] / 1e3:.0f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
