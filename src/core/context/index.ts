// The repository context layer: pure TypeScript, no editor dependency (the VS Code adapter
// is src/vscode/watchedRepositoryContext.ts).
export { RepositoryContext, DEFAULT_FILE_SEPARATOR, DEFAULT_MAX_FILE_BYTES, normalizePath } from './repositoryContext';
export type { SkipReason } from './repositoryContext';
export { NodeFileSystem } from './nodeFileSystem';
export type * from './types';
