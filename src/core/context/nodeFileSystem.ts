// ContextFileSystem over Node's fs, rooted at one folder: used by the engine host, the CLI and
// the tests. Symbolic links are reported as 'other' so a link cycle can never be followed.
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';

import type { ContextFileSystem, DirectoryEntry, FileStat } from './types';

export class NodeFileSystem implements ContextFileSystem {
  constructor(private readonly root: string) {}

  private resolve(relativePath: string): string {
    return relativePath === '' ? this.root : nodePath.join(this.root, ...relativePath.split('/'));
  }

  async readDirectory(relativeDir: string): Promise<DirectoryEntry[]> {
    const entries = await fs.readdir(this.resolve(relativeDir), { withFileTypes: true });
    return entries.map((entry) => ({
      name: entry.name,
      kind: entry.isFile() ? 'file' : entry.isDirectory() ? 'directory' : 'other',
    }));
  }

  async stat(relativePath: string): Promise<FileStat | undefined> {
    try {
      const stat = await fs.lstat(this.resolve(relativePath));
      const kind = stat.isFile() ? 'file' : stat.isDirectory() ? 'directory' : 'other';
      return { kind, size: stat.size, mtimeMs: stat.mtimeMs };
    } catch {
      return undefined;
    }
  }

  readFile(relativePath: string): Promise<Uint8Array> {
    return fs.readFile(this.resolve(relativePath));
  }
}
