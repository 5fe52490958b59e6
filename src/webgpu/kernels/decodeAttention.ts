// One-token attention, split over the positions (flash-decoding): the positions are cut into
// partitions of `partition` positions, a workgroup computes each partition's running max m,
// sum l and unnormalised output a = sum_i exp(s_i - m) V[pos_i] for the query heads it serves,
// and a second kernel combines the partitions of each head:
//   M = max_p m_p,  out = sum_p exp(m_p - M) a_p / sum_p exp(m_p - M) l_p.
// Dense attention serves the `group` query heads of one KV head together, so each K/V row is
// read once for all of them; over position lists (one list per query head) a workgroup serves
// one head. Scores s_i = scale * q.K[pos_i] are kept for a selection layer as in attention.ts.
// The scores of a 128-position tile are made 16 positions a round by teams of 8 lanes (each
// team reads one key row as a contiguous run), the values by one lane per output element.
// Partials: scratch [heads][partitions][head_dim + 2] (a, then m and l). head_dim <= 256,
// group <= 8, and group * head_dim <= 1024 (the queries of a workgroup in 4 KiB).
// The kernel is made for one (served heads, head_dim) pair, so that the per-head running
// values live in registers and the loops over them and over head_dim unroll: indexed by a
// value known only at run time, a private array lands in slow local memory on NVIDIA.
import { ATTEND_FIELDS } from './attention';
import { groupIndex, paramsStruct } from './common';

// The attend command's parameters, then the split over positions that this kernel adds.
const fields = [...ATTEND_FIELDS, 'part_size', 'partitions'];

export const decodeAttentionPartsWgsl = (served: number, headDim: number) => `
${paramsStruct(fields)}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> keys: array<vec4f>;
@group(0) @binding(3) var<storage, read> values: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;
@group(0) @binding(6) var<storage, read> lists: array<i32>;
const G = ${served}u;
const HD = ${headDim}u;
var<workgroup> q: array<vec4f, ${(served * headDim) / 4}>;
var<workgroup> weights: array<f32, ${served * 128}>;
var<workgroup> tile_positions: array<u32, 128>;
var<workgroup> reduce: array<f32, ${served * 128}>;
${groupIndex}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let listed = p.lists_id != 0u;
  let group = p.heads / p.kv_heads;
  let owners = select(p.kv_heads, p.heads, listed);  // workgroups per partition
  let index = group_index(wid, groups);
  if (index >= owners * p.partitions) { return; }
  let owner = index % owners;
  let part = index / owners;
  let first_head = select(owner * group, owner, listed);
  let kv_head = first_head / group;
  let kv_size = p.kv_heads * HD;
  let base = kv_head * HD;
  let count = select(p.positions, p.list_count, listed);
  let first = part * p.part_size;
  let last = min(count, first + p.part_size);
  let scale = bitcast<f32>(p.scale);
  for (var i = lane; i < G * HD / 4u; i += 128u) {
    let at = first_head * HD + 4u * i;
    q[i] = vec4f(qkv[at], qkv[at + 1u], qkv[at + 2u], qkv[at + 3u]);
  }
  workgroupBarrier();
  var running_max: array<f32, G>;
  var running_sum: array<f32, G>;
  var acc0: array<f32, G>;
  var acc1: array<f32, G>;
  for (var g = 0u; g < G; g++) {
    running_max[g] = -3.0e38;
    running_sum[g] = 0.0;
    acc0[g] = 0.0;
    acc1[g] = 0.0;
  }
  for (var tile = first; tile < last; tile += 128u) {
    let j = tile + lane;
    let in_tile = min(128u, last - tile);
    var position = 0u;
    if (j < last) { position = select(j, u32(lists[first_head * p.list_stride + j]), listed); }
    tile_positions[lane] = position;
    workgroupBarrier();
    // The scores: a team of 8 lanes per position, each lane a share of the row's 16-byte
    // pieces, so that a team reads its key row as one contiguous run (one lane per row reads
    // rows 4 KiB apart); 16 positions a round, the team's sums through workgroup memory.
    for (var round = 0u; round < 8u; round++) {
      let slot = round * 16u + lane / 8u;
      let member = lane % 8u;
      let jr = tile + slot;
      // Zeroed by hand each round: Dawn's compiler once kept a loop-scoped array's values
      // from the previous iteration.
      var dots: array<f32, G>;
      for (var g = 0u; g < G; g++) { dots[g] = 0.0; }
      if (jr < last) {
        let row = (tile_positions[slot] * kv_size + base) / 4u;
        for (var d = member; d < HD / 4u; d += 8u) {
          let k = keys[row + d];
          for (var g = 0u; g < G; g++) { dots[g] += dot(q[g * HD / 4u + d], k); }
        }
      }
      for (var g = 0u; g < G; g++) { reduce[g * 128u + lane] = dots[g]; }
      workgroupBarrier();
      if (lane < 16u * G) {
        let g = lane / 16u;
        let within = lane % 16u;
        var sum = 0.0;
        for (var m = 0u; m < 8u; m++) { sum += reduce[g * 128u + within * 8u + m]; }
        let js = tile + round * 16u + within;
        let s = sum * scale;
        weights[g * 128u + round * 16u + within] = s;
        if (p.scores_id != 0u && js < last) { scores[(first_head + g) * p.positions + js] = s; }
      }
      workgroupBarrier();
    }
    // The tile's max and sum for every served head at once: one tree of 7 steps each.
    for (var g = 0u; g < G; g++) { reduce[g * 128u + lane] = select(-3.0e38, weights[g * 128u + lane], lane < in_tile); }
    workgroupBarrier();
    for (var step = 64u; step > 0u; step >>= 1u) {
      if (lane < step) {
        for (var g = 0u; g < G; g++) { reduce[g * 128u + lane] = max(reduce[g * 128u + lane], reduce[g * 128u + lane + step]); }
      }
      workgroupBarrier();
    }
    var next_max: array<f32, G>;
    for (var g = 0u; g < G; g++) { next_max[g] = max(running_max[g], reduce[g * 128u]); }
    workgroupBarrier();
    for (var g = 0u; g < G; g++) {
      var e = 0.0;
      if (lane < in_tile) { e = exp(weights[g * 128u + lane] - next_max[g]); }
      weights[g * 128u + lane] = e;
      reduce[g * 128u + lane] = e;
    }
    workgroupBarrier();
    for (var step = 64u; step > 0u; step >>= 1u) {
      if (lane < step) {
        for (var g = 0u; g < G; g++) { reduce[g * 128u + lane] += reduce[g * 128u + lane + step]; }
      }
      workgroupBarrier();
    }
    for (var g = 0u; g < G; g++) {
      let correction = exp(running_max[g] - next_max[g]);
      running_sum[g] = running_sum[g] * correction + reduce[g * 128u];
      acc0[g] *= correction;
      acc1[g] *= correction;
      running_max[g] = next_max[g];
    }
    // The values, four positions per step so that four row loads are in flight at once.
    if (lane < HD) {
      var i = 0u;
      for (; i + 4u <= in_tile; i += 4u) {
        let v0 = values[tile_positions[i] * kv_size + base + lane];
        let v1 = values[tile_positions[i + 1u] * kv_size + base + lane];
        let v2 = values[tile_positions[i + 2u] * kv_size + base + lane];
        let v3 = values[tile_positions[i + 3u] * kv_size + base + lane];
        for (var g = 0u; g < G; g++) {
          let w = g * 128u + i;
          acc0[g] += weights[w] * v0 + weights[w + 1u] * v1 + weights[w + 2u] * v2 + weights[w + 3u] * v3;
        }
      }
      for (; i < in_tile; i++) {
        let v = values[tile_positions[i] * kv_size + base + lane];
        for (var g = 0u; g < G; g++) { acc0[g] += weights[g * 128u + i] * v; }
      }
    }
    if (HD > 128u && lane + 128u < HD) {
      for (var i = 0u; i < in_tile; i++) {
        let v = values[tile_positions[i] * kv_size + base + lane + 128u];
        for (var g = 0u; g < G; g++) { acc1[g] += weights[g * 128u + i] * v; }
      }
    }
    workgroupBarrier();
  }
  let stride = HD + 2u;
  for (var g = 0u; g < G; g++) {
    let at = ((first_head + g) * p.partitions + part) * stride;
    if (lane < HD) { partials[at + lane] = acc0[g]; }
    if (lane + 128u < HD) { partials[at + lane + 128u] = acc1[g]; }
    if (lane == 0u) {
      partials[at + HD] = running_max[g];
      partials[at + HD + 1u] = running_sum[g];
    }
  }
}
`;

