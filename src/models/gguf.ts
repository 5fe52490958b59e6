// Reads the header of a GGUF file: version, metadata key/values and tensor infos, without
// touching the tensor data. Format (little endian): "GGUF" | u32 version (2 or 3) |
// u64 tensor count | u64 metadata count | metadata entries (string key, u32 value type,
// value) | tensor infos (string name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml
// type, u64 offset into the data) | padding to general.alignment (default 32) | data.
// Strings are a u64 byte length then UTF-8 bytes; arrays a u32 element type, a u64 count,
// then the elements.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export class GgufFormatError extends Error {
  readonly code = 'ERR_TIDAL_MODEL';
}

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  shape: bigint[]; // innermost first, as stored
  type: number; // ggml type id
  offset: bigint; // relative to the data section
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  dataOffset: number; // file offset of the data section
  fileSize: number;
}

// Value type ids of the format.
const enum ValueType {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
}

// Values per block and bytes per block of the ggml tensor types (the ones a model file can hold).
export const GGML_TYPES: ReadonlyMap<number, { name: string; blockElements: number; blockBytes: number }> = new Map([
  [0, { name: 'F32', blockElements: 1, blockBytes: 4 }],
  [1, { name: 'F16', blockElements: 1, blockBytes: 2 }],
  [2, { name: 'Q4_0', blockElements: 32, blockBytes: 18 }],
  [3, { name: 'Q4_1', blockElements: 32, blockBytes: 20 }],
  [6, { name: 'Q5_0', blockElements: 32, blockBytes: 22 }],
  [7, { name: 'Q5_1', blockElements: 32, blockBytes: 24 }],
  [8, { name: 'Q8_0', blockElements: 32, blockBytes: 34 }],
  [10, { name: 'Q2_K', blockElements: 256, blockBytes: 84 }],
  [11, { name: 'Q3_K', blockElements: 256, blockBytes: 110 }],
  [12, { name: 'Q4_K', blockElements: 256, blockBytes: 144 }],
  [13, { name: 'Q5_K', blockElements: 256, blockBytes: 176 }],
  [14, { name: 'Q6_K', blockElements: 256, blockBytes: 210 }],
  [30, { name: 'BF16', blockElements: 1, blockBytes: 2 }],
]);

// Types the engine dequantises (native/src/model/quant.h).
export const ENGINE_GGML_TYPES: ReadonlySet<number> = new Set([0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 30]);

// Limits that keep a corrupt count from allocating the machine away.
const MAX_STRING_BYTES = 64 << 20;
const MAX_ARRAY_ELEMENTS = 1 << 24;
const MAX_METADATA_ENTRIES = 1 << 16;
const MAX_TENSORS = 1 << 20;
const MAX_DIMS = 4;

// A forward reader over a file descriptor that refills a buffer as it goes.
class FileCursor {
  private buffer = Buffer.alloc(0);
  private start = 0; // file offset of buffer[0]
  private at = 0; // index into buffer
  constructor(private readonly fd: number, readonly fileSize: number, private readonly label: string) {}

  get position(): number {
    return this.start + this.at;
  }

  fail(message: string): never {
    throw new GgufFormatError(`${this.label} is not a valid GGUF file: ${message} (at byte ${this.position}).`);
  }

  private need(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    if (this.position + bytes > this.fileSize) this.fail(`it ends early (needs ${bytes} more bytes of ${this.fileSize - this.position} left)`);
    const keep = this.buffer.subarray(this.at);
    const size = Math.max(bytes, 1 << 20);
    const next = Buffer.alloc(Math.min(size, this.fileSize - this.position));
    keep.copy(next);
    let filled = keep.length;
    while (filled < next.length) {
      const read = readSync(this.fd, next, filled, next.length - filled, this.position + filled);
      if (read === 0) this.fail('the file shrank while it was read');
      filled += read;
    }
    this.start = this.position;
    this.buffer = next;
    this.at = 0;
  }

  take(bytes: number): Buffer {
    this.need(bytes);
    const out = this.buffer.subarray(this.at, this.at + bytes);
    this.at += bytes;
    return out;
  }

  u8(): number { return this.take(1).readUInt8(0); }
  u32(): number { return this.take(4).readUInt32LE(0); }
  u64(): bigint { return this.take(8).readBigUInt64LE(0); }

  // A u64 count, refused above `limit` (read as two u32 halves: no BigInt on the hot path).
  count(limit: number, what: string): number {
    this.need(8);
    const low = this.buffer.readUInt32LE(this.at);
    const high = this.buffer.readUInt32LE(this.at + 4);
    this.at += 8;
    const value = high * 2 ** 32 + low;
    if (value > limit) this.fail(`${what} ${high > 0x1fffff ? 'beyond 2^53' : value} is larger than ${limit}`);
    return value;
  }

  string(): string {
    const length = this.count(MAX_STRING_BYTES, 'string length');
    this.need(length);
    const text = this.buffer.toString('utf8', this.at, this.at + length);
    this.at += length;
    return text;
  }
}

