// The folders of a multi-root workspace as one file system: its top level lists the folders
// by name, and '<name>/<path>' is <path> inside that folder. The repository context then walks
// every folder, and each file's path in the prompt says which folder it is in. A RepositoryContext
// over it takes `folderLevel: 1` (globs apply inside each folder, as VS Code's do).
import type { ContextFileSystem, DirectoryEntry, FileStat } from './types';

export interface NamedFileSystem {
  name: string;
  fileSystem: ContextFileSystem;
}

export class FoldersFileSystem implements ContextFileSystem {
  private readonly byName = new Map<string, ContextFileSystem>();

  constructor(folders: readonly NamedFileSystem[]) {
    for (const folder of folders) {
      if (folder.name === '' || folder.name.includes('/') || this.byName.has(folder.name)) {
        throw new Error(`workspace folder names must be unique and free of '/': ${JSON.stringify(folder.name)}`);
      }
      this.byName.set(folder.name, folder.fileSystem);
    }
  }

  /** The folder's file system and the path inside it, or undefined for a path outside every folder. */
  private find(relativePath: string): { fileSystem: ContextFileSystem; inner: string } | undefined {
    const slash = relativePath.indexOf('/');
    const fileSystem = this.byName.get(slash < 0 ? relativePath : relativePath.slice(0, slash));
    return fileSystem && { fileSystem, inner: slash < 0 ? '' : relativePath.slice(slash + 1) };
  }

  /** As find, but a path outside every folder throws. */
  private locate(relativePath: string): { fileSystem: ContextFileSystem; inner: string } {
    const found = this.find(relativePath);
    if (!found) throw new Error(`${relativePath} is in no workspace folder`);
    return found;
  }

  async readDirectory(relativeDir: string): Promise<DirectoryEntry[]> {
    if (relativeDir === '') return [...this.byName.keys()].map((name) => ({ name, kind: 'directory' }));
    const { fileSystem, inner } = this.locate(relativeDir);
    return fileSystem.readDirectory(inner);
  }

  async stat(relativePath: string): Promise<FileStat | undefined> {
    if (relativePath === '') return { kind: 'directory', size: 0, mtimeMs: 0 };
    const found = this.find(relativePath);
    return found?.fileSystem.stat(found.inner);
  }

  readFile(relativePath: string): Promise<Uint8Array> {
    const { fileSystem, inner } = this.locate(relativePath);
    return fileSystem.readFile(inner);
  }
}
