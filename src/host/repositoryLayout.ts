// The repository part of every prompt, owned by the engine host: which files, in which order,
// and their tokens, kept per file so a change re-tokenizes one file.
//
// The order does not depend on which file is active or open: files are laid out least
// recently modified first (modification time, then path), so the files that change most
// often sit at the end. A save moves that file to the end; every file before its old place
// keeps its exact KV, and the files after it can keep theirs moved down (see prefixCache.ts).
// The order is a function of the disk alone, so it is the same after a restart and a saved
// KV cache still lines up with it.
//
// Within the token budget the newest files win: files are taken newest first until the next
// one does not fit; older files are left out (and not tokenized).
import { createHash } from 'node:crypto';

import { NodeFileSystem, RepositoryContext } from '../core/context';
import { FoldersFileSystem } from '../core/context/foldersFileSystem';
import type { ContextFileSystem } from '../core/context/types';
import { encodePromptParts, repositoryFileParts, type FimFormat } from '../core/prompt/fimPrompt';
import type { PromptBlock, PromptLayout } from './prefixCache';

export interface RepositoryLayoutOptions {
  root: string;
  /** Several workspace folders (the first at `root`): paths are '<name>/<path>'. */
  folders?: readonly { name: string; path: string }[];
  include: readonly string[];
  exclude: readonly string[];
  repoName?: string;
  /** Tokens the repository part may take, header included. */
  maxTokens: number;
  /** For tests: another file system than the disk under `root`. */
  fileSystem?: ContextFileSystem;
}

export interface RepositoryTokenizer {
  format: Pick<FimFormat, 'fileSeparator' | 'repoName'> | undefined;
  encode(text: string): number[];
  tokenId(token: string): number | undefined;
  /** Put in front of the repository part (the model's BOS), if any. */
  bos: number | undefined;
}

export interface LaidOutRepository extends PromptLayout {
  /** Tokens before the first file: BOS and the repository name. */
  headerTokens: number;
  files: number;
  droppedFiles: number;
  skippedFiles: number;
}

interface FileTokens {
  content: string;
  tokens: number[];
  key: string;
}

export class RepositoryLayout {
  readonly context: RepositoryContext;
  private readonly tokensByPath = new Map<string, FileTokens>();
  /** When a file's text came with an event instead of from the disk: the time it arrived. */
  private readonly eventTimes = new Map<string, number>();
  private laidOut: LaidOutRepository | undefined;
  private generation = 0;

  constructor(
    private readonly options: RepositoryLayoutOptions,
    private readonly tokenizer: RepositoryTokenizer,
  ) {
    const multiRoot = options.folders !== undefined && options.folders.length > 1;
    this.context = new RepositoryContext({
      fileSystem:
        options.fileSystem ??
        (multiRoot
          ? new FoldersFileSystem(options.folders!.map((folder) => ({ name: folder.name, fileSystem: new NodeFileSystem(folder.path) })))
          : new NodeFileSystem(options.root)),
      folderLevel: multiRoot ? 1 : 0,
      // Budgeting happens here, with the real tokens; RepositoryContext's own count is unused.
      countTokens: () => 0,
      include: options.include,
      exclude: options.exclude,
    });
  }

  /** Bumped whenever the files change: a layout computed before is stale. */
  get version(): number {
    return this.generation;
  }

  async scan(): Promise<void> {
    await this.context.scan();
    this.changed();
  }

  async apply(events: readonly { path: string; kind: 'created' | 'changed' | 'deleted'; text?: string }[]): Promise<void> {
    for (const event of events) {
      if (event.text !== undefined) this.eventTimes.set(event.path, Date.now());
      else this.eventTimes.delete(event.path);
      await this.context.applyChange(event);
    }
    this.changed();
  }

  /** The repository part: header, then one block per file, oldest first. */
  layout(): LaidOutRepository {
    if (this.laidOut) return this.laidOut;
    const header = this.headerTokens();
    const files = this.context
      .files()
      .map((file) => ({ ...file, order: file.mtimeMs >= 0 ? file.mtimeMs : (this.eventTimes.get(file.path) ?? Date.now()) }))
      .sort((a, b) => a.order - b.order || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    // Newest first into the budget; stop at the first that does not fit.
    // (A header larger than the budget leaves no room: the first file does not fit.)
    let room = this.options.maxTokens - header.length;
    const kept: FileTokens[] = [];
    for (let i = files.length - 1; i >= 0; i--) {
      const entry = this.fileTokens(files[i].path, files[i].content);
      if (entry.tokens.length > room) break;
      room -= entry.tokens.length;
      kept.push(entry);
    }
    kept.reverse();
    const blocks: PromptBlock[] = [];
    let length = header.length;
    for (const entry of kept) {
      blocks.push({ key: entry.key, start: length, length: entry.tokens.length });
      length += entry.tokens.length;
    }
    const tokens = new Int32Array(kept.length > 0 ? length : 0);
    if (kept.length > 0) {
      tokens.set(header, 0);
      kept.forEach((entry, i) => tokens.set(entry.tokens, blocks[i].start));
    }
    // Forget the tokens of files that left the context.
    const present = new Set(files.map((file) => file.path));
    for (const path of [...this.tokensByPath.keys()]) if (!present.has(path)) this.tokensByPath.delete(path);
    this.laidOut = {
      tokens,
      blocks,
      headerTokens: kept.length > 0 ? header.length : 0,
      files: kept.length,
      droppedFiles: files.length - kept.length,
      skippedFiles: this.context.skippedCount,
    };
    return this.laidOut;
  }

  private changed(): void {
    this.laidOut = undefined;
    this.generation++;
  }

  private headerTokens(): number[] {
    const parts = repositoryFileParts(this.tokenizer.format, [], this.options.repoName, true);
    const tokens = this.tokenizer.bos !== undefined ? [this.tokenizer.bos] : [];
    tokens.push(
      ...encodePromptParts(
        parts,
        (text) => this.tokenizer.encode(text),
        (token) => this.tokenizer.tokenId(token),
      ),
    );
    return tokens;
  }

  private fileTokens(path: string, content: string): FileTokens {
    const known = this.tokensByPath.get(path);
    if (known && known.content === content) return known;
    const parts = repositoryFileParts(this.tokenizer.format, [{ path, content }], undefined, false);
    const tokens = encodePromptParts(
      parts,
      (text) => this.tokenizer.encode(text),
      (token) => this.tokenizer.tokenId(token),
    );
    const digest = createHash('sha1').update(content).digest('hex').slice(0, 16);
    const entry = { content, tokens, key: `${path}#${digest}` };
    this.tokensByPath.set(path, entry);
    return entry;
  }
}
