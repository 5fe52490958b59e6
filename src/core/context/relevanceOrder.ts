// The order of files in the rendered context.
//
// The engine keeps the KV cache of the longest common token prefix between two requests, so a
// change to the file at position i costs re-prefilling everything from i to the end. The order
// therefore puts files by how likely they are to change soon, least likely first:
//
//   tier 0  every other file, by path            (changes only when the disk changes)
//   tier 1  same folder as / imported by the active file, by path
//   tier 2  open in an editor, by path
//   tier 3  recently edited, oldest edit first   (the newest edit is next to the end)
//   tier 4  the active file                      (changes on every keystroke)
//
// Relevance rises toward the end too, which is where a model attends best before the current
// file. Within a tier the key is fixed (the path, or the sequence number of the file's first
// edit since it last left the recent list), so typing in the active file changes only its own
// segment: every other file keeps its place and the prefix before the active file is reused.
// Switching the active file moves only tiers 1 and 4, and opening a file moves that one file.
// Paths compare by UTF-16 code units, not by locale, so the order is the same everywhere.

export enum Tier {
  Background = 0,
  Neighbour = 1,
  Open = 2,
  Recent = 3,
  Active = 4,
}

export interface RelevanceState {
  activePath: string | undefined;
  /** Files the active file imports (a snapshot taken when it became active). */
  activeImports: ReadonlySet<string>;
  openPaths: ReadonlySet<string>;
  /** Path to edit sequence number; larger is newer. */
  recentEdits: ReadonlyMap<string, number>;
}

export interface RankedPath {
  path: string;
  tier: Tier;
  /** Order inside the tier: the edit sequence for recent files, 0 otherwise. */
  rank: number;
}

export function dirname(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

export function tierOf(path: string, state: RelevanceState): RankedPath {
  if (path === state.activePath) return { path, tier: Tier.Active, rank: 0 };
  const edit = state.recentEdits.get(path);
  if (edit !== undefined) return { path, tier: Tier.Recent, rank: edit };
  if (state.openPaths.has(path)) return { path, tier: Tier.Open, rank: 0 };
  if (state.activePath !== undefined && (state.activeImports.has(path) || dirname(path) === dirname(state.activePath))) {
    return { path, tier: Tier.Neighbour, rank: 0 };
  }
  return { path, tier: Tier.Background, rank: 0 };
}

export function compareRanked(a: RankedPath, b: RankedPath): number {
  if (a.tier !== b.tier) return a.tier - b.tier;
  if (a.rank !== b.rank) return a.rank - b.rank;
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/** All paths, least relevant first, most relevant last. */
export function orderByRelevance(paths: Iterable<string>, state: RelevanceState): RankedPath[] {
  const ranked: RankedPath[] = [];
  for (const path of paths) ranked.push(tierOf(path, state));
  return ranked.sort(compareRanked);
}
