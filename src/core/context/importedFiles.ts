// Finds the workspace files that a source file imports, by looking for the import forms of
// the common languages and resolving them against the known file set. A heuristic: it only
// has to rank files, so a missed or extra import costs a little relevance, never correctness.

const JS_IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*|\bexport\s*\*\s*from\s*)['"]([^'"\n]+)['"]/g;
const C_INCLUDE = /^\s*#\s*include\s*"([^"\n]+)"/gm;
const PY_FROM = /^\s*from\s+(\.*[\w.]*)\s+import\b/gm;
const PY_IMPORT = /^\s*import\s+([\w.]+(?:\s*,\s*[\w.]+)*)/gm;
const RUST_MOD = /^\s*(?:pub\s+)?mod\s+(\w+)\s*;/gm;

const SCRIPT_EXTENSIONS = ['', '.ts', '.tsx', '.d.ts', '.js', '.jsx', '.mjs', '.cjs', '.mts', '.cts', '.vue', '.svelte'];
const INDEX_FILES = ['/index.ts', '/index.tsx', '/index.js', '/index.jsx', '/index.mjs'];

function dirname(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

/** Joins and normalises '.' and '..' segments; undefined when it climbs above the root. */
export function joinPath(base: string, relative: string): string | undefined {
  const out = base === '' ? [] : base.split('/');
  for (const part of relative.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else {
      out.push(part);
    }
  }
  return out.join('/');
}

function allMatches(regex: RegExp, text: string): string[] {
  const result: string[] = [];
  for (const match of text.matchAll(regex)) result.push(match[1]);
  return result;
}

export function importedFiles(path: string, text: string, exists: (path: string) => boolean): string[] {
  const found = new Set<string>();
  const dir = dirname(path);
  const tryPaths = (candidates: Iterable<string | undefined>) => {
    for (const candidate of candidates) {
      if (candidate !== undefined && candidate !== path && exists(candidate)) {
        found.add(candidate);
        return;
      }
    }
  };

  for (const specifier of allMatches(JS_IMPORT, text)) {
    if (!specifier.startsWith('.')) continue;
    const base = joinPath(dir, specifier);
    if (base === undefined) continue;
    // A '.js' specifier in TypeScript names the '.ts' source.
    const stem = base.replace(/\.(m|c)?js$/, '');
    tryPaths([...SCRIPT_EXTENSIONS.map((ext) => base + ext), ...SCRIPT_EXTENSIONS.map((ext) => stem + ext), ...INDEX_FILES.map((ext) => base + ext)]);
  }
  for (const include of allMatches(C_INCLUDE, text)) {
    tryPaths([joinPath(dir, include), joinPath('', include), joinPath('', `include/${include}`), joinPath('', `src/${include}`)]);
  }
  const pythonModules = [...allMatches(PY_FROM, text), ...allMatches(PY_IMPORT, text).flatMap((list) => list.split(',').map((s) => s.trim()))];
  for (const module of pythonModules) {
    const dots = /^\.*/.exec(module)![0].length;
    const rest = module.slice(dots).replace(/\./g, '/');
    let base: string | undefined = '';
    if (dots > 0) base = joinPath(dir, '../'.repeat(dots - 1));
    if (base === undefined) continue;
    const stems = dots > 0 ? [joinPath(base, rest)] : [joinPath(dir, rest), joinPath('', rest), joinPath('', `src/${rest}`)];
    tryPaths(stems.flatMap((stem) => (stem === undefined ? [] : [`${stem}.py`, `${stem}/__init__.py`])));
  }
  for (const module of allMatches(RUST_MOD, text)) {
    tryPaths([joinPath(dir, `${module}.rs`), joinPath(dir, `${module}/mod.rs`)]);
  }
  return [...found].sort();
}
