// Test helper: writes GGUF (version 3) images from metadata and tensor entries, laid out by
// the format's description (independent of src/models/gguf.ts), plus the tokenizer metadata
// a converter writes for a Hugging Face byte-level BPE tokenizer.json, and the F32 tensors of
// a fixture model folder under their GGUF names.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export type GgufEntry =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: string[] }
  | { type: 'f32s'; value: number[] }
  | { type: 'i32s'; value: number[] };

export interface GgufTensor {
  name: string;
  type: number;
  ne: number[];
  bytes: Buffer;
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
const i32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
};
const u64 = (v: number | bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};
const f32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return b;
};
const str = (s: string) => {
  const bytes = Buffer.from(s, 'utf8');
  return Buffer.concat([u64(bytes.length), bytes]);
};

function encodeEntry(key: string, entry: GgufEntry): Buffer {
  const parts: Buffer[] = [str(key)];
  switch (entry.type) {
    case 'u32':
      parts.push(u32(4), u32(entry.value));
      break;
    case 'i32':
      parts.push(u32(5), i32(entry.value));
      break;
    case 'f32':
      parts.push(u32(6), f32(entry.value));
      break;
    case 'bool':
      parts.push(u32(7), Buffer.from([entry.value ? 1 : 0]));
      break;
    case 'string':
      parts.push(u32(8), str(entry.value));
      break;
    case 'strings':
      parts.push(u32(9), u32(8), u64(entry.value.length), Buffer.concat(entry.value.map(str)));
      break;
    case 'f32s':
      parts.push(u32(9), u32(6), u64(entry.value.length), Buffer.concat(entry.value.map(f32)));
      break;
    case 'i32s':
      parts.push(u32(9), u32(5), u64(entry.value.length), Buffer.concat(entry.value.map(i32)));
      break;
  }
  return Buffer.concat(parts);
}

export function ggufImage(metadata: Record<string, GgufEntry>, tensors: GgufTensor[] = [], alignment = 32): Buffer {
  const align = (n: number) => Math.ceil(n / alignment) * alignment;
  const head: Buffer[] = [Buffer.from('GGUF'), u32(3), u64(tensors.length), u64(Object.keys(metadata).length)];
  for (const [key, entry] of Object.entries(metadata)) head.push(encodeEntry(key, entry));
  let offset = 0;
  for (const t of tensors) {
    head.push(str(t.name), u32(t.ne.length), ...t.ne.map(u64), u32(t.type), u64(offset));
    offset = align(offset + t.bytes.length);
  }
  const header = Buffer.concat(head);
  const data = Buffer.alloc(offset);
  let at = 0;
  for (const t of tensors) {
    t.bytes.copy(data, at);
    at = align(at + t.bytes.length);
  }
  return Buffer.concat([header, Buffer.alloc(align(header.length) - header.length), data]);
}

interface TokenizerJson {
  model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens: { id: number; content: string; special: boolean }[];
}

// The tokenizer.* metadata of a byte-level BPE tokenizer: every id's piece, control type for
// special added tokens, user-defined for other added tokens, merges as 'a b'.
export function gpt2TokenizerMetadata(
  json: TokenizerJson,
  config: { bos_token?: string | null; eos_token?: string | null; chat_template?: string },
  pre: string,
): Record<string, GgufEntry> {
  const byId = new Map<number, string>();
  for (const [piece, id] of Object.entries(json.model.vocab)) byId.set(id, piece);
  for (const t of json.added_tokens) byId.set(t.id, t.content);
  const size = Math.max(...byId.keys()) + 1;
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < size; id++) {
    const added = json.added_tokens.find((t) => t.id === id);
    tokens.push(byId.get(id) ?? `[PAD${id}]`);
    types.push(added ? (added.special ? 3 : 4) : byId.has(id) ? 1 : 5);
  }
  const idOf = (piece: string | null | undefined) => (piece ? tokens.indexOf(piece) : -1);
  const out: Record<string, GgufEntry> = {
    'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
    'tokenizer.ggml.pre': { type: 'string', value: pre },
    'tokenizer.ggml.tokens': { type: 'strings', value: tokens },
    'tokenizer.ggml.token_type': { type: 'i32s', value: types },
    'tokenizer.ggml.merges': { type: 'strings', value: json.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m)) },
  };
  if (idOf(config.bos_token) >= 0) out['tokenizer.ggml.bos_token_id'] = { type: 'u32', value: idOf(config.bos_token) };
  if (idOf(config.eos_token) >= 0) out['tokenizer.ggml.eos_token_id'] = { type: 'u32', value: idOf(config.eos_token) };
  if (config.chat_template) out['tokenizer.chat_template'] = { type: 'string', value: config.chat_template };
  return out;
}

