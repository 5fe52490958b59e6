// Nested .gitignore evaluation. Each .gitignore holds rules relative to its own directory; for
// a path, the deepest .gitignore with an opinion decides (a match or a negated match), and
// inside one file the last matching rule wins, as in git. A file below an ignored directory
// can never be re-included, which the scanner gets for free by not descending into it.
import ignore, { type Ignore } from 'ignore';

interface RuleSet {
  /** Directory of the .gitignore ('' for the root). */
  baseDir: string;
  rules: Ignore;
}

export class GitignoreRules {
  private readonly byDirectory = new Map<string, RuleSet>();

  /** Registers (or replaces) the rules of the .gitignore in `baseDir`. */
  setRules(baseDir: string, gitignoreText: string): void {
    this.byDirectory.set(baseDir, { baseDir, rules: ignore().add(gitignoreText) });
  }

  removeRules(baseDir: string): void {
    this.byDirectory.delete(baseDir);
  }

  hasRules(baseDir: string): boolean {
    return this.byDirectory.has(baseDir);
  }

  clear(): void {
    this.byDirectory.clear();
  }

  /** Whether `path` (a directory when `isDirectory`) is ignored by the rules that apply to it. */
  isIgnored(path: string, isDirectory: boolean): boolean {
    const directories = ancestorDirectories(path);
    for (let i = directories.length - 1; i >= 0; i--) {
      const ruleSet = this.byDirectory.get(directories[i]);
      if (!ruleSet) continue;
      const local = ruleSet.baseDir === '' ? path : path.slice(ruleSet.baseDir.length + 1);
      const verdict = ruleSet.rules.test(isDirectory ? `${local}/` : local);
      if (verdict.ignored) return true;
      if (verdict.unignored) return false;
    }
    return false;
  }
}

/** '' and every proper ancestor directory of `path`, outermost first. */
export function ancestorDirectories(path: string): string[] {
  const parts = path.split('/');
  const result = [''];
  for (let i = 1; i < parts.length; i++) result.push(parts.slice(0, i).join('/'));
  return result;
}
