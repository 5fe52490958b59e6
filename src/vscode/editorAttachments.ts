// Editor state a chat question can attach, read through the `vscode` API when it is sent: the
// Problems (diagnostics) of the active file or the workspace, and the git diff from the
// built-in Git extension (its API runs git locally; nothing goes to the network).
import * as vscode from 'vscode';

import { repositoryPathOf } from '../core/context/workspaceFolders';
import { formatProblems, type Problem, type ProblemSeverity } from '../core/chat/problems';
import type { AttachedText } from '../core/chat/promptAssembly';

const SEVERITIES: Record<vscode.DiagnosticSeverity, ProblemSeverity> = {
  [vscode.DiagnosticSeverity.Error]: 'error',
  [vscode.DiagnosticSeverity.Warning]: 'warning',
  [vscode.DiagnosticSeverity.Information]: 'info',
  [vscode.DiagnosticSeverity.Hint]: 'hint',
};

function toProblem(path: string, diagnostic: vscode.Diagnostic): Problem {
  const code = typeof diagnostic.code === 'object' ? diagnostic.code.value : diagnostic.code;
  return {
    path,
    line: diagnostic.range.start.line + 1,
    severity: SEVERITIES[diagnostic.severity] ?? 'info',
    message: diagnostic.message,
    source: diagnostic.source,
    code: code === undefined ? undefined : String(code),
  };
}

/** The Problems of `document` (when given) or of every file, as the prompt shows them. */
export function readProblems(scope: 'activeFile' | 'workspace', document: vscode.TextDocument | undefined): AttachedText {
  const folders = vscode.workspace.workspaceFolders ?? [];
  const pathOf = (uri: vscode.Uri) => repositoryPathOf(folders, uri) ?? (uri.scheme === 'file' ? uri.fsPath : uri.toString());
  if (scope === 'activeFile' && document) {
    const path = pathOf(document.uri);
    const problems = vscode.languages.getDiagnostics(document.uri).map((diagnostic) => toProblem(path, diagnostic));
    return { label: `Problems in ${path}`, title: `Problems in ${path} (VS Code diagnostics)`, text: formatProblems(problems) };
  }
  const problems = vscode.languages.getDiagnostics().flatMap(([uri, diagnostics]) => diagnostics.map((diagnostic) => toProblem(pathOf(uri), diagnostic)));
  return { label: 'Problems in the workspace', title: 'Problems in the workspace (VS Code diagnostics)', text: formatProblems(problems) };
}

// The part of the Git extension's API (extensions/git/src/api/git.d.ts, version 1) used here.
interface GitRepository {
  rootUri: vscode.Uri;
  diff(cached?: boolean): Promise<string>;
}
interface GitApi {
  state: 'uninitialized' | 'initialized';
  onDidChangeState: vscode.Event<'uninitialized' | 'initialized'>;
  repositories: GitRepository[];
}
interface GitExtension {
  enabled: boolean;
  getAPI(version: 1): GitApi;
}

/** How long to wait for the Git extension to find the repositories when it has just started. */
const GIT_STATE_TIMEOUT_MS = 5_000;

/**
 * The staged and unstaged changes of every git repository in the workspace, as `git diff`
 * prints them; when git cannot be asked, a sentence saying why and what to do instead.
 */
export async function readGitDiff(): Promise<AttachedText> {
  const attached = (text: string): AttachedText => ({ label: 'Git diff', title: 'Git diff (staged, then unstaged changes)', text });
  const unavailable = (why: string): AttachedText => ({ label: 'Git diff', title: 'Git diff', text: `Not available: ${why}` });
  const extension = vscode.extensions.getExtension<GitExtension>('vscode.git');
  if (!extension) return unavailable('the built-in Git extension is disabled or missing. Enable it, or paste the diff into the question.');
  let git: GitExtension;
  try {
    git = extension.isActive ? extension.exports : await extension.activate();
  } catch (error) {
    return unavailable(`the Git extension did not start (${(error as Error).message}).`);
  }
  if (!git?.enabled) return unavailable('Git is turned off (the git.enabled setting).');
  const api = git.getAPI(1);
  if (api.state !== 'initialized') {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, GIT_STATE_TIMEOUT_MS);
      const listener = api.onDidChangeState((state) => state === 'initialized' && done());
      function done() {
        clearTimeout(timer);
        listener.dispose();
        resolve();
      }
    });
  }
  if (api.repositories.length === 0) return unavailable('no git repository is open in this workspace.');
  const folders = vscode.workspace.workspaceFolders ?? [];
  const parts: string[] = [];
  for (const repository of api.repositories) {
    const [staged, unstaged] = await Promise.all([repository.diff(true), repository.diff(false)]);
    const name = folders.length > 1 || api.repositories.length > 1 ? `# ${repositoryPathOf(folders, repository.rootUri) ?? repository.rootUri.fsPath}\n` : '';
    const body = [staged, unstaged].filter((diff) => diff.trim() !== '').join('\n');
    parts.push(`${name}${body || 'No changes against HEAD.'}`);
  }
  return attached(parts.join('\n'));
}
