// Paths of files in a workspace of one or several folders, without the `vscode` module. With
// one folder a path is relative to it; with several it is '<folder name>/<relative path>'
// (as VS Code's asRelativePath writes it), names made unique where two folders share one.
// The extension and the engine host use these same names, so a path in a file event, in a
// completion request and in the prompt's repository part is one and the same.
import { relativePathIn, type UriParts } from './uriPath';

export interface WorkspaceFolderParts {
  uri: UriParts;
  name: string;
}

/** Each folder's name in paths: its own, with ' (2)', ' (3)'… after a name taken before. */
export function folderPathNames(folders: readonly { name: string }[]): string[] {
  const taken = new Set<string>();
  return folders.map((folder) => {
    const base = folder.name.replace(/\//g, '_') || 'folder';
    let name = base;
    for (let n = 2; taken.has(name); n++) name = `${base} (${n})`;
    taken.add(name);
    return name;
  });
}

/**
 * The repository path of `uri`: relative to its folder (the innermost one holding it, as VS
 * Code picks it), with the folder's name in front when there are several; undefined outside
 * every folder.
 */
export function repositoryPathOf(folders: readonly WorkspaceFolderParts[], uri: UriParts): string | undefined {
  const names = folderPathNames(folders);
  let best: { relative: string; index: number; depth: number } | undefined;
  folders.forEach((folder, index) => {
    const relative = relativePathIn(folder.uri, uri);
    const depth = folder.uri.path.length;
    if (relative !== undefined && (!best || depth > best.depth)) best = { relative, index, depth };
  });
  if (!best) return undefined;
  return folders.length > 1 ? `${names[best.index]}/${best.relative}` : best.relative;
}

/** The folder and the path inside it of a repository path (the inverse of repositoryPathOf). */
export function locateRepositoryPath<F extends { name: string }>(folders: readonly F[], path: string): { folder: F; relative: string } | undefined {
  if (folders.length === 0) return undefined;
  if (folders.length === 1) return { folder: folders[0], relative: path };
  const names = folderPathNames(folders);
  // The longest name that prefixes the path (a name may itself contain what looks like a path).
  let found: { folder: F; relative: string; length: number } | undefined;
  names.forEach((name, index) => {
    if (path.startsWith(`${name}/`) && (!found || name.length > found.length))
      found = { folder: folders[index], relative: path.slice(name.length + 1), length: name.length };
  });
  return found && { folder: found.folder, relative: found.relative };
}
