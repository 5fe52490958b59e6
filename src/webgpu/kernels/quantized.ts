// GGUF block-quantised weights read in place (layouts and value formulas as the CPU's
// native/src/model/quant.cpp): a kernel that includes this has `w: array<u32>` holding whole
// rows of blocks, and reads value (row, c) with weight_value. Formulas keep the CPU's order
// of operations (a device may still fuse a multiply and an add).
//   Q8_0: blocks of 32, [f16 d][int8 q x 32]                      value = d * q
//   Q4_K: blocks of 256, [f16 d][f16 dmin][12 bytes of 6-bit scales and mins][128 bytes of nibbles]
//         sub-block j = value / 32: value = (d * scale_j) * q - dmin * min_j
//   Q6_K: blocks of 256, [ql 128][qh 64][int8 scales 16][f16 d]     value = (d * scales[v / 16]) * (q - 32)
export type QuantizedType = 'q8_0' | 'q4_k' | 'q6_k';

const common = /* wgsl */ `
fn byte_at(i: u32) -> u32 { return (w[i / 4u] >> ((i % 4u) * 8u)) & 0xffu; }
fn half_at(i: u32) -> f32 { return unpack2x16float((w[i / 4u] >> ((i % 4u) * 8u)) & 0xffffu).x; }
fn signed_byte(b: u32) -> f32 { return f32(bitcast<i32>(b << 24u) >> 24u); }
`;

const formulas: Record<QuantizedType, string> = {
  q8_0: `
fn weight_value(row: u32, c: u32) -> f32 {
  let base = row * (p.cols / 32u) * 34u + (c / 32u) * 34u;
  return half_at(base) * signed_byte(byte_at(base + 2u + c % 32u));
}`,
  q4_k: `
fn weight_value(row: u32, c: u32) -> f32 {
  let base = row * (p.cols / 256u) * 144u + (c / 256u) * 144u;
  let within = c % 256u;
  let j = within / 32u;
  var scale: u32;
  var minimum: u32;
  if (j < 4u) {
    scale = byte_at(base + 4u + j) & 0x3fu;
    minimum = byte_at(base + 8u + j) & 0x3fu;
  } else {
    scale = (byte_at(base + 8u + j) & 0x0fu) | ((byte_at(base + j) >> 6u) << 4u);
    minimum = (byte_at(base + 8u + j) >> 4u) | ((byte_at(base + 4u + j) >> 6u) << 4u);
  }
  let q = (byte_at(base + 16u + 32u * (j / 2u) + within % 32u) >> ((j % 2u) * 4u)) & 0x0fu;
  return (half_at(base) * f32(scale)) * f32(q) - half_at(base + 2u) * f32(minimum);
}`,
  q6_k: `
fn weight_value(row: u32, c: u32) -> f32 {
  let base = row * (p.cols / 256u) * 210u + (c / 256u) * 210u;
  let v = c % 256u;
  let half = v / 128u;
  let k = (v % 128u) / 32u;
  let i = v % 32u;
  let low = byte_at(base + 64u * half + 32u * (k % 2u) + i) >> (4u * (k / 2u));
  let high = byte_at(base + 128u + 32u * half + i) >> (2u * k);
  let q = (low & 0x0fu) | ((high & 0x03u) << 4u);
  return (half_at(base + 208u) * signed_byte(byte_at(base + 192u + v / 16u))) * f32(i32(q) - 32);
}`,
};

export const isQuantized = (type: string): type is QuantizedType => type in formulas;
export const quantizedWgsl = (type: QuantizedType) => common + formulas[type];
