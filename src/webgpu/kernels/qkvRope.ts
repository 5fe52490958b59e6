// Per token and head of a Qkv row (q heads, then kv heads): add the q|k|v bias, apply the
// per-head RMS norm (Qwen3) to q and k, rotate q and k by RoPE in the rotate-half layout
//   x'[i] = x[i] cos a_i - x[i + half] sin a_i,  x'[i + half] = x[i + half] cos a_i + x[i] sin a_i,
// and write the new k and v rows into the cache at the token's position. The angles come
// from the host, [token][cos half | sin half]. One workgroup per (token, head); head_dim <= 256.
import { groupIndex, paramsStruct } from './common';

export const qkvRopeWgsl = () => `
${paramsStruct(['qkv_id', 'tokens', 'heads', 'kv_heads', 'head_dim', 'rope_id', 'extras_id', 'flags', 'eps', 'k_id', 'v_id', 'start'])}
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> rope: array<f32>;
@group(0) @binding(3) var<storage, read> extras: array<f32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<f32>;
var<workgroup> head: array<f32, 256>;
var<workgroup> partial: array<f32, 128>;
${groupIndex}
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let all_heads = p.heads + p.kv_heads;
  let index = group_index(wid, groups);
  if (index >= p.tokens * all_heads) { return; }
  let t = index / all_heads;
  let h = index % all_heads;
  let query = h < p.heads;
  let kv_size = p.kv_heads * p.head_dim;
  let q_size = p.heads * p.head_dim;
  let width = q_size + 2u * kv_size;
  // Offset of this head inside the row, and inside its part (q or k).
  let part_offset = select((h - p.heads) * p.head_dim, h * p.head_dim, query);
  let at = t * width + select(q_size + part_offset, part_offset, query);
  let v_at = t * width + q_size + kv_size + part_offset;
  let has_bias = (p.flags & 1u) != 0u;
  let has_norm = (p.flags & 2u) != 0u;
  let norm_base = select(0u, q_size + 2u * kv_size, has_bias);
  let half = p.head_dim / 2u;
  let position = p.start + t;
  let row_in_cache = position * kv_size + part_offset;
  var sum = 0.0;
  for (var d = lane; d < p.head_dim; d += 128u) {
    var value = qkv[at + d];
    if (has_bias) { value += extras[select(q_size + part_offset, part_offset, query) + d]; }
    head[d] = value;
    sum += value * value;
    if (!query) {
      var v = qkv[v_at + d];
      if (has_bias) { v += extras[q_size + kv_size + part_offset + d]; }
      qkv[v_at + d] = v;
      v_cache[row_in_cache + d] = v;
    }
  }
  partial[lane] = sum;
  workgroupBarrier();
  for (var step = 64u; step > 0u; step >>= 1u) {
    if (lane < step) { partial[lane] += partial[lane + step]; }
    workgroupBarrier();
  }
  if (has_norm) {
    let inverse_rms = 1.0 / sqrt(partial[0] / f32(p.head_dim) + bitcast<f32>(p.eps));
    let weights = norm_base + select(p.head_dim, 0u, query);
    for (var d = lane; d < p.head_dim; d += 128u) { head[d] = extras[weights + d] * (head[d] * inverse_rms); }
  }
  workgroupBarrier();
  for (var i = lane; i < half; i += 128u) {
    let c = rope[t * p.head_dim + i];
    let s = rope[t * p.head_dim + half + i];
    let x1 = head[i];
    let x2 = head[i + half];
    let r1 = x1 * c - x2 * s;
    let r2 = x2 * c + x1 * s;
    qkv[at + i] = r1;
    qkv[at + i + half] = r2;
    if (!query) {
      k_cache[row_in_cache + i] = r1;
      k_cache[row_in_cache + i + half] = r2;
    }
  }
}
`;
