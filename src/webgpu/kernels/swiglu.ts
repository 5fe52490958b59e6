// gated[t][i] = silu(gate[t][i]) * up[t][i], silu(g) = g / (1 + exp(-g)); a GateUp row is gate | up.
import { groupIndex, paramsStruct } from './common';

export const swigluWgsl = () => `
${paramsStruct(['gate_up_id', 'tokens', 'inner', 'gated_id'])}
@group(0) @binding(1) var<storage, read> gate_up: array<f32>;
@group(0) @binding(2) var<storage, read_write> gated: array<f32>;
${groupIndex}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let index = group_index(wid, groups) * 256u + lane;
  if (index >= p.tokens * p.inner) { return; }
  let t = index / p.inner;
  let i = index % p.inner;
  let g = gate_up[t * 2u * p.inner + i];
  let u = gate_up[t * 2u * p.inner + p.inner + i];
  gated[index] = (g * (1.0 / (1.0 + exp(-g)))) * u;
}
`;
