// Include/exclude globs from the settings plus the built-in rules for generated files that
// are recognisable by name: lockfiles, minified files, source maps and build output folders.
import { minimatch, type MMRegExp } from 'minimatch';

const LOCKFILE_NAMES = new Set([
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
  'bun.lockb',
  'bun.lock',
  'Cargo.lock',
  'Gemfile.lock',
  'composer.lock',
  'poetry.lock',
  'Pipfile.lock',
  'uv.lock',
  'pdm.lock',
  'go.sum',
  'flake.lock',
  'packages.lock.json',
  'gradle.lockfile',
  'mix.lock',
  'pubspec.lock',
]);

const GENERATED_NAME = /\.(min\.(js|mjs|cjs|css)|map|lock|pyc|pyo|class|o|obj|a|so|dylib|dll|exe|wasm|tsbuildinfo)$/i;

/** Folder names that hold build output, caches or installed dependencies. */
export const GENERATED_DIRECTORY_NAMES: ReadonlySet<string> = new Set([
  '.git',
  '.hg',
  '.svn',
  'node_modules',
  'bower_components',
  'dist',
  'build',
  'out',
  'target',
  'coverage',
  '.next',
  '.nuxt',
  '.turbo',
  '.cache',
  '.parcel-cache',
  '__pycache__',
  '.venv',
  '.tox',
  '.mypy_cache',
  '.pytest_cache',
  '.gradle',
  'cmake-build-debug',
  'cmake-build-release',
]);

export function isGeneratedFileName(name: string): boolean {
  return LOCKFILE_NAMES.has(name) || GENERATED_NAME.test(name);
}

function compile(patterns: readonly string[]): MMRegExp[] {
  return patterns.flatMap((pattern) => {
    const regex = minimatch.makeRe(pattern, { dot: true });
    return regex ? [regex] : [];
  });
}

export class PathFilter {
  private readonly include: MMRegExp[];
  private readonly exclude: MMRegExp[];
  /** Exclude patterns of the form 'X/**', as matchers for the folder X itself. */
  private readonly excludeDirectory: MMRegExp[];

  /**
   * `folderLevel` 1: the first segment of every path names a workspace folder (a multi-root
   * workspace, see foldersFileSystem.ts). The globs then apply to the path inside the folder,
   * as VS Code's own globs do, and a folder itself is never skipped by name.
   */
  constructor(
    include: readonly string[],
    exclude: readonly string[],
    private readonly folderLevel: 0 | 1 = 0,
  ) {
    this.include = compile(include);
    this.exclude = compile(exclude);
    this.excludeDirectory = compile(exclude.filter((p) => p.endsWith('/**')).map((p) => p.slice(0, -3)));
  }

  /** Whether a whole folder can be skipped without looking inside it. */
  skipsDirectory(path: string): boolean {
    if (this.folderLevel === 1) {
      const slash = path.indexOf('/');
      if (slash < 0) return false;
      path = path.slice(slash + 1);
    }
    const name = path.slice(path.lastIndexOf('/') + 1);
    if (GENERATED_DIRECTORY_NAMES.has(name)) return true;
    return this.excludeDirectory.some((regex) => regex.test(path));
  }

  /** Whether a file is wanted by name: included, not excluded, not a generated file. */
  acceptsFile(path: string): boolean {
    if (this.folderLevel === 1) path = path.slice(path.indexOf('/') + 1);
    const name = path.slice(path.lastIndexOf('/') + 1);
    if (isGeneratedFileName(name)) return false;
    if (!this.include.some((regex) => regex.test(path))) return false;
    return !this.exclude.some((regex) => regex.test(path));
  }

  /** Whether any folder on the way to `path` would have been skipped by the scanner. */
  skipsAncestorOf(path: string): boolean {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      if (this.skipsDirectory(parts.slice(0, i).join('/'))) return true;
    }
    return false;
  }
}
