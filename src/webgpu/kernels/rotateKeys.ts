// Context shift: the keys of positions [first, first + count) rotated further by the RoPE angle
// of their move, per pair i (rotate-half layout): the host's table holds cos and sin of
// delta * inv_freq_i. One lane per (position, kv head, pair).
import { groupIndex, paramsStruct } from './common';

export const rotateKeysWgsl = () => `
${paramsStruct(['k_id', 'kv_heads', 'head_dim', 'first', 'count', 'table_id'])}
@group(0) @binding(1) var<storage, read_write> keys: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
${groupIndex}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let half = p.head_dim / 2u;
  let index = group_index(wid, groups) * 64u + lane;
  if (index >= p.count * p.kv_heads * half) { return; }
  let i = index % half;
  let row = (p.first + index / half / p.kv_heads) * p.kv_heads * p.head_dim + ((index / half) % p.kv_heads) * p.head_dim;
  let c = table[i];
  let s = table[half + i];
  let x1 = keys[row + i];
  let x2 = keys[row + i + half];
  keys[row + i] = x1 * c - x2 * s;
  keys[row + i + half] = x2 * c + x1 * s;
}
`;
