// y[r] = weight * (x[r] * inverse_rms(x[r])), inverse_rms = 1 / sqrt(mean(x^2) + eps), per row
// (the Hugging Face order). One workgroup per row; the sum of squares is a tree over 256 lanes.
import { groupIndex, paramsStruct } from './common';

export const rmsNormWgsl = () => `
${paramsStruct(['x_id', 'x_offset', 'x_stride', 'y_id', 'y_offset', 'y_stride', 'w_id', 'rows', 'width', 'eps'])}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
var<workgroup> partial: array<f32, 256>;
${groupIndex}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let row = group_index(wid, groups);
  if (row >= p.rows) { return; }
  let x0 = p.x_offset + row * p.x_stride;
  let y0 = p.y_offset + row * p.y_stride;
  var sum = 0.0;
  for (var i = lane; i < p.width; i += 256u) { let v = x[x0 + i]; sum += v * v; }
  partial[lane] = sum;
  workgroupBarrier();
  for (var half = 128u; half > 0u; half >>= 1u) {
    if (lane < half) { partial[lane] += partial[lane + half]; }
    workgroupBarrier();
  }
  let inverse_rms = 1.0 / sqrt(partial[0] / f32(p.width) + bitcast<f32>(p.eps));
  for (var i = lane; i < p.width; i += 256u) { y[y0 + i] = w[i] * (x[x0 + i] * inverse_rms); }
}
`;
