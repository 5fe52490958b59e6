// The repository context layer: pure TypeScript, no editor dependency (the VS Code adapter
// lives in vscodeWorkspace.ts and is imported directly by the extension).
export { RepoContext, DEFAULT_FILE_SEPARATOR, DEFAULT_MAX_FILE_BYTES, normalizePath } from './repoContext';
export type { SkipReason } from './repoContext';
export { NodeFileSystem } from './nodeFileSystem';
export type * from './types';
