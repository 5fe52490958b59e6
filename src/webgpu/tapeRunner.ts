// Runs the native backend's command tapes on a GPUDevice: buffers by id, one compute pass per
// stretch of kernels, host uploads and buffer copies in order between them, and the reads
// mapped back at the end. Kernel parameters go into 256-byte uniform slots.
import { decodeAttentionCombineWgsl, decodeAttentionPartsWgsl } from './kernels/decodeAttention';
import { Binding, kernels } from './kernelTable';
import { commands, TapeOp, wide } from './tape';
import { COPY_DST, COPY_SRC, MAP_MODE_READ, MAP_READ, STORAGE, UNIFORM } from './usage';

const SLOT_BYTES = 256;
const ARENA_SLOTS = 256;
const MAX_GRID = 65535;
const COMPUTE = 0x4;
// Dispatches encoded before the encoder is submitted, so the device starts on the first layers
// while the rest of a pass is being encoded.
const DISPATCHES_PER_SUBMIT = 64;
// Bind groups kept for reuse by the next passes (a decode step binds the same buffers each time).
const MAX_BIND_GROUPS = 8192;

interface Pipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** The bind group layout a kernel declares: the uniform at binding 0 (dynamic offset), then storage buffers. */
function layoutEntries(source: string): GPUBindGroupLayoutEntry[] {
  const entries: GPUBindGroupLayoutEntry[] = [];
  for (const match of source.matchAll(/@binding\((\d+)\)\s*var<(uniform|storage,\s*read_write|storage,\s*read)>/g)) {
    const binding = Number(match[1]);
    const kind = match[2].replace(/\s/g, '');
    const type: GPUBufferBindingType = kind === 'uniform' ? 'uniform' : kind === 'storage,read' ? 'read-only-storage' : 'storage';
    entries.push({ binding, visibility: COMPUTE, buffer: { type, hasDynamicOffset: binding === 0 } });
  }
  return entries;
}

interface Arena {
  buffer: GPUBuffer;
  words: Uint32Array;
  used: number; // slots written since the last flush of this arena
  flushedUpTo: number;
}

/** What the last tape cost: its dispatches, and the milliseconds spent encoding it and in all. */
export interface TapeStats {
  dispatches: number;
  encodeMs: number;
  totalMs: number;
}

/** Device time of each kernel over the last profiled tape: dispatches and nanoseconds, by kernel. */
export type KernelProfile = Map<string, { dispatches: number; ns: number }>;

const PROFILE_QUERIES = 4096; // the most a query set may hold

export class TapeRunner {
  lastTape: TapeStats = { dispatches: 0, encodeMs: 0, totalMs: 0 };
  lastProfile: KernelProfile = new Map();
  // Profiling (a device with 'timestamp-query'): each dispatch in its own pass with timestamps.
  private profiling = false;
  private querySet: GPUQuerySet | undefined;
  private profiledKeys: string[] = [];
  private dispatches = 0;
  private readonly buffers = new Map<number, GPUBuffer>();
  private readonly pipelines = new Map<string, Pipeline>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly serials = new WeakMap<GPUBuffer, number>();
  private nextSerial = 1;
  private dispatchesSinceSubmit = 0;
  private readonly arenas: Arena[] = [];
  private readonly absentRead: GPUBuffer;
  private readonly absentWrite: GPUBuffer;
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private slot = 0;
  private partials: GPUBuffer | undefined; // decode attention's per-partition results
  private readonly retired: GPUBuffer[] = []; // replaced scratch, destroyed after the tape's submit

  /** poison: every new buffer starts as NaN (tests: a value read before it is written shows). */
  constructor(
    private readonly device: GPUDevice,
    private readonly poison = false,
  ) {
    this.absentRead = device.createBuffer({ size: 16, usage: STORAGE });
    this.absentWrite = device.createBuffer({ size: 16, usage: STORAGE });
  }

  /** Times every kernel of the following tapes (slower: one pass per dispatch). */
  setProfiling(on: boolean): void {
    if (on && !this.device.features.has('timestamp-query')) throw new Error('this WebGPU device has no timestamp-query feature');
    this.profiling = on;
    if (on) this.querySet ??= this.device.createQuerySet({ type: 'timestamp', count: PROFILE_QUERIES });
  }

