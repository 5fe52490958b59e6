// The repository's KV cache on disk, so that reopening a workspace with the same model does
// not recompute it. One folder per (workspace, model) under the store's root, holding the
// engine's sequence file (tokens + KV, written by saveSequence) and a small JSON record of the
// blocks it holds. The store keeps its total size under a bound by dropping the least recently
// used entries. Nothing is trusted on the way back: the engine checks the file against the
// model, and the prefix cache compares tokens before it reuses any of them.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

import type { PromptBlock } from './prefixCache';

const RECORD_VERSION = 1;
const KV_FILE = 'repository.kv';
const RECORD_FILE = 'repository.json';

export interface StoredRecord {
  version: number;
  root: string;
  modelKey: string;
  tokens: number;
  blocks: PromptBlock[];
  bytes: number;
  savedAt: string;
}

export interface StoredEntry {
  kvPath: string;
  record: StoredRecord;
}

export class KvStore {
  constructor(
    private readonly rootDir: string,
    private readonly maxBytes: number,
  ) {}

  static entryKey(workspaceRoot: string, modelKey: string): string {
    return createHash('sha1').update(`${workspaceRoot}\0${modelKey}`).digest('hex').slice(0, 20);
  }

  private entryDir(key: string): string {
    return path.join(this.rootDir, key);
  }

  /** The stored entry for `key`, or undefined when there is none or its record is unusable. */
  async find(key: string, workspaceRoot: string, modelKey: string): Promise<StoredEntry | undefined> {
    const dir = this.entryDir(key);
    let record: StoredRecord;
    try {
      record = JSON.parse(await fs.readFile(path.join(dir, RECORD_FILE), 'utf8')) as StoredRecord;
    } catch {
      return undefined;
    }
    const valid =
      record.version === RECORD_VERSION &&
      record.root === workspaceRoot &&
      record.modelKey === modelKey &&
      Number.isInteger(record.tokens) &&
      Array.isArray(record.blocks) &&
      record.blocks.every(
        (block) =>
          typeof block.key === 'string' &&
          Number.isInteger(block.start) &&
          Number.isInteger(block.length) &&
          block.start >= 0 &&
          block.length > 0 &&
          block.start + block.length <= record.tokens,
      );
    if (!valid) {
      await this.remove(key);
      return undefined;
    }
    const kvPath = path.join(dir, KV_FILE);
    try {
      await fs.access(kvPath);
    } catch {
      await this.remove(key);
      return undefined;
    }
    // Touch the record: it is the most recently used entry now.
    const now = new Date();
    await fs.utimes(path.join(dir, RECORD_FILE), now, now).catch(() => undefined);
    return { kvPath, record };
  }

  /**
   * Writes an entry: `write` saves the KV to the path it is given and returns its bytes. The
   * record is written last, so a crash in between leaves no record and the entry is ignored.
   * Returns false (and keeps nothing) when the entry alone would exceed the bound.
   */
  async save(
    key: string,
    record: Omit<StoredRecord, 'version' | 'bytes' | 'savedAt'>,
    write: (kvPath: string) => Promise<number>,
  ): Promise<{ saved: boolean; bytes: number }> {
    const dir = this.entryDir(key);
    await fs.mkdir(dir, { recursive: true });
    // The engine writes the KV under a temporary name and renames it when complete: a save that
    // fails or is cancelled leaves the previous file, whose record is put back.
    const recordPath = path.join(dir, RECORD_FILE);
    const previous = await fs.readFile(recordPath, 'utf8').catch(() => undefined);
    await fs.rm(recordPath, { force: true });
    const kvPath = path.join(dir, KV_FILE);
    let bytes: number;
    try {
      bytes = await write(kvPath);
    } catch (error) {
      if (previous !== undefined) await fs.writeFile(recordPath, previous).catch(() => undefined);
      throw error;
    }
    if (bytes > this.maxBytes) {
      await this.remove(key);
      return { saved: false, bytes };
    }
    const full: StoredRecord = { ...record, version: RECORD_VERSION, bytes, savedAt: new Date().toISOString() };
    await fs.writeFile(path.join(dir, RECORD_FILE), JSON.stringify(full));
    await this.evict(key);
    return { saved: true, bytes };
  }

  async remove(key: string): Promise<void> {
    await fs.rm(this.entryDir(key), { recursive: true, force: true }).catch(() => undefined);
  }

  /** Drops least recently used entries (never `keep`) until the store is under its bound. */
  async evict(keep?: string): Promise<void> {
    let names: string[];
    try {
      names = await fs.readdir(this.rootDir);
    } catch {
      return;
    }
    const entries: { key: string; bytes: number; used: number }[] = [];
    for (const name of names) {
      const dir = this.entryDir(name);
      let bytes = 0;
      let used = 0;
      try {
        for (const file of await fs.readdir(dir)) {
          const stat = await fs.stat(path.join(dir, file));
          bytes += stat.size;
          if (file === RECORD_FILE) used = stat.mtimeMs;
        }
      } catch {
        continue;
      }
      entries.push({ key: name, bytes, used });
    }
    let total = entries.reduce((sum, entry) => sum + entry.bytes, 0);
    entries.sort((a, b) => a.used - b.used);
    for (const entry of entries) {
      if (total <= this.maxBytes) break;
      if (entry.key === keep) continue;
      await this.remove(entry.key);
      total -= entry.bytes;
    }
  }
}
