// The whole-repository context: which workspace files go into the prompt, in which order, and
// how they are kept up to date cheaply. Every file's rendered segment and token count is cached
// and recomputed only when its contents change, and the order (see relevanceOrder.ts) keeps
// the rendered prefix byte-identical between requests so the engine can reuse its KV cache.
import { renderWithinBudget, formatSegment, type Segment } from './budgetFit';
import { classifyBytes, classifyText, type ContentVerdict } from './fileContent';
import { GitignoreRules, ancestorDirectories } from './gitignoreRules';
import { importedFiles } from './importedFiles';
import { PathFilter } from './pathFilter';
import { orderByRelevance, type RankedPath, type RelevanceState } from './relevanceOrder';
import type {
  ContextFileSystem,
  CountTokens,
  FileChange,
  FileStat,
  RenderedContext,
  RenderedFiles,
  RepositoryContextCounters,
  RepositoryContextOptions,
} from './types';

export const DEFAULT_FILE_SEPARATOR = '<|file_sep|>';
export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024;
export const DEFAULT_INCLUDE: readonly string[] = ['**/*'];

/** Why a file seen on disk is not in the context; kept so an unchanged file is not re-read. */
export type SkipReason = 'too-large' | 'binary' | 'generated' | 'unreadable';

/** A segment whose token count is taken when a render first needs it. */
interface LazySegment {
  text: string;
  tokens: number | undefined;
}

interface FileEntry {
  size: number;
  /** -1 when the contents came from an editor buffer rather than the disk. */
  mtimeMs: number;
  /** The rendered segment; the contents are not kept a second time. */
  segment: LazySegment;
  /** Length of the separator and path line in front of the contents. */
  headerLength: number;
}

interface SkippedEntry {
  size: number;
  mtimeMs: number;
  reason: SkipReason;
}

/** Normalises a workspace-relative path: '/' separators, no './' or leading '/'. */
export function normalizePath(path: string): string {
  return path
    .replace(/\\/g, '/')
    .replace(/^(\.\/)+/, '')
    .replace(/^\/+/, '')
    .replace(/\/+$/, '');
}

