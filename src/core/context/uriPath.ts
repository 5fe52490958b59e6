// Workspace-relative paths of editor URIs, without the `vscode` module: the parts of a URI that
// decide whether a file lies inside a folder.

export interface UriParts {
  scheme: string;
  authority: string;
  path: string;
}

/** Workspace-relative path ('/' separated) of a file inside `folder`, else undefined. */
export function relativePathIn(folder: UriParts, uri: UriParts): string | undefined {
  if (uri.scheme !== folder.scheme || uri.authority !== folder.authority) return undefined;
  const root = folder.path.replace(/\/$/, '');
  if (!uri.path.startsWith(`${root}/`)) return undefined;
  return uri.path.slice(root.length + 1);
}
