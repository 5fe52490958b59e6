// Quest: per query head, each page's upper bound on q.k, sum_d max(q_d min_d, q_d max_d) over
// the page's key bounds (summed in d order, as the CPU does); the page_budget - 1 best of the
// earlier pages (top-k ranking of topK.ts) and the current page last, listed as positions.
// One workgroup per query head; the bounds go through a scratch buffer [heads][pages].
import { groupIndex, paramsStruct } from './common';
import { topKWgsl } from './topK';

export const questPagesWgsl = () => `
${paramsStruct(['qkv_id', 'heads', 'kv_heads', 'head_dim', 'min_id', 'max_id', 'pages', 'page_budget', 'positions', 'lists_id', 'stride', 'bounds_id'])}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> key_min: array<f32>;
@group(0) @binding(3) var<storage, read> key_max: array<f32>;
@group(0) @binding(4) var<storage, read_write> lists: array<i32>;
@group(0) @binding(5) var<storage, read_write> bounds: array<f32>;
var<private> head: u32;
${groupIndex}

fn key(i: u32) -> u32 { return order_key(bounds[head * p.pages + i]); }

fn take(slot: u32, page: u32) {
  for (var k = 0u; k < 16u; k++) { lists[head * p.stride + slot * 16u + k] = i32(page * 16u + k); }
}
${topKWgsl}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let index = group_index(wid, groups);
  if (index >= p.heads) { return; }
  head = index;
  let kv_size = p.kv_heads * p.head_dim;
  let base = (index / (p.heads / p.kv_heads)) * p.head_dim;
  for (var page = lane; page < p.pages; page += 256u) {
    var bound = 0.0;
    for (var d = 0u; d < p.head_dim; d++) {
      let q = qkv[head * p.head_dim + d];
      let at = page * kv_size + base + d;
      bound += max(q * key_min[at], q * key_max[at]);
    }
    bounds[head * p.pages + page] = bound;
  }
  storageBarrier();
  workgroupBarrier();
  let earlier = p.pages - 1u;
  let keep = min(p.page_budget - 1u, earlier);
  let choice = radix_select(lane, earlier, keep);
  emit_selected(lane, earlier, choice.x, choice.y);
  let first = earlier * 16u;
  if (lane < p.positions - first) { lists[head * p.stride + keep * 16u + lane] = i32(first + lane); }
}
`;
