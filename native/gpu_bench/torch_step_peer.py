"""PyTorch peer for `tidal bench`'s decode-step table: one batch-1 decode step of a random-weight
model of the same shapes, written the way a careful PyTorch user would (cuBLAS products with the
q|k|v and gate|up matrices fused, SDPA over a preallocated bf16 KV cache with enable_gqa, the
whole step captured in one CUDA graph). Full attention only: PyTorch has no TidalDecode.

usage: python3 torch_step_peer.py [--shapes a,b] [--contexts 10000,32000,100000] [--steps 32]

Prints one markdown row per shape and context: the fastest SDPA backend that ran, the median
ms/token of graph replays, and the backend. The shapes mirror native/bench/shapes.cpp.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

# hidden, intermediate, layers, heads, kv heads, head_dim, vocab, rope theta, q|k|v bias, q/k norm, tied
SHAPES = {
    "llama-3.1-8b": (4096, 14336, 32, 32, 8, 128, 128256, 500000.0, False, False, False),
    "llama-2-7b": (4096, 11008, 32, 32, 32, 128, 32000, 10000.0, False, False, False),
    "qwen2.5-coder-7b": (3584, 18944, 28, 28, 4, 128, 152064, 1000000.0, True, False, False),
    "qwen2.5-coder-1.5b": (1536, 8960, 28, 12, 2, 128, 151936, 1000000.0, True, False, True),
    "qwen2.5-coder-0.5b": (896, 4864, 24, 14, 2, 64, 151936, 1000000.0, True, False, True),
    "qwen3-8b": (4096, 12288, 36, 32, 8, 128, 151936, 1000000.0, False, True, False),
}


def rms_norm(x, weight, eps=1e-6):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Step:
    """Random weights of one shape and a KV cache of `capacity` positions."""

    def __init__(self, shape, capacity):
        hidden, inner, layers, heads, kv_heads, d, vocab, theta, bias, qk_norm, tied = SHAPES[shape]
        self.heads, self.kv_heads, self.d, self.qk_norm = heads, kv_heads, d, qk_norm
        gen = torch.Generator(device="cuda").manual_seed(1234)
        dev, bf16 = "cuda", torch.bfloat16

        def rand(*size, scale=0.02):
            return (torch.randn(*size, device=dev, dtype=torch.float32, generator=gen) * scale).to(bf16)

        qkv_rows = (heads + 2 * kv_heads) * d
        self.layers = []
        for _ in range(layers):
            self.layers.append(
                dict(
                    norm1=1 + rand(hidden, scale=0.1),
                    qkv=rand(qkv_rows, hidden),
                    qkv_bias=rand(qkv_rows) if bias else None,
                    q_norm=1 + rand(d, scale=0.1) if qk_norm else None,
                    k_norm=1 + rand(d, scale=0.1) if qk_norm else None,
                    o=rand(hidden, heads * d),
                    norm2=1 + rand(hidden, scale=0.1),
                    gate_up=rand(2 * inner, hidden),
                    down=rand(hidden, inner),
                )
            )
        self.embedding = rand(vocab, hidden)
        self.head = self.embedding if tied else rand(vocab, hidden)
        self.final_norm = 1 + rand(hidden, scale=0.1)
        self.inner = inner
        # One cache tensor per layer for K and V: [1, kv_heads, capacity, d]; random, not zeros.
        self.k = [rand(1, kv_heads, capacity, d, scale=1.0) for _ in range(layers)]
        self.v = [rand(1, kv_heads, capacity, d, scale=1.0) for _ in range(layers)]
        self.theta = theta
        self.weight_bytes = sum(
            t.numel() * 2 for layer in self.layers for t in layer.values() if t is not None
        ) + self.head.numel() * 2 + hidden * 2  # one embedding row

    def forward(self, token, position, cos, sin):
        """One token at `position` (a Python int, fixed per captured graph): appends its K/V at
        `position` and attends over positions 0..position."""
        x = self.embedding[token].view(1, -1)
        h, kv, d = self.heads, self.kv_heads, self.d
        for i, layer in enumerate(self.layers):
            y = rms_norm(x, layer["norm1"])
            qkv = F.linear(y, layer["qkv"], layer["qkv_bias"])
            q = qkv[:, : h * d].view(1, h, 1, d)
            k = qkv[:, h * d : (h + kv) * d].view(1, kv, 1, d)
            v = qkv[:, (h + kv) * d :].view(1, kv, 1, d)
            if self.qk_norm:
                q = rms_norm(q, layer["q_norm"])
                k = rms_norm(k, layer["k_norm"])
            q = rotate(q, cos, sin)
            k = rotate(k, cos, sin)
            self.k[i][:, :, position : position + 1].copy_(k)
            self.v[i][:, :, position : position + 1].copy_(v)
            a = F.scaled_dot_product_attention(
                q, self.k[i][:, :, : position + 1], self.v[i][:, :, : position + 1], enable_gqa=(h != kv)
            )
            x = x + F.linear(a.reshape(1, h * d), layer["o"])
            y = rms_norm(x, layer["norm2"])
            gate_up = F.linear(y, layer["gate_up"])
            x = x + F.linear(F.silu(gate_up[:, : self.inner]) * gate_up[:, self.inner :], layer["down"])
        logits = F.linear(rms_norm(x, self.final_norm), self.head)
        return logits.argmax(-1)


def time_step(step, position, steps, backend):
    inv = 1.0 / (step.theta ** (torch.arange(0, step.d, 2, device="cuda", dtype=torch.float32) / step.d))
    angles = torch.cat((inv, inv)) * position
    cos, sin = angles.cos().to(torch.bfloat16), angles.sin().to(torch.bfloat16)
    token = torch.tensor([7], device="cuda")
    with sdpa_kernel([backend]):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up outside the graph (cuBLAS handles, workspaces)
                step.forward(token, position, cos, sin)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step.forward(token, position, cos, sin)
    times = []
    for _ in range(steps + 2):
        torch.cuda.synchronize()
        started = time.perf_counter()
        graph.replay()
        token.copy_(out)  # the next step's input, as a decode loop would feed it
        torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1e3)
    times = sorted(times[2:])
    return times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="llama-3.1-8b")
    parser.add_argument("--contexts", default="10000,32000,100000")
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    contexts = [int(c) for c in args.contexts.split(",")]
    print("PyTorch decode step (peer): cuBLAS + SDPA + one CUDA graph, full attention, median of "
          f"{args.steps} replays\n")
    print("| shape | context | ms/token | SDPA backend | weights GB |")
    print("|---|---|---:|---|---:|")
    backends = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    for shape in args.shapes.split(","):
        step = Step(shape, max(contexts) + 1)
        for context in contexts:
            best = None
            for backend in backends:
                try:
                    ms = time_step(step, context, args.steps, backend)
                except RuntimeError:
                    continue  # this SDPA backend does not take these shapes
                if best is None or ms < best[0]:
                    best = (ms, backend.name)
            row = f"{best[0]:.3f} | {best[1]}" if best else "(no SDPA backend ran) | -"
            print(f"| {shape} | {context // 1000}K | {row} | {step.weight_bytes / 1e9:.2f} |", flush=True)
        del step
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
