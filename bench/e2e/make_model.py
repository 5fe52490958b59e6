#!/usr/bin/env python3
"""Writes a random-weight Llama model folder for the end-to-end benchmark.

Default: the shape of Llama-3.1-8B (hidden 4096, 32 layers, 32 query / 8 KV heads of 128,
intermediate 14336, llama3 RoPE with theta 500000, 131072 positions), bf16 safetensors, with
the tokenizer (and vocabulary size) of models/tidal-code-mini. --tiny: the same family at
2 layers and hidden 256, small enough for a CPU run.

The weights are normal with std 0.02 (norms 1): activations stay finite, the output is noise,
which is all a latency benchmark needs. Tensors are written one at a time (no whole model in
memory). With PyTorch and a GPU the numbers are drawn there (about a minute for the 8B shape,
mostly writing); otherwise with numpy.

    python3 bench/e2e/make_model.py --out /tmp/llama8b-random
    python3 bench/e2e/make_model.py --out /tmp/llama-tiny --tiny
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

SHAPES = {
    'llama3-8b': dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                      head_dim=128, intermediate_size=14336),
    'tiny': dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                 head_dim=32, intermediate_size=768),
}


def model_config(shape, vocab_size, bos, eos, max_positions):
    return {
        'architectures': ['LlamaForCausalLM'],
        'model_type': 'llama',
        'attention_bias': False,
        'mlp_bias': False,
        'hidden_act': 'silu',
        **shape,
        'vocab_size': vocab_size,
        'max_position_embeddings': max_positions,
        'rms_norm_eps': 1e-05,
        # Llama 3.1's scaling (transformers <= 4.x spelling, which the engine reads too).
        'rope_theta': 500000.0,
        'rope_scaling': {
            'rope_type': 'llama3',
            'factor': 8.0,
            'low_freq_factor': 1.0,
            'high_freq_factor': 4.0,
            'original_max_position_embeddings': 8192,
        },
        'tie_word_embeddings': False,
        'bos_token_id': bos,
        'eos_token_id': eos,
        'torch_dtype': 'bfloat16',
        'initializer_range': 0.02,
    }


def tensor_list(c):
    """(name, shape, kind) in the order they are written; kind 'normal' or 'ones'."""
    h, inner, v = c['hidden_size'], c['intermediate_size'], c['vocab_size']
    q = c['num_attention_heads'] * c['head_dim']
    kv = c['num_key_value_heads'] * c['head_dim']
    out = [('model.embed_tokens.weight', [v, h], 'normal')]
    for i in range(c['num_hidden_layers']):
        p = f'model.layers.{i}.'
        out += [
            (p + 'input_layernorm.weight', [h], 'ones'),
            (p + 'self_attn.q_proj.weight', [q, h], 'normal'),
            (p + 'self_attn.k_proj.weight', [kv, h], 'normal'),
            (p + 'self_attn.v_proj.weight', [kv, h], 'normal'),
            (p + 'self_attn.o_proj.weight', [h, q], 'normal'),
            (p + 'post_attention_layernorm.weight', [h], 'ones'),
            (p + 'mlp.gate_proj.weight', [inner, h], 'normal'),
            (p + 'mlp.up_proj.weight', [inner, h], 'normal'),
            (p + 'mlp.down_proj.weight', [h, inner], 'normal'),
        ]
    out += [('model.norm.weight', [h], 'ones'), ('lm_head.weight', [v, h], 'normal')]
    return out


class TorchSource:
    def __init__(self, seed, std):
        import torch
        self.torch = torch
        self.device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.std = std
        self.name = f'torch {torch.__version__} on {self.device}'

    def bf16_bytes(self, shape, kind):
        torch = self.torch
        if kind == 'ones':
            t = torch.ones(shape, dtype=torch.bfloat16, device=self.device)
        else:
            t = torch.empty(shape, dtype=torch.float32, device=self.device)
            t.normal_(0.0, self.std, generator=self.generator)
            t = t.to(torch.bfloat16)
        return t.view(torch.int16).cpu().numpy().tobytes()


class NumpySource:
    def __init__(self, seed, std):
        import numpy as np
        self.np = np
        self.rng = np.random.default_rng(seed)
        self.std = std
        self.name = f'numpy {np.__version__}'

    def bf16_bytes(self, shape, kind):
        np = self.np
        count = math.prod(shape)
        if kind == 'ones':
            return np.full(count, 0x3F80, dtype=np.uint16).tobytes()
        out = np.empty(count, dtype=np.uint16)
        step = 1 << 24
        for start in range(0, count, step):
            n = min(step, count - start)
            x = (self.rng.standard_normal(n, dtype=np.float32) * np.float32(self.std)).view(np.uint32)
            # float32 -> bfloat16, round to nearest even (no NaNs here).
            x = x + np.uint32(0x7FFF) + ((x >> np.uint32(16)) & np.uint32(1))
            out[start:start + n] = (x >> np.uint32(16)).astype(np.uint16)
        return out.tobytes()


def pick_source(seed, std, prefer):
    if prefer in ('auto', 'torch'):
        try:
            return TorchSource(seed, std)
        except ImportError:
            if prefer == 'torch':
                raise
    return NumpySource(seed, std)


def write_safetensors(path, tensors, source, log):
    """Header first (all offsets known from the shapes), then the tensors one by one."""
    header = {'__metadata__': {'format': 'pt'}}
    offset = 0
    for name, shape, _ in tensors:
        size = 2 * math.prod(shape)
        header[name] = {'dtype': 'BF16', 'shape': shape, 'data_offsets': [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(',', ':')).encode()
    blob += b' ' * ((8 - len(blob) % 8) % 8)
    started = time.time()
    written = 0
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(blob)))
        f.write(blob)
        for i, (name, shape, kind) in enumerate(tensors):
            data = source.bf16_bytes(shape, kind)
            f.write(data)
            written += len(data)
            if log and (i % 45 == 0 or i == len(tensors) - 1):
                print(f'  {written / 2**30:6.2f} of {offset / 2**30:.2f} GiB, {time.time() - started:5.1f} s', flush=True)
    assert written == offset
    return offset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='model folder to write (replaced)')
    parser.add_argument('--tiny', action='store_true', help='2 layers, hidden 256 (for a CPU run)')
    parser.add_argument('--tokenizer-dir', default=os.path.join(REPO, 'models', 'tidal-code-mini'))
    parser.add_argument('--max-positions', type=int, default=131072)
    parser.add_argument('--layers', type=int, default=0, help='override the layer count')
    parser.add_argument('--seed', type=int, default=20261204)
    parser.add_argument('--std', type=float, default=0.02)
    parser.add_argument('--source', choices=['auto', 'torch', 'numpy'], default='auto')
    args = parser.parse_args()

    shape = dict(SHAPES['tiny' if args.tiny else 'llama3-8b'])
    if args.layers > 0:
        shape['num_hidden_layers'] = args.layers
    with open(os.path.join(args.tokenizer_dir, 'config.json')) as f:
        tokenizer_model = json.load(f)
    config = model_config(shape, tokenizer_model['vocab_size'], tokenizer_model.get('bos_token_id'),
                          tokenizer_model.get('eos_token_id'), args.max_positions)

    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    for name in ('tokenizer.json', 'tokenizer_config.json', 'generation_config.json'):
        src = os.path.join(args.tokenizer_dir, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(args.out, name))
    with open(os.path.join(args.out, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)

    source = pick_source(args.seed, args.std, args.source)
    tensors = tensor_list(config)
    params = sum(math.prod(s) for _, s, _ in tensors)
    print(f'make_model: {params / 1e9:.2f}B parameters ({shape["num_hidden_layers"]} layers, hidden {shape["hidden_size"]}, '
          f'vocab {config["vocab_size"]}) into {args.out}, drawn with {source.name}', flush=True)
    started = time.time()
    # Written under another name, renamed when complete: a folder with model.safetensors is whole.
    partial = os.path.join(args.out, 'model.safetensors.partial')
    size = write_safetensors(partial, tensors, source, log=not args.tiny)
    os.replace(partial, os.path.join(args.out, 'model.safetensors'))
    print(f'make_model: wrote {size / 2**30:.2f} GiB in {time.time() - started:.1f} s', flush=True)


if __name__ == '__main__':
    sys.exit(main())