function readValue(cursor: FileCursor, type: number, depth: number): GgufValue {
  switch (type) {
    case ValueType.U8: return cursor.take(1).readUInt8(0);
    case ValueType.I8: return cursor.take(1).readInt8(0);
    case ValueType.U16: return cursor.take(2).readUInt16LE(0);
    case ValueType.I16: return cursor.take(2).readInt16LE(0);
    case ValueType.U32: return cursor.take(4).readUInt32LE(0);
    case ValueType.I32: return cursor.take(4).readInt32LE(0);
    case ValueType.F32: return cursor.take(4).readFloatLE(0);
    case ValueType.F64: return cursor.take(8).readDoubleLE(0);
    case ValueType.U64: return cursor.take(8).readBigUInt64LE(0);
    case ValueType.I64: return cursor.take(8).readBigInt64LE(0);
    case ValueType.Bool: {
      const b = cursor.u8();
      if (b > 1) cursor.fail(`a bool holds ${b}`);
      return b === 1;
    }
    case ValueType.String: return cursor.string();
    case ValueType.Array: {
      if (depth > 0) cursor.fail('arrays of arrays are not supported');
      const elementType = cursor.u32();
      const count = cursor.count(MAX_ARRAY_ELEMENTS, 'array length');
      const out: GgufValue[] = new Array(count);
      if (elementType === ValueType.String) {
        for (let i = 0; i < count; i++) out[i] = cursor.string(); // token lists: the bulk of a header
      } else {
        for (let i = 0; i < count; i++) out[i] = readValue(cursor, elementType, depth + 1);
      }
      return out;
    }
    default:
      return cursor.fail(`unknown value type ${type}`);
  }
}

// Bytes of a tensor of the given type and shape; undefined for a type the table lacks.
export function ggmlTensorBytes(type: number, shape: readonly bigint[]): bigint | undefined {
  const info = GGML_TYPES.get(type);
  if (!info) return undefined;
  const elements = shape.reduce((a, b) => a * b, 1n);
  return (elements / BigInt(info.blockElements)) * BigInt(info.blockBytes);
}

// Parses and checks the header: magic, version, counts, unique keys and names, tensor
// shapes that fit the type's blocks, and tensor data inside the file.
export function readGgufHeader(filePath: string): GgufHeader {
  const fd = (() => {
    try {
      return openSync(filePath, 'r');
    } catch (error) {
      throw new GgufFormatError(`${filePath} could not be opened: ${(error as Error).message}`);
    }
  })();
  try {
    const fileSize = fstatSync(fd).size;
    const cursor = new FileCursor(fd, fileSize, filePath);
    if (fileSize < 24 || cursor.take(4).toString('latin1') !== 'GGUF') cursor.fail('it does not start with "GGUF"');
    const version = cursor.u32();
    if (version !== 2 && version !== 3) cursor.fail(`version ${version} is not supported (2 or 3)`);
    const tensorCount = cursor.count(MAX_TENSORS, 'tensor count');
    const metadataCount = cursor.count(MAX_METADATA_ENTRIES, 'metadata count');
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < metadataCount; i++) {
      const key = cursor.string();
      const value = readValue(cursor, cursor.u32(), 0);
      if (metadata.has(key)) cursor.fail(`metadata key '${key}' appears twice`);
      metadata.set(key, value);
    }
    const alignmentValue = metadata.get('general.alignment') ?? 32;
    const alignment = Number(alignmentValue);
    if (typeof alignmentValue !== 'number' || !Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
      cursor.fail(`general.alignment ${String(alignmentValue)} is not a power of two`);
    }
    const tensors: GgufTensorInfo[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const name = cursor.string();
      const dims = cursor.u32();
      if (dims === 0 || dims > MAX_DIMS) cursor.fail(`tensor '${name}' has ${dims} dimensions`);
      const shape: bigint[] = [];
      for (let d = 0; d < dims; d++) shape.push(cursor.u64());
      const type = cursor.u32();
      const offset = cursor.u64();
      if (names.has(name)) cursor.fail(`tensor '${name}' appears twice`);
      names.add(name);
      tensors.push({ name, shape, type, offset });
    }
    const dataOffset = Math.ceil(cursor.position / alignment) * alignment;
    for (const tensor of tensors) {
      const info = GGML_TYPES.get(tensor.type);
      if (!info) continue; // unknown types are reported by validation, not as a broken file
      if (tensor.shape[0] % BigInt(info.blockElements) !== 0n) {
        cursor.fail(`tensor '${tensor.name}' rows of ${tensor.shape[0]} do not split into ${info.name} blocks of ${info.blockElements}`);
      }
      if (tensor.offset % BigInt(alignment) !== 0n) cursor.fail(`tensor '${tensor.name}' offset ${tensor.offset} is not aligned to ${alignment}`);
      const end = BigInt(dataOffset) + tensor.offset + (ggmlTensorBytes(tensor.type, tensor.shape) ?? 0n);
      if (end > BigInt(fileSize)) cursor.fail(`tensor '${tensor.name}' data ends at byte ${end}, past the end of the file (${fileSize} bytes)`);
    }
    return { version, metadata, tensors, alignment, dataOffset, fileSize };
  } finally {
    closeSync(fd);
  }
}

// Typed reads of metadata values; undefined when absent, an error when of the wrong type.
export function metadataString(header: GgufHeader, key: string): string | undefined {
  const value = header.metadata.get(key);
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new GgufFormatError(`GGUF metadata '${key}' should be a string.`);
  return value;
}

export function metadataNumber(header: GgufHeader, key: string): number | undefined {
  const value = header.metadata.get(key);
  if (value === undefined) return undefined;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'number') throw new GgufFormatError(`GGUF metadata '${key}' should be a number.`);
  return value;
}

export function metadataBool(header: GgufHeader, key: string): boolean | undefined {
  const value = header.metadata.get(key);
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new GgufFormatError(`GGUF metadata '${key}' should be a bool.`);
  return value;
}

export function metadataArray(header: GgufHeader, key: string): GgufValue[] | undefined {
  const value = header.metadata.get(key);
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw new GgufFormatError(`GGUF metadata '${key}' should be an array.`);
  return value;
}