  get bufferCount(): number {
    return this.buffers.size;
  }

  async run(words: Uint32Array, uploads: ArrayBuffer[]): Promise<ArrayBuffer[]> {
    const reads: { staging: GPUBuffer; bytes: number }[] = [];
    const freed: GPUBuffer[] = [];
    const started = performance.now();
    this.dispatches = 0;
    this.slot = 0;
    for (const arena of this.arenas) arena.used = arena.flushedUpTo = 0;
    this.device.pushErrorScope('validation');
    this.device.pushErrorScope('out-of-memory');
    for (const { op, args } of commands(words)) {
      switch (op) {
        case TapeOp.CreateBuffer: {
          const bytes = Math.max(16, Math.ceil(wide(args, 1) / 4) * 4);
          const buffer = this.device.createBuffer({ size: bytes, usage: STORAGE | COPY_SRC | COPY_DST });
          if (this.poison) this.fillWithNaN(buffer, bytes);
          this.buffers.set(args[0], buffer);
          break;
        }
        case TapeOp.FreeBuffer: {
          const buffer = this.buffers.get(args[0]);
          if (buffer) freed.push(buffer);
          this.buffers.delete(args[0]);
          break;
        }
        case TapeOp.Upload: {
          // Host writes are queue operations: what is encoded before them is submitted first.
          this.submit();
          const data = uploads[args[3]];
          this.device.queue.writeBuffer(this.buffer(args[0]), wide(args, 1), data, 0, data.byteLength);
          break;
        }
        case TapeOp.Copy:
          this.endPass();
          this.commandEncoder().copyBufferToBuffer(this.buffer(args[0]), wide(args, 1), this.buffer(args[3]), wide(args, 4), wide(args, 6));
          break;
        case TapeOp.Read: {
          this.endPass();
          const bytes = wide(args, 3);
          const staging = this.device.createBuffer({ size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: MAP_READ | COPY_DST });
          this.commandEncoder().copyBufferToBuffer(this.buffer(args[0]), wide(args, 1), staging, 0, Math.ceil(bytes / 4) * 4);
          reads.push({ staging, bytes });
          break;
        }
        default:
          this.dispatch(op, args);
      }
    }
    const readProfile = this.profiling && this.profiledKeys.length > 0 ? this.resolveProfile() : undefined;
    this.submit();
    const profile = readProfile?.();
    const encoded = performance.now();
    for (const buffer of freed) buffer.destroy();
    for (const buffer of this.retired.splice(0)) buffer.destroy();
    const outOfMemory = await this.device.popErrorScope();
    const invalid = await this.device.popErrorScope();
    const failure = invalid ?? outOfMemory;
    if (failure) {
      for (const read of reads) read.staging.destroy();
      throw new Error(failure.message);
    }
    const results = await Promise.all(
      reads.map(async ({ staging, bytes }) => {
        await staging.mapAsync(MAP_MODE_READ);
        const data = staging.getMappedRange().slice(0, bytes);
        staging.unmap();
        staging.destroy();
        return data;
      }),
    );
    this.lastTape = { dispatches: this.dispatches, encodeMs: encoded - started, totalMs: performance.now() - started };
    if (profile) this.lastProfile = await profile;
    return results;
  }

  destroy(): void {
    for (const buffer of this.buffers.values()) buffer.destroy();
    this.buffers.clear();
    for (const arena of this.arenas) arena.buffer.destroy();
    this.partials?.destroy();
    this.absentRead.destroy();
    this.absentWrite.destroy();
  }

  private fillWithNaN(buffer: GPUBuffer, bytes: number): void {
    const chunk = new Uint32Array(Math.min(bytes, 1 << 22) / 4).fill(0x7fc00000);
    for (let offset = 0; offset < bytes; offset += chunk.byteLength)
      this.device.queue.writeBuffer(buffer, offset, chunk.buffer, 0, Math.min(chunk.byteLength, bytes - offset));
  }

