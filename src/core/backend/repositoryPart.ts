// The repository part of a completion or chat request, and how a request carries it. Two
// sources: the engine host's own (the local backend: the host has the workspace open and reads
// its files itself, so the request only says `repository: true`), or files rendered by the
// extension and sent as text (the remote backend, whose server cannot read this disk).
import type { BackendSetting, ContextFileParam, GenerateParams, RepositoryFields } from '../protocol/protocol';

export type RepositoryPart =
  /** Rendered here (`source` may be left out: RenderedFiles is one as it comes). */
  | { source?: 'files'; files: ContextFileParam[]; tokens: number }
  /** The host's own; `files` and `tokens` as it last reported them (workspace/status), 0 before. */
  | { source: 'host'; files: number; tokens: number };

export const NO_REPOSITORY: RepositoryPart = { files: [], tokens: 0 };

/** The GenerateParams fields that carry `part`: `repository` or `repositoryContext`, never both. */
export function repositoryParams(part: RepositoryPart): Pick<RepositoryFields, 'repository' | 'repositoryContext'> {
  return part.source === 'host' ? { repository: true } : { repositoryContext: part.files };
}

/** Number of repository files in the request's prompt. */
export function repositoryFileCount(part: RepositoryPart): number {
  return part.source === 'host' ? part.files : part.files.length;
}

/**
 * Whether the engine host renders the repository part: for the local backend over a folder on
 * disk (or no folder). The remote backend's server cannot read this disk, and neither can the
 * host read a virtual file system's folder (uri scheme other than `file`): there the extension
 * renders the files and sends them, as before the host owned the repository.
 */
export function hostRendersRepository(backend: BackendSetting, folderScheme: string | undefined): boolean {
  return backend !== 'remote' && (folderScheme === undefined || folderScheme === 'file');
}

export interface RepositorySources {
  hostRenders(): boolean;
  /** The host's part (HostRepository.part). */
  host(): RepositoryPart;
  /** Files rendered by the extension within the budget, `excludePath` left out. */
  files(excludePath: string | undefined): Promise<RepositoryPart>;
}

/** The repository part of each completion and chat request, from whichever source renders it. */
export function repositoryPartFor(sources: RepositorySources): (excludePath: string | undefined) => Promise<RepositoryPart> {
  return async (excludePath) => (sources.hostRenders() ? sources.host() : sources.files(excludePath));
}