/** Bytes of `text` in UTF-8, without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

export class RepositoryContext {
  private readonly fileSystem: ContextFileSystem;
  private readonly countTokens: CountTokens;
  private readonly separator: string;
  private readonly maxFileBytes: number;
  private readonly maxRecentFiles: number;
  private readonly readConcurrency: number;
  private readonly filter: PathFilter;
  private readonly gitignore = new GitignoreRules();

  private readonly entries = new Map<string, FileEntry>();
  private readonly skipped = new Map<string, SkippedEntry>();
  private activePath: string | undefined;
  private activeImports: ReadonlySet<string> | undefined;
  private openPaths: ReadonlySet<string> = new Set();
  private readonly recentEdits = new Map<string, number>();
  private editSequence = 0;
  private order: RankedPath[] | undefined;
  /** Serialises scans and changes so events apply in the order they arrived. */
  private queue: Promise<unknown> = Promise.resolve();

  readonly counters: RepositoryContextCounters = { filesRead: 0, filesTokenized: 0 };

  constructor(options: RepositoryContextOptions) {
    this.fileSystem = options.fileSystem;
    this.countTokens = options.countTokens;
    this.separator = options.fileSeparator ?? DEFAULT_FILE_SEPARATOR;
    this.maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.maxRecentFiles = options.maxRecentFiles ?? 32;
    this.readConcurrency = Math.max(1, options.readConcurrency ?? 32);
    this.filter = new PathFilter(options.include ?? DEFAULT_INCLUDE, options.exclude ?? [], options.folderLevel ?? 0);
  }

  /** Paths currently in the context (before any budget), sorted by path. */
  get paths(): string[] {
    return [...this.entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /**
   * Every file in the context with its contents and modification time (-1: the contents came
   * from an editor buffer or an event, not from the disk), in no particular order.
   */
  files(): { path: string; content: string; mtimeMs: number }[] {
    return [...this.entries].map(([path, entry]) => ({ path, content: entry.segment.text.slice(entry.headerLength), mtimeMs: entry.mtimeMs }));
  }

  /** How many files seen on disk were left out (binary, too large, generated, unreadable). */
  get skippedCount(): number {
    return this.skipped.size;
  }

  /** Why a path seen by the last scan was left out, if it was. */
  skipReason(path: string): SkipReason | undefined {
    return this.skipped.get(normalizePath(path))?.reason;
  }

  /**
   * Walks the whole workspace. Files whose size and modification time did not change since
   * the last scan are neither read nor re-tokenized.
   */
  scan(): Promise<void> {
    return this.enqueue(() => this.walkEverything());
  }

  /** Applies a file-system or editor event. */
  applyChange(change: FileChange): Promise<void> {
    return this.enqueue(async () => {
      const path = normalizePath(change.path);
      if (path === '' || path === '..' || path.startsWith('../')) return;
      const name = path.slice(path.lastIndexOf('/') + 1);
      if (name === '.gitignore' && change.text === undefined && this.ancestorsVisible(path)) {
        // The rules changed: walk again; the per-file cache keeps this cheap.
        await this.walkEverything();
        return;
      }
      if (change.kind === 'deleted') {
        this.forgetTree(path);
        return;
      }
      if (change.text !== undefined) {
        if (this.isVisibleFile(path)) this.acceptText(path, change.text);
        else this.forgetTree(path);
        return;
      }
      const stat = await this.fileSystem.stat(path);
      if (stat?.kind === 'directory' && this.isVisibleDirectory(path)) {
        await this.walkDirectory(path, new Set());
      } else if (stat?.kind === 'file' && this.isVisibleFile(path)) {
        await this.loadFile(path, stat, true);
      } else {
        this.forgetTree(path);
      }
    });
  }

  /**
   * Sets the file being edited. Its imports are looked up once, at the first render after this
   * call, so typing an import never reorders the context.
   */
  setActiveFile(path: string | undefined): void {
    const normalized = path === undefined ? undefined : normalizePath(path);
    if (normalized === this.activePath) return;
    this.activePath = normalized;
    this.activeImports = undefined;
    this.order = undefined;
  }

  /** Replaces the set of files open in editors. */
  markOpen(paths: Iterable<string>): void {
    const next = new Set([...paths].map(normalizePath));
    if (next.size === this.openPaths.size && [...next].every((p) => this.openPaths.has(p))) return;
    this.openPaths = next;
    this.order = undefined;
  }

  /** Waits for queued scans and changes. */
  idle(): Promise<void> {
    return this.queue.then(() => undefined);
  }

  /** Renders the files that fit `budgetTokens`, least relevant first. */
  render(budgetTokens: number): RenderedContext {
    return renderWithinBudget(this.currentOrder(), this.segmentOf, budgetTokens);
  }

  /**
   * The files that fit `budgetTokens` with their contents, least relevant first. `excludePath`
   * (the file being completed, whose text goes into the prompt around the cursor instead) is
   * left out before the budget is applied, so it takes no room from the other files.
   */
  renderFiles(budgetTokens: number, excludePath?: string): RenderedFiles {
    const excluded = excludePath === undefined ? undefined : normalizePath(excludePath);
    const order = this.currentOrder().filter((ranked) => ranked.path !== excluded);
    const rendered = renderWithinBudget(order, this.segmentOf, budgetTokens);
    const files = rendered.files.map(({ path }) => {
      const entry = this.entries.get(path)!;
      return { path, content: entry.segment.text.slice(entry.headerLength) };
    });
    return { files, tokens: rendered.totalTokens, droppedFiles: rendered.droppedFiles };
  }

  /** A file's segment, its tokens counted the first time they are asked for. */
  private readonly segmentOf = (path: string): Segment => {
    const segment = this.entries.get(path)!.segment;
    if (segment.tokens === undefined) {
      this.counters.filesTokenized++;
      segment.tokens = this.countTokens(segment.text);
    }
    return segment as Segment;
  };

  // ---- ordering ----

  private currentOrder(): RankedPath[] {
    if (this.activePath !== undefined && this.activeImports === undefined) {
      const active = this.entries.get(this.activePath);
      if (active) {
        const text = active.segment.text.slice(active.headerLength);
        this.activeImports = new Set(importedFiles(this.activePath, text, (p) => this.entries.has(p)));
        this.order = undefined;
      }
    }
    if (!this.order) {
      const state: RelevanceState = {
        activePath: this.activePath,
        activeImports: this.activeImports ?? new Set(),
        openPaths: this.openPaths,
        recentEdits: this.recentEdits,
      };
      this.order = orderByRelevance(this.entries.keys(), state);
    }
    return this.order;
  }

  private noteEdit(path: string): void {
    if (this.recentEdits.has(path)) {
      // Already recent: keep its place, so editing it again never reorders anything.
      return;
    }
    this.recentEdits.set(path, ++this.editSequence);
    if (this.recentEdits.size > this.maxRecentFiles) {
      let oldest: string | undefined;
      let oldestSequence = Infinity;
      for (const [p, sequence] of this.recentEdits) {
        if (p !== this.activePath && sequence < oldestSequence) {
          oldest = p;
          oldestSequence = sequence;
        }
      }
      if (oldest !== undefined) this.recentEdits.delete(oldest);
    }
    this.order = undefined;
  }

  // ---- reading ----

  private enqueue(operation: () => Promise<void>): Promise<void> {
    const next = this.queue.then(operation, operation);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Whether no folder on the way to `path` was skipped by the folder rules or a .gitignore. */
  private ancestorsVisible(path: string): boolean {
    if (this.filter.skipsAncestorOf(path)) return false;
    return !ancestorDirectories(path)
      .slice(1)
      .some((dir) => this.gitignore.isIgnored(dir, true));
  }

  private isVisibleFile(path: string): boolean {
    return this.ancestorsVisible(path) && this.filter.acceptsFile(path) && !this.gitignore.isIgnored(path, false);
  }

  private isVisibleDirectory(path: string): boolean {
    return this.ancestorsVisible(path) && !this.filter.skipsDirectory(path) && !this.gitignore.isIgnored(path, true);
  }

  private async walkEverything(): Promise<void> {
    this.gitignore.clear();
    const seen = new Set<string>();
    await this.walkDirectory('', seen);
    for (const path of [...this.entries.keys()]) if (!seen.has(path)) this.forget(path);
    for (const path of [...this.skipped.keys()]) if (!seen.has(path)) this.skipped.delete(path);
  }

  private async walkDirectory(dir: string, seen: Set<string>): Promise<void> {
    let listing;
    try {
      listing = await this.fileSystem.readDirectory(dir);
    } catch {
      return;
    }
    const prefix = dir === '' ? '' : `${dir}/`;
    if (listing.some((entry) => entry.name === '.gitignore' && entry.kind === 'file')) {
      try {
        const bytes = await this.fileSystem.readFile(`${prefix}.gitignore`);
        this.counters.filesRead++;
        this.gitignore.setRules(dir, new TextDecoder().decode(bytes));
      } catch {
        // An unreadable .gitignore is treated as absent.
      }
    }
    const files: string[] = [];
    const directories: string[] = [];
    for (const entry of listing) {
      const path = prefix + entry.name;
      if (entry.kind === 'directory') {
        if (!this.filter.skipsDirectory(path) && !this.gitignore.isIgnored(path, true)) directories.push(path);
      } else if (entry.kind === 'file') {
        if (this.filter.acceptsFile(path) && !this.gitignore.isIgnored(path, false)) files.push(path);
      }
    }
    await this.forEachLimited(files, async (path) => {
      seen.add(path);
      const stat = await this.fileSystem.stat(path);
      if (stat?.kind === 'file') await this.loadFile(path, stat, false);
      else this.forget(path);
    });
    for (const child of directories) await this.walkDirectory(child, seen);
  }

  private async forEachLimited<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < items.length) await work(items[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(this.readConcurrency, items.length) }, worker));
  }

  private async loadFile(path: string, stat: FileStat, isEdit: boolean): Promise<void> {
    const known = this.entries.get(path) ?? this.skipped.get(path);
    if (known && known.size === stat.size && known.mtimeMs === stat.mtimeMs) return;
    if (stat.size > this.maxFileBytes) {
      this.skip(path, stat, 'too-large');
      return;
    }
    let verdict: ContentVerdict;
    try {
      const bytes = await this.fileSystem.readFile(path);
      this.counters.filesRead++;
      verdict = classifyBytes(bytes);
    } catch {
      this.skip(path, stat, 'unreadable');
      return;
    }
    if (verdict.kind !== 'text') {
      this.skip(path, stat, verdict.kind);
      return;
    }
    this.store(path, verdict.text, stat.size, stat.mtimeMs, isEdit);
  }

  private acceptText(path: string, text: string): void {
    const size = utf8Length(text);
    const stat = { size, mtimeMs: -1 };
    if (size > this.maxFileBytes) {
      this.skip(path, stat, 'too-large');
      return;
    }
    const verdict = classifyText(text);
    if (verdict.kind !== 'text') {
      this.skip(path, stat, verdict.kind);
      return;
    }
    this.store(path, verdict.text, size, -1, true);
  }

  private store(path: string, text: string, size: number, mtimeMs: number, isEdit: boolean): void {
    this.skipped.delete(path);
    const previous = this.entries.get(path);
    const segmentText = formatSegment(this.separator, path, text);
    if (previous && previous.segment.text === segmentText) {
      // Same contents (a save, a touch): remember the new stat, keep the tokens and the order.
      previous.size = size;
      previous.mtimeMs = mtimeMs;
      return;
    }
    // Counted when a render first needs it: the file being typed in is re-stored on every
    // keystroke, but a completion leaves it out of the repository part and never counts it.
    const segment: LazySegment = { text: segmentText, tokens: undefined };
    const headerLength = this.separator.length + path.length + 1;
    this.entries.set(path, { size, mtimeMs, segment, headerLength });
    if (!previous) this.order = undefined;
    if (isEdit) this.noteEdit(path);
  }

  private skip(path: string, stat: { size: number; mtimeMs: number }, reason: SkipReason): void {
    this.forget(path);
    this.skipped.set(path, { size: stat.size, mtimeMs: stat.mtimeMs, reason });
  }

  private forget(path: string): void {
    if (this.entries.delete(path)) this.order = undefined;
    if (this.recentEdits.delete(path)) this.order = undefined;
  }

  /** Forgets a file, or every file below a deleted folder. */
  private forgetTree(path: string): void {
    this.forget(path);
    this.skipped.delete(path);
    const prefix = `${path}/`;
    for (const known of [...this.entries.keys()]) if (known.startsWith(prefix)) this.forget(known);
    for (const known of [...this.skipped.keys()]) if (known.startsWith(prefix)) this.skipped.delete(known);
    if (this.gitignore.hasRules(path)) this.gitignore.removeRules(path);
  }
}
