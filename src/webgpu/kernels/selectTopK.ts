// TidalDecode's selection: per query head (or per GQA group, its heads' scores reduced by max
// or sum in head order) the `keep` best of the `candidates` earlier positions, ascending, then
// the current token (positions - 1) last. One workgroup per selector; scores [heads][positions].
import { groupIndex, paramsStruct } from './common';
import { topKWgsl } from './topK';

export const selectTopKWgsl = () => `
${paramsStruct(['scores_id', 'heads', 'group', 'positions', 'candidates', 'keep', 'policy', 'lists_id', 'stride'])}
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read_write> lists: array<i32>;
var<private> first_head: u32;
var<private> heads_served: u32;
${groupIndex}

fn key(i: u32) -> u32 {
  var value = scores[first_head * p.positions + i];
  for (var g = 1u; g < heads_served; g++) {
    let other = scores[(first_head + g) * p.positions + i];
    value = select(max(value, other), value + other, p.policy == 2u);
  }
  return order_key(value);
}

fn take(slot: u32, i: u32) {
  for (var g = 0u; g < heads_served; g++) { lists[(first_head + g) * p.stride + slot] = i32(i); }
}
${topKWgsl}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let per_head = p.policy == 0u;
  let selector = group_index(wid, groups);
  if (selector >= select(p.heads / p.group, p.heads, per_head)) { return; }
  first_head = select(selector * p.group, selector, per_head);
  heads_served = select(p.group, 1u, per_head);
  let choice = radix_select(lane, p.candidates, p.keep);
  emit_selected(lane, p.candidates, choice.x, choice.y);
  if (lane < heads_served) { lists[(first_head + lane) * p.stride + p.keep] = i32(p.positions - 1u); }
}
`;
