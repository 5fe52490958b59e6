// Rewrites a sequence file (native/src/engine/kv_file.h) saved by one backend as a file of the
// webgpu backend: the same tokens, logits and K/V values, the K/V widened to f32 (bf16 and f32
// sources). The benchmark fills a 32K-token WebGPU cache this way from a CUDA prefill, because
// the WebGPU backend's prefill kernels are not made for long prompts yet.
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';

const ALIGNMENT = 4096;

function fnv1a(bytes: Uint8Array, hash = 14695981039346656037n): bigint {
  for (const byte of bytes) hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * 1099511628211n);
  return hash;
}

class Reader {
  offset = 0;
  constructor(private readonly bytes: Buffer) {}
  u32(): number {
    const value = this.bytes.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }
  i64(): bigint {
    const value = this.bytes.readBigInt64LE(this.offset);
    this.offset += 8;
    return value;
  }
  text(): string {
    const length = this.u32();
    const value = this.bytes.toString('latin1', this.offset, this.offset + length);
    this.offset += length;
    return value;
  }
}

function encodeText(text: string): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32LE(text.length);
  return Buffer.concat([length, Buffer.from(text, 'latin1')]);
}

/** Returns the K/V bytes written. */
export function retagKvFileForWebGpu(source: string, target: string): number {
  const input = openSync(source, 'r');
  const output = openSync(target, 'w');
  try {
    const prologue = Buffer.alloc(16);
    readSync(input, prologue, 0, 16, 0);
    if (prologue.toString('latin1', 0, 8) !== 'TIDALKV1') throw new Error(`${source} is not a Tidal KV file`);
    const headerBytes = prologue.readUInt32LE(12);
    const header = Buffer.alloc(headerBytes);
    readSync(input, header, 0, headerBytes, 16);
    const reader = new Reader(header);
    reader.text();  // backend
    const dtype = reader.text();
    if (dtype !== 'bf16' && dtype !== 'f32') throw new Error(`${source}: K/V of type ${dtype} cannot be widened`);
    const rest = header.subarray(reader.offset);
    const [layers, kvHeads, headDim] = [reader.i64(), reader.i64(), reader.i64()];
    const fields = reader.u32();
    for (let i = 0; i < 2 * fields; i++) reader.text();
    const [tokenCount, cachedCount, logitsCount] = [reader.i64(), reader.i64(), reader.i64()];
    const elements = Number(layers * 2n * kvHeads * cachedCount * headDim);
    const element = dtype === 'bf16' ? 2 : 4;
    const frontBytes = (from: number) => from + 4 * Number(tokenCount + logitsCount);
    const oldKvOffset = Math.ceil(frontBytes(16 + headerBytes) / ALIGNMENT) * ALIGNMENT;
    if (statSync(source).size !== oldKvOffset + elements * element + 24) throw new Error(`${source}: unexpected size`);

    const newHeader = Buffer.concat([encodeText('webgpu'), encodeText('f32'), rest]);
    const newFront = Buffer.alloc(Math.ceil(frontBytes(16 + newHeader.length) / ALIGNMENT) * ALIGNMENT);
    prologue.copy(newFront, 0, 0, 12);
    newFront.writeUInt32LE(newHeader.length, 12);
    newHeader.copy(newFront, 16);
    readSync(input, newFront, 16 + newHeader.length, 4 * Number(tokenCount + logitsCount), 16 + headerBytes);
    writeSync(output, newFront);

    const chunk = 1 << 24;  // elements per piece
    const from = Buffer.alloc(chunk * element);
    const to = Buffer.alloc(chunk * 4);
    const halves = new Uint16Array(from.buffer, from.byteOffset, chunk * (element / 2));
    const words = new Uint32Array(to.buffer, to.byteOffset, chunk);
    for (let done = 0; done < elements; done += chunk) {
      const count = Math.min(chunk, elements - done);
      readSync(input, from, 0, count * element, oldKvOffset + done * element);
      if (element === 4) {
        from.copy(to, 0, 0, count * 4);
      } else {
        for (let i = 0; i < count; i++) words[i] = halves[i] << 16;  // bf16 is the high half of an f32
      }
      writeSync(output, to, 0, count * 4);
    }
    const end = Buffer.alloc(24);
    end.write('TIDALEND', 0, 'latin1');
    end.writeBigUInt64LE(fnv1a(newFront), 8);
    end.writeBigUInt64LE(BigInt(elements * 4), 16);
    writeSync(output, end);
    return elements * 4;
  } finally {
    closeSync(input);
    closeSync(output);
  }
}
