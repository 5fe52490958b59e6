"""Shape of tidal-code-mini: a Llama-architecture decoder (RMSNorm, SwiGLU, RoPE, GQA) built
with transformers' LlamaConfig so the shipped folder loads in transformers and in our engine.

Size budget: model.safetensors in bf16 must stay under 32 MB, i.e. under 16M parameters. With
hidden 512 and 8 query / 2 KV heads of 64, one layer costs 0.66M (attention) + 3*512*inter (MLP);
the tied 8192 x 512 embedding costs 4.2M. Six layers with intermediate 768 give 15.2M.
"""
import torch
from transformers import LlamaConfig, LlamaForCausalLM

DEFAULT_SHAPE = dict(
    hidden_size=512,
    intermediate_size=768,
    num_hidden_layers=6,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=64,
    rope_theta=1_000_000.0,
    max_position_embeddings=16384,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    attention_bias=False,
    mlp_bias=False,
    hidden_act="silu",
    initializer_range=0.02,
)


def build_config(vocab_size, eos_token_id, **overrides):
    shape = dict(DEFAULT_SHAPE, **overrides)
    rope_theta = shape.pop("rope_theta")
    config = LlamaConfig(vocab_size=vocab_size, bos_token_id=eos_token_id, eos_token_id=eos_token_id,
                         pad_token_id=eos_token_id, rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
                         **shape)
    return config


def build_model(config, attention="sdpa"):
    config._attn_implementation = attention
    return LlamaForCausalLM(config)


def load_model(model_dir, max_position_embeddings, attention="sdpa"):
    """A trained folder's weights in float32 for further training, its config's
    max_position_embeddings replaced (the RoPE frequencies do not depend on it)."""
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attention)
    model.config.max_position_embeddings = max_position_embeddings
    return model


def count_parameters(model):
    # tied weights are one tensor, so parameters() counts the embedding once
    return sum(p.numel() for p in model.parameters())
