// y[r] (+)= sum_c W[r][c] x[c] (+ bias[r]) for one token: the decode step's products, bound by
// reading W once. A workgroup of 128 lanes takes 4 rows; each lane reads 16 bytes of a row at a
// time (4 f32, or 8 f16 / bf16 values), consecutive lanes consecutive bytes, then a tree over
// the lanes adds the 4 rows' shares. Needs cols % 8 == 0 (linear.ts serves the rest).
import { groupIndex, paramsStruct } from './common';
import { linearBindings, WeightType } from './linear';

function rowLoop(type: WeightType): string {
  if (type === 'f32') {
    return `
  let quads = p.cols / 4u;
  for (var k = lane; k < quads; k += 128u) {
    let c = 4u * k;
    let xv = vec4f(x[p.x_offset + c], x[p.x_offset + c + 1u], x[p.x_offset + c + 2u], x[p.x_offset + c + 3u]);
    for (var i = 0u; i < 4u; i++) { acc[i] += dot(w[w_row[i] / 4u + k], xv); }
  }`;
  }
  const unpack = (word: string) => (type === 'f16' ? `unpack2x16float(${word})` : `vec2f(bitcast<f32>(${word} << 16u), bitcast<f32>(${word} & 0xffff0000u))`);
  return `
  let octets = p.cols / 8u;
  for (var k = lane; k < octets; k += 128u) {
    let c = 8u * k;
    let xa = vec4f(x[p.x_offset + c], x[p.x_offset + c + 1u], x[p.x_offset + c + 2u], x[p.x_offset + c + 3u]);
    let xb = vec4f(x[p.x_offset + c + 4u], x[p.x_offset + c + 5u], x[p.x_offset + c + 6u], x[p.x_offset + c + 7u]);
    for (var i = 0u; i < 4u; i++) {
      let words = w[w_row[i] / 8u + k];
      let wa = vec4f(${unpack('words.x')}, ${unpack('words.y')});
      let wb = vec4f(${unpack('words.z')}, ${unpack('words.w')});
      acc[i] += dot(wa, xa) + dot(wb, xb);
    }
  }`;
}

export const linearOneTokenWgsl = (type: WeightType) => `
${linearBindings(type, 'vec4f', 'vec4u')}
var<workgroup> shares: array<f32, 512>;
${groupIndex}
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let first_row = group_index(wid, groups) * 4u;
  if (first_row >= p.rows) { return; }
  var w_row: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) { w_row[i] = min(first_row + i, p.rows - 1u) * p.cols; }
  var acc: array<f32, 4>;
  ${rowLoop(type)}
  for (var i = 0u; i < 4u; i++) { shares[i * 128u + lane] = acc[i]; }
  workgroupBarrier();
  for (var half = 64u; half > 0u; half >>= 1u) {
    if (lane < half) {
      for (var i = 0u; i < 4u; i++) { shares[i * 128u + lane] += shares[i * 128u + lane + half]; }
    }
    workgroupBarrier();
  }
  if (lane < 4u && first_row + lane < p.rows) {
    let r = first_row + lane;
    var value = shares[lane * 128u];
    if (p.bias_id != 0u) { value += bias[p.bias_offset + r]; }
    let at = p.y_offset + r;
    if (p.accumulate != 0u) { value = y[at] + value; }
    y[at] = value;
  }
}
`;