  private buffer(id: number): GPUBuffer {
    const buffer = this.buffers.get(id);
    if (!buffer) throw new Error(`tape: buffer ${id} does not exist`);
    return buffer;
  }

  private commandEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = undefined;
  }

  private submit(): void {
    this.endPass();
    if (!this.encoder) return;
    for (const arena of this.arenas) {
      if (arena.used > arena.flushedUpTo) {
        const from = arena.flushedUpTo * SLOT_BYTES;
        this.device.queue.writeBuffer(arena.buffer, from, arena.words.buffer, from, (arena.used - arena.flushedUpTo) * SLOT_BYTES);
        arena.flushedUpTo = arena.used;
      }
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = undefined;
    this.dispatchesSinceSubmit = 0;
  }

  private pipeline(key: string, source: () => string): Pipeline {
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      const code = source();
      const module = this.device.createShaderModule({ code, label: key });
      const layout = this.device.createBindGroupLayout({ entries: layoutEntries(code), label: key });
      const pipelineLayout = this.device.createPipelineLayout({ bindGroupLayouts: [layout] });
      pipeline = { pipeline: this.device.createComputePipeline({ layout: pipelineLayout, compute: { module, entryPoint: 'main' }, label: key }), layout };
      this.pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  private serial(buffer: GPUBuffer): number {
    let serial = this.serials.get(buffer);
    if (serial === undefined) {
      serial = this.nextSerial++;
      this.serials.set(buffer, serial);
    }
    return serial;
  }

  /** The bind group of these buffers for this pipeline, made once (buffers are never reused under another serial). */
  private bindGroup(key: string, pipeline: Pipeline, uniform: GPUBuffer, buffers: GPUBuffer[]): GPUBindGroup {
    const cacheKey = `${key}:${[uniform, ...buffers].map((buffer) => this.serial(buffer)).join(',')}`;
    let group = this.bindGroups.get(cacheKey);
    if (!group) {
      if (this.bindGroups.size >= MAX_BIND_GROUPS) this.bindGroups.clear();
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniform, offset: 0, size: SLOT_BYTES } }];
      buffers.forEach((resource, i) => entries.push({ binding: i + 1, resource: { buffer: resource } }));
      group = this.device.createBindGroup({ layout: pipeline.layout, entries });
      this.bindGroups.set(cacheKey, group);
    }
    return group;
  }

  /** A uniform slot holding `args`: (arena, byte offset). */
  private parameters(args: Uint32Array): { buffer: GPUBuffer; offset: number } {
    const arenaIndex = Math.floor(this.slot / ARENA_SLOTS);
    const within = this.slot % ARENA_SLOTS;
    this.slot++;
    if (arenaIndex === this.arenas.length) {
      const buffer = this.device.createBuffer({ size: ARENA_SLOTS * SLOT_BYTES, usage: UNIFORM | COPY_DST });
      this.arenas.push({ buffer, words: new Uint32Array((ARENA_SLOTS * SLOT_BYTES) / 4), used: 0, flushedUpTo: 0 });
    }
    const arena = this.arenas[arenaIndex];
    arena.words.set(args, (within * SLOT_BYTES) / 4);
    arena.used = within + 1;
    return { buffer: arena.buffer, offset: within * SLOT_BYTES };
  }

  private resolve(binding: Binding): GPUBuffer {
    if (binding === 'absent-read') return this.absentRead;
    if (binding === 'absent-write') return this.absentWrite;
    return this.buffer(binding);
  }

  private dispatch(op: number, args: Uint32Array): void {
    if (op === TapeOp.Attend && this.decodeAttention(args)) return;
    const kernel = kernels[op];
    if (!kernel) throw new Error(`tape: unknown command ${op}`);
    const key = kernel.key(args);
    this.launch(
      key,
      () => kernel.source(key),
      args,
      kernel.bindings(args).map((binding) => this.resolve(binding)),
      kernel.workgroups(args),
    );
  }

  /**
   * One-token attention split over the positions (kernels/decodeAttention.ts): partitions of
   * 32-512 positions, about 128 of them for a long context, then the combine. False where its
   * limits (head_dim a multiple of 4 up to 256, GQA groups up to 8, group x head_dim up to 1024)
   * send the command to the one-workgroup-per-head kernel.
   */
  private decodeAttention(args: Uint32Array): boolean {
    const [, tokens, heads, kvHeads, headDim] = args;
    if (tokens !== 1 || headDim % 4 !== 0 || headDim > 256 || heads / kvHeads > 8 || (heads / kvHeads) * headDim > 1024) return false;
    const listed = args[12] !== 0;
    const count = listed ? args[14] : args[11];
    const partition = Math.max(32, Math.min(512, Math.ceil(Math.ceil(count / 128) / 32) * 32));
    const partitions = Math.ceil(count / partition);
    const bytes = heads * partitions * (headDim + 2) * 4;
    if (!this.partials || this.partials.size < bytes) {
      if (this.partials) this.retired.push(this.partials);
      this.partials = this.device.createBuffer({ size: Math.max(bytes, 1 << 16), usage: STORAGE });
    }
    const params = new Uint32Array(17);
    params.set(args.subarray(0, 15));
    params[15] = partition;
    params[16] = partitions;
    const owners = listed ? heads : kvHeads;
    const scores = args[10] === 0 ? this.absentWrite : this.buffer(args[10]);
    const lists = listed ? this.buffer(args[12]) : this.absentRead;
    const served = listed ? 1 : heads / kvHeads;
    this.launch(
      `decodeAttentionParts-${served}-${headDim}`,
      () => decodeAttentionPartsWgsl(served, headDim),
      params,
      [this.buffer(args[0]), this.buffer(args[6]), this.buffer(args[7]), this.partials, scores, lists],
      owners * partitions,
    );
    this.launch('decodeAttentionCombine', decodeAttentionCombineWgsl, params, [this.partials, this.buffer(args[8])], heads);
    return true;
  }

  private launch(key: string, source: () => string, args: Uint32Array, buffers: GPUBuffer[], groups: number): void {
    if (groups === 0) return;
    const pipeline = this.pipeline(key, source);
    const { buffer, offset } = this.parameters(args);
    const bindGroup = this.bindGroup(key, pipeline, buffer, buffers);
    if (this.profiling && this.querySet && 2 * this.profiledKeys.length + 2 <= PROFILE_QUERIES) {
      this.endPass();
      const at = 2 * this.profiledKeys.length;
      this.profiledKeys.push(key);
      this.pass = this.commandEncoder().beginComputePass({
        timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: at, endOfPassWriteIndex: at + 1 },
      });
    }
    this.pass ??= this.commandEncoder().beginComputePass();
    this.pass.setPipeline(pipeline.pipeline);
    this.pass.setBindGroup(0, bindGroup, [offset]);
    const x = Math.min(groups, MAX_GRID);
    this.pass.dispatchWorkgroups(x, Math.ceil(groups / x));
    this.dispatches++;
    if (this.profiling) this.endPass();
    if (++this.dispatchesSinceSubmit >= DISPATCHES_PER_SUBMIT) this.submit();
  }

  /** Resolves the tape's timestamps into the encoder; once submitted, the returned function reads the per-kernel sums. */
  private resolveProfile(): () => Promise<KernelProfile> {
    const keys = this.profiledKeys;
    this.profiledKeys = [];
    this.endPass();
    const bytes = keys.length * 16;
    const resolved = this.device.createBuffer({ size: bytes, usage: 0x200 | COPY_SRC }); // QUERY_RESOLVE
    const staging = this.device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
    this.commandEncoder().resolveQuerySet(this.querySet!, 0, 2 * keys.length, resolved, 0);
    this.commandEncoder().copyBufferToBuffer(resolved, 0, staging, 0, bytes);
    return async () => {
      await staging.mapAsync(MAP_MODE_READ);
      const times = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      staging.destroy();
      resolved.destroy();
      const profile: KernelProfile = new Map();
      keys.forEach((key, i) => {
        const entry = profile.get(key) ?? { dispatches: 0, ns: 0 };
        entry.dispatches++;
        entry.ns += Number(times[2 * i + 1] - times[2 * i]);
        profile.set(key, entry);
      });
      return profile;
    };
  }
}
