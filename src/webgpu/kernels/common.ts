// Pieces every kernel shares. Each kernel's parameters are the words of its tape command
// (native/src/webgpu/webgpu_tape.h), in order, as a uniform struct of u32; floats are read
// with bitcast<f32>. Workgroups are numbered over a 2-D grid (a dispatch dimension holds at
// most 65535), so `group_index` flattens it.
export const groupIndex = /* wgsl */ `
fn group_index(wid: vec3u, groups: vec3u) -> u32 { return wid.x + wid.y * groups.x; }
`;

export function paramsStruct(fields: string[]): string {
  return `struct Params {\n${fields.map((f) => `  ${f}: u32,`).join('\n')}\n}\n@group(0) @binding(0) var<uniform> p: Params;\n`;
}
