// Top-k of a workgroup's candidates with the CPU's ranking (native/src/cpu/token_selection.cpp):
// higher value first, NaN below every number, ties to the lower index; the chosen indices
// come out ascending. Values map to u32 keys that order the same way; a 4-pass radix select
// (8 bits a pass, 256-bin histogram) finds the k-th key and how many of its ties to take, and
// an ascending sweep with prefix sums writes the chosen indices in order.
// A kernel that includes this defines `fn key(i: u32) -> u32` and `fn take(slot: u32, i: u32)`.
export const topKWgsl = /* wgsl */ `
var<workgroup> histogram: array<atomic<u32>, 256>;
var<workgroup> prefix_taken: array<u32, 256>;
var<workgroup> prefix_ties: array<u32, 256>;
var<workgroup> decided: vec2u;
var<workgroup> carried: vec2u;

fn order_key(v: f32) -> u32 {
  let bits = bitcast<u32>(v);
  if ((bits & 0x7fffffffu) > 0x7f800000u) { return 0u; }
  return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

// (threshold key, how many candidates equal to it are taken): the keep best are every
// key above the threshold and the first ties.
fn radix_select(lane: u32, count: u32, keep: u32) -> vec2u {
  var prefix = 0u;
  var mask = 0u;
  var remaining = keep;
  for (var round = 0u; round < 4u; round++) {
    let shift = 24u - 8u * round;
    atomicStore(&histogram[lane], 0u);
    workgroupBarrier();
    for (var i = lane; i < count; i += 256u) {
      let k = key(i);
      if ((k & mask) == prefix) { atomicAdd(&histogram[(k >> shift) & 0xffu], 1u); }
    }
    workgroupBarrier();
    if (lane == 0u) {
      var above = 0u;
      var bin = 255u;
      loop {
        let in_bin = atomicLoad(&histogram[bin]);
        if (above + in_bin >= remaining || bin == 0u) { break; }
        above += in_bin;
        bin -= 1u;
      }
      decided = vec2u(bin, remaining - above);
    }
    let choice = workgroupUniformLoad(&decided);
    prefix |= choice.x << shift;
    mask |= 0xffu << shift;
    remaining = choice.y;
  }
  return vec2u(prefix, remaining);
}

fn inclusive_scan(lane: u32, values: ptr<workgroup, array<u32, 256>>) {
  for (var offset = 1u; offset < 256u; offset <<= 1u) {
    var before = 0u;
    if (lane >= offset) { before = (*values)[lane - offset]; }
    workgroupBarrier();
    (*values)[lane] += before;
    workgroupBarrier();
  }
}

// Calls take(slot, i) for the chosen candidates, slots 0.. in ascending order of i.
fn emit_selected(lane: u32, count: u32, threshold: u32, ties: u32) {
  if (lane == 0u) { carried = vec2u(0u, 0u); }
  workgroupBarrier();
  for (var first = 0u; first < count; first += 256u) {
    let i = first + lane;
    var above = false;
    var tie = 0u;
    if (i < count) {
      let k = key(i);
      above = k > threshold;
      tie = select(0u, 1u, k == threshold);
    }
    prefix_ties[lane] = tie;
    workgroupBarrier();
    inclusive_scan(lane, &prefix_ties);
    let before = carried;
    let taken = above || (tie == 1u && before.y + prefix_ties[lane] - tie < ties);
    prefix_taken[lane] = select(0u, 1u, taken);
    workgroupBarrier();
    inclusive_scan(lane, &prefix_taken);
    if (taken) { take(before.x + prefix_taken[lane] - 1u, i); }
    workgroupBarrier();
    if (lane == 255u) { carried = vec2u(before.x + prefix_taken[255], before.y + prefix_ties[255]); }
    workgroupBarrier();
  }
}
`;