// The partitions of one head: the largest m first, then the weights exp(m_p - M) of a chunk of
// partitions in workgroup memory, shared by the lanes (one per output element), so that the
// lanes read the partial outputs with independent loads instead of one dependent chain.
export const decodeAttentionCombineWgsl = () => `
${paramsStruct(fields)}
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
var<workgroup> reduce: array<f32, 256>;
var<workgroup> chunk_weights: array<f32, 256>;
${groupIndex}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let h = group_index(wid, groups);
  if (h >= p.heads) { return; }
  let stride = p.head_dim + 2u;
  let first = h * p.partitions * stride;
  var largest = -3.0e38;
  for (var part = lane; part < p.partitions; part += 256u) { largest = max(largest, partials[first + part * stride + p.head_dim]); }
  reduce[lane] = largest;
  workgroupBarrier();
  for (var step = 128u; step > 0u; step >>= 1u) {
    if (lane < step) { reduce[lane] = max(reduce[lane], reduce[lane + step]); }
    workgroupBarrier();
  }
  let top = reduce[0];
  workgroupBarrier();
  var total = 0.0;
  var value = 0.0;
  for (var chunk = 0u; chunk < p.partitions; chunk += 256u) {
    let part = chunk + lane;
    var weight = 0.0;
    if (part < p.partitions) {
      let at = first + part * stride;
      weight = exp(partials[at + p.head_dim] - top);
      total += weight * partials[at + p.head_dim + 1u];
    }
    chunk_weights[lane] = weight;
    workgroupBarrier();
    if (lane < p.head_dim) {
      let in_chunk = min(256u, p.partitions - chunk);
      var i = 0u;
      for (; i + 4u <= in_chunk; i += 4u) {
        let at = first + (chunk + i) * stride + lane;
        value += chunk_weights[i] * partials[at] + chunk_weights[i + 1u] * partials[at + stride] +
                 chunk_weights[i + 2u] * partials[at + 2u * stride] + chunk_weights[i + 3u] * partials[at + 3u * stride];
      }
      for (; i < in_chunk; i++) { value += chunk_weights[i] * partials[first + (chunk + i) * stride + lane]; }
    }
    workgroupBarrier();
  }
  reduce[lane] = total;
  workgroupBarrier();
  for (var step = 128u; step > 0u; step >>= 1u) {
    if (lane < step) { reduce[lane] += reduce[lane + step]; }
    workgroupBarrier();
  }
  if (lane < p.head_dim) { out[h * p.head_dim + lane] = value / reduce[0]; }
}
`;
