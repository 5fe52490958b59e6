// Lists the import cycles among the modules of src/, and among their folders, and exits 1 if
// there is any.
// Reads each file's imports with the TypeScript compiler's pre-processor (type-only imports
// count too: a cycle of types is still a cycle of layers), resolves relative specifiers to
// files of src/, and finds the strongly connected components of that graph (Tarjan).
//   node scripts/check-cycles.mjs [folder]   (default src)
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sourceRoot = path.resolve(root, process.argv[2] ?? 'src');

function sourceFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return /\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** The file a relative specifier names: `x.ts`, `x.tsx` or `x/index.ts`; undefined for packages. */
function resolveImport(fromFile, specifier) {
  if (!specifier.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(fromFile), specifier);
  for (const candidate of [base, `${base}.ts`, `${base}.tsx`, path.join(base, 'index.ts')]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

const files = sourceFiles(sourceRoot).sort();
const graph = new Map();
for (const file of files) {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  const targets = new Set();
  for (const reference of info.importedFiles) {
    const target = resolveImport(file, reference.fileName);
    if (target) targets.add(target);
  }
  graph.set(file, [...targets].sort());
}

// Tarjan's strongly connected components; a component of more than one node is a cycle (a
// node that imports itself is one too).
function stronglyConnected(edges) {
  const index = new Map();
  const lowLink = new Map();
  const onStack = new Set();
  const stack = [];
  const components = [];
  const visit = (node) => {
    index.set(node, index.size);
    lowLink.set(node, index.get(node));
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        lowLink.set(node, Math.min(lowLink.get(node), lowLink.get(next)));
      } else if (onStack.has(next)) {
        lowLink.set(node, Math.min(lowLink.get(node), index.get(next)));
      }
    }
    if (lowLink.get(node) !== index.get(node)) return;
    const component = [];
    let member;
    do {
      member = stack.pop();
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || (edges.get(node) ?? []).includes(node)) components.push(component.sort());
  };
  for (const node of [...edges.keys()].sort()) if (!index.has(node)) visit(node);
  return components;
}

/** One shortest path of edges from `start` back to itself, inside a component. */
function shortestLoop(edges, start, members) {
  const inside = new Set(members);
  const previous = new Map([[start, undefined]]);
  const queue = [start];
  while (queue.length) {
    const node = queue.shift();
    for (const next of edges.get(node) ?? []) {
      if (!inside.has(next)) continue;
      if (next === start) {
        const loop = [start];
        for (let at = node; at !== start; at = previous.get(at)) loop.splice(1, 0, at);
        return [...loop, start];
      }
      if (!previous.has(next)) {
        previous.set(next, node);
        queue.push(next);
      }
    }
  }
  return [start, start];
}

// The same graph one level up: folder A imports folder B when a module of A imports one of B.
// A cycle between folders (chat/ imports extension/, which imports chat/) mixes two layers even
// when no single module imports itself back.
const folderGraph = new Map();
for (const [file, targets] of graph) {
  const folder = path.dirname(file);
  if (!folderGraph.has(folder)) folderGraph.set(folder, []);
  for (const target of targets) {
    const targetFolder = path.dirname(target);
    if (targetFolder !== folder && !folderGraph.get(folder).includes(targetFolder)) folderGraph.get(folder).push(targetFolder);
  }
}

/** The imports that make folder `from` depend on folder `to`, to show where to cut. */
function importsBetween(from, to) {
  const found = [];
  for (const [file, targets] of graph) {
    if (path.dirname(file) !== from) continue;
    for (const target of targets) if (path.dirname(target) === to) found.push(`${name(file)} -> ${name(target)}`);
  }
  return found;
}

const name = (file) => path.relative(root, file) || '.';
const moduleCycles = stronglyConnected(graph);
const folderCycles = stronglyConnected(folderGraph);
const scope = `${files.length} modules of ${name(sourceRoot)}/`;
if (moduleCycles.length === 0 && folderCycles.length === 0) {
  console.log(`no import cycle among the ${scope}, nor among their folders`);
  console.log('1 passed, 0 failed');
  process.exit(0);
}
if (moduleCycles.length) console.error(`${moduleCycles.length} import cycle(s) among the ${scope}:`);
for (const component of moduleCycles) {
  console.error(`  ${component.length} modules: ${component.map(name).join(', ')}`);
  console.error(`    e.g. ${shortestLoop(graph, component[0], component).map(name).join(' -> ')}`);
}
if (folderCycles.length) console.error(`${folderCycles.length} import cycle(s) among the folders of the ${scope}:`);
for (const component of folderCycles) {
  const loop = shortestLoop(folderGraph, component[0], component);
  console.error(`  ${component.map(name).join(', ')}: ${loop.map(name).join(' -> ')}`);
  for (let i = 0; i + 1 < loop.length; i += 1) for (const edge of importsBetween(loop[i], loop[i + 1])) console.error(`    ${edge}`);
}
console.log('0 passed, 1 failed');
process.exit(1);
