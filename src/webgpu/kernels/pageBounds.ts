// Quest page bounds: for pages [first_page, end_page) of a layer's keys, per kv head and
// dimension, the min and max over the page's positions below `positions`. One lane per
// (page, element of a key row).
import { groupIndex, paramsStruct } from './common';

export const pageBoundsWgsl = () => `
${paramsStruct(['k_id', 'min_id', 'max_id', 'kv_heads', 'head_dim', 'first_page', 'end_page', 'positions'])}
@group(0) @binding(1) var<storage, read> keys: array<f32>;
@group(0) @binding(2) var<storage, read_write> key_min: array<f32>;
@group(0) @binding(3) var<storage, read_write> key_max: array<f32>;
${groupIndex}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row = p.kv_heads * p.head_dim;
  let index = group_index(wid, groups) * 64u + lane;
  if (index >= (p.end_page - p.first_page) * row) { return; }
  let page = p.first_page + index / row;
  let e = index % row;
  let first = page * 16u;
  let last = min(p.positions, first + 16u);
  var low = keys[first * row + e];
  var high = low;
  for (var pos = first + 1u; pos < last; pos++) {
    let k = keys[pos * row + e];
    low = min(low, k);
    high = max(high, k);
  }
  key_min[page * row + e] = low;
  key_max[page * row + e] = high;
}
`;