/**
 * The metadata of a qwen2 GGUF made from a fixture model folder: the config's numbers under
 * their GGUF keys (the RoPE base when the config has one) and the tokenizer of `tokenizerDir`
 * with pre-tokenizer `pre`. With folderTensors(folder) it is the folder's model as a .gguf.
 */
export function qwen2FixtureMetadata(folder: string, tokenizerDir: string, pre: string): Record<string, GgufEntry> {
  const config = JSON.parse(readFileSync(path.join(folder, 'config.json'), 'utf8'));
  const theta = config.rope_parameters?.rope_theta ?? config.rope_theta;
  return {
    'general.architecture': { type: 'string', value: 'qwen2' },
    'qwen2.block_count': { type: 'u32', value: config.num_hidden_layers },
    'qwen2.embedding_length': { type: 'u32', value: config.hidden_size },
    'qwen2.feed_forward_length': { type: 'u32', value: config.intermediate_size },
    'qwen2.attention.head_count': { type: 'u32', value: config.num_attention_heads },
    'qwen2.attention.head_count_kv': { type: 'u32', value: config.num_key_value_heads },
    'qwen2.attention.layer_norm_rms_epsilon': { type: 'f32', value: config.rms_norm_eps },
    ...(theta !== undefined ? { 'qwen2.rope.freq_base': { type: 'f32', value: theta } as GgufEntry } : {}),
    'qwen2.context_length': { type: 'u32', value: config.max_position_embeddings },
    ...gpt2TokenizerMetadata(
      JSON.parse(readFileSync(path.join(tokenizerDir, 'tokenizer.json'), 'utf8')),
      JSON.parse(readFileSync(path.join(tokenizerDir, 'tokenizer_config.json'), 'utf8')),
      pre,
    ),
  };
}

// Hugging Face tensor name -> GGUF name, as the llama.cpp converter spells them.
export function ggufName(hf: string): string {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const parts: [string, string][] = [
    ['.self_attn.q_proj.', '.attn_q.'],
    ['.self_attn.k_proj.', '.attn_k.'],
    ['.self_attn.v_proj.', '.attn_v.'],
    ['.self_attn.o_proj.', '.attn_output.'],
    ['.mlp.gate_proj.', '.ffn_gate.'],
    ['.mlp.up_proj.', '.ffn_up.'],
    ['.mlp.down_proj.', '.ffn_down.'],
    ['.input_layernorm.', '.attn_norm.'],
    ['.post_attention_layernorm.', '.ffn_norm.'],
  ];
  const name = hf.replace(/^model\.layers\./, 'blk.');
  for (const [from, to] of parts) if (name.includes(from)) return name.replace(from, to);
  throw new Error(`no GGUF name for ${hf}`);
}

// Every tensor of a fixture folder whose weights are F32 (qwen2 keeps its Q/K row order in
// GGUF, so the bytes are copied as they are).
export function folderTensors(folder: string): GgufTensor[] {
  const tensors: GgufTensor[] = [];
  for (const file of readdirSync(folder)
    .filter((f) => f.endsWith('.safetensors'))
    .sort()) {
    const bytes = readFileSync(path.join(folder, file));
    const length = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<
      string,
      { dtype: string; shape: number[]; data_offsets: [number, number] }
    >;
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      if (t.dtype !== 'F32') throw new Error(`${file}: tensor ${name} is ${t.dtype}, not F32`);
      tensors.push({
        name: ggufName(name),
        type: 0,
        ne: [...t.shape].reverse(),
        bytes: bytes.subarray(8 + length + t.data_offsets[0], 8 + length + t.data_offsets[1]),
      });
    }
  }
  return tensors;
}
