// Shared types of the repository context layer. Paths are always relative to the workspace
// root, separated by '/', with no leading './' ('' is the root itself).

/** What the context layer needs from a file system; Node and VS Code each provide one. */
export interface ContextFileSystem {
  /** Entries of a directory; symbolic links and special files are reported as 'other'. */
  readDirectory(relativeDir: string): Promise<DirectoryEntry[]>;
  /** Size and modification time, or undefined when the path no longer exists. */
  stat(relativePath: string): Promise<FileStat | undefined>;
  readFile(relativePath: string): Promise<Uint8Array>;
}

export interface DirectoryEntry {
  name: string;
  kind: 'file' | 'directory' | 'other';
}

export interface FileStat {
  kind: 'file' | 'directory' | 'other';
  size: number;
  mtimeMs: number;
}

/**
 * Counts the tokens of a piece of text; the engine host passes the model's tokenizer. Each
 * file's segment is counted on its own and the counts are added up, which is exact when the
 * file separator is a special token of the model (nothing merges across it).
 */
export type CountTokens = (text: string) => number;

export interface RepositoryContextOptions {
  fileSystem: ContextFileSystem;
  countTokens: CountTokens;
  /** Written before each file's relative path; default '<|file_sep|>'. */
  fileSeparator?: string;
  /** Globs (relative to the root) a file must match one of; default ['**\/*']. */
  include?: readonly string[];
  /** Globs of files kept out in addition to .gitignore and the generated-file rules. */
  exclude?: readonly string[];
  /** Files larger than this are skipped; default 1 MB. */
  maxFileBytes?: number;
  /** How many recently edited files are kept near the end; default 32. */
  maxRecentFiles?: number;
  /**
   * 1 when the file system's top level holds the workspace folders of a multi-root workspace
   * (FoldersFileSystem): globs apply inside each folder. Default 0.
   */
  folderLevel?: 0 | 1;
  /** Parallel reads while scanning; default 32. */
  readConcurrency?: number;
}

export type ChangeKind = 'created' | 'changed' | 'deleted';

export interface FileChange {
  path: string;
  kind: ChangeKind;
  /** Text of an editor buffer; when absent the file is read from disk. */
  text?: string;
}

export interface RenderedFile {
  path: string;
  /** Tokens of the file's whole segment: separator, path line and contents. */
  tokens: number;
  /** UTF-16 offset of the segment in `RenderedContext.text`. */
  startOffset: number;
  /** Sum of the tokens of the segments before this one. */
  startToken: number;
}

export interface RenderedContext {
  text: string;
  files: RenderedFile[];
  totalTokens: number;
  /** Files that did not fit the budget, most relevant first. */
  droppedFiles: string[];
}

export interface RepositoryContextCounters {
  /** Files whose bytes were read from the file system. */
  filesRead: number;
  /** File segments passed to the token counter. */
  filesTokenized: number;
}

/** The files that fit a budget with their contents, as a prompt builder takes them. */
export interface RenderedFiles {
  /** Least relevant first; `content` is the file's text as rendered (closed with a newline). */
  files: { path: string; content: string }[];
  /** Tokens of the files' whole segments (separator and path line included). */
  tokens: number;
  /** Files that did not fit the budget, most relevant first. */
  droppedFiles: string[];
}
