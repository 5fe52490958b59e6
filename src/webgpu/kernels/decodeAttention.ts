// One-token attention, split over the positions (flash-decoding): the positions are cut into
// partitions of `partition` positions, a workgroup computes each partition's running max m,
// sum l and unnormalised output a = sum_i exp(s_i - m) V[pos_i] for the query heads it serves,
// and a second kernel combines the partitions of each head:
//   M = max_p m_p,  out = sum_p exp(m_p - M) a_p / sum_p exp(m_p - M) l_p.
// Dense attention serves the `group` query heads of one KV head together, so each K/V row is
// read once for all of them; over position lists (one list per query head) a workgroup serves
// one head. Scores s_i = scale * q.K[pos_i] are kept for a selection layer as in attention.ts.
// Partials: scratch [heads][partitions][head_dim + 2] (a, then m and l). head_dim <= 256,
// group <= 8, and group * head_dim <= 1024 (the queries of a workgroup in 4 KiB).
import { ATTEND_FIELDS } from './attention';
import { groupIndex, paramsStruct } from './common';

// The attend command's parameters, then the split over positions that this kernel adds.
const fields = [...ATTEND_FIELDS, 'part_size', 'partitions'];

export const decodeAttentionPartsWgsl = () => `
${paramsStruct(fields)}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> keys: array<vec4f>;
@group(0) @binding(3) var<storage, read> values: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;
@group(0) @binding(6) var<storage, read> lists: array<i32>;
var<workgroup> q: array<vec4f, 256>;
var<workgroup> weights: array<f32, 1024>;
var<workgroup> tile_positions: array<u32, 128>;
var<workgroup> reduce: array<f32, 1024>;
${groupIndex}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let listed = p.lists_id != 0u;
  let group = p.heads / p.kv_heads;
  let served = select(group, 1u, listed);            // query heads of this workgroup
  let owners = select(p.kv_heads, p.heads, listed);  // workgroups per partition
  let index = group_index(wid, groups);
  if (index >= owners * p.partitions) { return; }
  let owner = index % owners;
  let part = index / owners;
  let first_head = select(owner * group, owner, listed);
  let kv_head = first_head / group;
  let kv_size = p.kv_heads * p.head_dim;
  let base = kv_head * p.head_dim;
  let count = select(p.positions, p.list_count, listed);
  let first = part * p.part_size;
  let last = min(count, first + p.part_size);
  let scale = bitcast<f32>(p.scale);
  for (var i = lane; i < served * p.head_dim / 4u; i += 128u) {
    let at = first_head * p.head_dim + 4u * i;
    q[i] = vec4f(qkv[at], qkv[at + 1u], qkv[at + 2u], qkv[at + 3u]);
  }
  workgroupBarrier();
  var running_max: array<f32, 8>;
  var running_sum: array<f32, 8>;
  var acc0: array<f32, 8>;
  var acc1: array<f32, 8>;
  for (var g = 0u; g < 8u; g++) { running_max[g] = -3.0e38; }
  for (var tile = first; tile < last; tile += 128u) {
    let j = tile + lane;
    let in_tile = min(128u, last - tile);
    var position = 0u;
    if (j < last) {
      position = select(j, u32(lists[first_head * p.list_stride + j]), listed);
      let row = position * kv_size + base;
      // Zeroed by hand: Dawn's compiler kept a loop-scoped array's values from the previous tile.
      var dots: array<f32, 8>;
      for (var g = 0u; g < 8u; g++) { dots[g] = 0.0; }
      for (var d = 0u; d < p.head_dim; d += 4u) {
        let k = keys[(row + d) / 4u];
        for (var g = 0u; g < served; g++) {
          dots[g] += dot(q[(g * p.head_dim + d) / 4u], k);
        }
      }
      for (var g = 0u; g < served; g++) {
        let s = dots[g] * scale;
        weights[g * 128u + lane] = s;
        if (p.scores_id != 0u) { scores[(first_head + g) * p.positions + j] = s; }
      }
    }
    tile_positions[lane] = position;
    // The tile's max and sum for every served head at once: one tree of 7 steps each.
    for (var g = 0u; g < served; g++) { reduce[g * 128u + lane] = select(-3.0e38, weights[g * 128u + lane], lane < in_tile); }
    workgroupBarrier();
    for (var step = 64u; step > 0u; step >>= 1u) {
      if (lane < step) {
        for (var g = 0u; g < served; g++) { reduce[g * 128u + lane] = max(reduce[g * 128u + lane], reduce[g * 128u + lane + step]); }
      }
      workgroupBarrier();
    }
    var next_max: array<f32, 8>;
    for (var g = 0u; g < served; g++) { next_max[g] = max(running_max[g], reduce[g * 128u]); }
    workgroupBarrier();
    for (var g = 0u; g < served; g++) {
      var e = 0.0;
      if (lane < in_tile) { e = exp(weights[g * 128u + lane] - next_max[g]); }
      weights[g * 128u + lane] = e;
      reduce[g * 128u + lane] = e;
    }
    workgroupBarrier();
    for (var step = 64u; step > 0u; step >>= 1u) {
      if (lane < step) {
        for (var g = 0u; g < served; g++) { reduce[g * 128u + lane] += reduce[g * 128u + lane + step]; }
      }
      workgroupBarrier();
    }
    for (var g = 0u; g < served; g++) {
      let correction = exp(running_max[g] - next_max[g]);
      running_sum[g] = running_sum[g] * correction + reduce[g * 128u];
      acc0[g] *= correction;
      acc1[g] *= correction;
      running_max[g] = next_max[g];
    }
    for (var i = 0u; i < in_tile; i++) {
      let row = tile_positions[i] * kv_size + base;
      var v0 = 0.0;
      var v1 = 0.0;
      if (lane < p.head_dim) { v0 = values[row + lane]; }
      if (lane + 128u < p.head_dim) { v1 = values[row + lane + 128u]; }
      for (var g = 0u; g < served; g++) {
        let weight = weights[g * 128u + i];
        acc0[g] += weight * v0;
        acc1[g] += weight * v1;
      }
    }
    workgroupBarrier();
  }
  let stride = p.head_dim + 2u;
  for (var g = 0u; g < served; g++) {
    let at = ((first_head + g) * p.partitions + part) * stride;
    if (lane < p.head_dim) { partials[at + lane] = acc0[g]; }
    if (lane + 128u < p.head_dim) { partials[at + lane + 128u] = acc1[g]; }
    if (lane == 0u) {
      partials[at + p.head_dim] = running_max[g];
      partials[at + p.head_dim + 1u] = running_sum[g];
    }
  }
}
`;

export const decodeAttentionCombineWgsl = () => `
${paramsStruct(fields)}
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${groupIndex}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let h = group_index(wid, groups);
  if (h >= p.heads || lane >= p.head_dim) { return; }
  let stride = p.head_dim + 2u;
  let first = h * p.partitions * stride;
  var largest = -3.0e38;
  for (var part = 0u; part < p.partitions; part++) { largest = max(largest, partials[first + part * stride + p.head_dim]); }
  var total = 0.0;
  var value = 0.0;
  for (var part = 0u; part < p.partitions; part++) {
    let at = first + part * stride;
    let weight = exp(partials[at + p.head_dim] - largest);
    total += weight * partials[at + p.head_dim + 1u];
    value += weight * partials[at + lane];
  }
  out[h * p.head_dim + lane] = value / total;
}
`;
