// What a chat request takes from the editor: the repository part (as completions get it: the
// engine host's own, or for the remote backend files rendered here with the active file left
// out), the active file and selection, and the attached files.
import * as path from 'node:path';
import * as vscode from 'vscode';

import { locateRepositoryPath, repositoryPathOf } from '../core/context/workspaceFolders';
import { FALLBACK_CONTEXT_TOKENS } from '../core/context/contextBudget';
import { repositoryName } from './hostRepository';
import { modelUnavailable } from '../core/backend/generationBackend';
import type { ModelController } from './modelController';
import type { RepositoryPart } from '../core/backend/repositoryPart';
import type { TidalSettings } from './settings';
import type { ChatRequestContext } from '../core/chat/chatSession';
import { readGitDiff, readProblems } from './editorAttachments';
import { splitAttachments } from '../core/chat/mentions';
import { wholeLinesEnd } from '../core/chat/selectionPrompt';
import type { AttachedText, EditorFile } from '../core/chat/promptAssembly';
import { TidalError } from '../native/errors';
import { DEFAULT_MAX_TOKENS } from '../core/protocol/generation';

/** Largest attached file read, in bytes. */
const MAX_ATTACHED_BYTES = 512 * 1024;

export async function gatherChatContext(
  attachments: string[],
  editor: vscode.TextEditor | undefined,
  model: ModelController,
  /**
   * The repository part, exactly as for completions (the host's own; or files with the same
   * budget and the same active file left out), so that chat and completion prompts begin with
   * the same tokens and share one cached KV prefix. Its `tokens` (for the host's part: the
   * host's last reported total) is what the conversation budget leaves room for.
   */
  repositoryPart: (excludePath: string | undefined) => Promise<RepositoryPart>,
  settings: TidalSettings,
): Promise<ChatRequestContext> {
  // A remote server renders the chat with its own template; locally the model must have one.
  const loaded = settings.backend === 'remote' ? undefined : await model.whenReady().catch((error: unknown) => Promise.reject(modelUnavailable(error)));
  if (loaded && !loaded.tokenizer.hasChatTemplate) {
    throw new TidalError(
      'ERR_TIDAL_CONFIGURATION',
      `The model ${path.basename(loaded.modelDir)} has no chat template in its tokenizer_config.json, so it cannot chat. ` +
        'Pick an instruction-tuned (chat) model with "Tidal: Select Model"; this one still works for inline completions.',
    );
  }
  const folders = vscode.workspace.workspaceFolders ?? [];

  const document = editor?.document;
  // The repository path (the folder's name first when there are several), as the repository part names it.
  const repositoryPath = document && document.uri.scheme === 'file' ? repositoryPathOf(folders, document.uri) : undefined;
  const inWorkspace = repositoryPath !== undefined;
  const activeFile: EditorFile | undefined =
    document && (inWorkspace || document.isUntitled)
      ? { path: repositoryPath ?? document.fileName, content: document.getText(), language: document.languageId }
      : undefined;
  const selection =
    editor && activeFile && !editor.selection.isEmpty
      ? {
          path: activeFile.path,
          text: document!.getText(editor.selection),
          startLine: editor.selection.start.line + 1,
          endLine: wholeLinesEnd(editor.selection),
        }
      : undefined;

  const request = splitAttachments(attachments);
  if (request.selection && !selection) {
    throw new Error(
      activeFile
        ? `#selection: nothing is selected in ${activeFile.path}. Select the code you mean, then send again.`
        : '#selection: no editor is open. Open a file and select the code you mean, then send again.',
    );
  }
  const attachedText: AttachedText[] = [];
  if (request.problems) attachedText.push(readProblems(request.problems, document));
  if (request.gitDiff) attachedText.push(await readGitDiff());

  const attached: EditorFile[] = [];
  for (const name of request.files) {
    if (folders.length === 0) throw new Error(`Open a folder to attach ${name}: attached files are read from the workspace.`);
    const located = locateRepositoryPath(folders, name);
    if (!located)
      throw new Error(
        `#file:${name} is in none of the workspace folders (${folders.map((folder) => folder.name).join(', ')}). With several folders, a path starts with the folder's name.`,
      );
    const uri = vscode.Uri.joinPath(located.folder.uri, ...located.relative.split('/'));
    let stat: vscode.FileStat;
    try {
      stat = await vscode.workspace.fs.stat(uri);
    } catch {
      throw new Error(
        `#file:${name} is not a file in this workspace. Attach files with the Attach button, or write #file: followed by a workspace-relative path.`,
      );
    }
    if (stat.type & vscode.FileType.Directory) throw new Error(`#file:${name} is a folder; attach the files in it one by one.`);
    if (stat.size > MAX_ATTACHED_BYTES)
      throw new Error(
        `#file:${name} is ${Math.round(stat.size / 1024)} KiB, more than the ${MAX_ATTACHED_BYTES / 1024} KiB an attached file may have. Select the part you mean and ask about the selection.`,
      );
    const open = vscode.workspace.textDocuments.find((doc) => doc.uri.toString() === uri.toString());
    const content = open ? open.getText() : new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
    attached.push({ path: name, content, language: open?.languageId });
  }

  const maxContext = loaded?.model.maxContext ?? FALLBACK_CONTEXT_TOKENS;
  const repository = await repositoryPart(inWorkspace ? activeFile?.path : undefined);
  // tidal.chat.maxTokens: tokens per answer before it stops with [Continue] (0 or unset: the engine's default).
  const answerTokens = chatAnswerTokens(vscode.workspace.getConfiguration('tidal').get('chat.maxTokens'));
  const limit = settings.context.maxTokens > 0 ? Math.min(settings.context.maxTokens, maxContext) : maxContext;
  return {
    repository,
    repoName: repositoryName(folders, vscode.workspace.name),
    editor: { activeFile, selection, selectionAttached: request.selection, attached, attachedText },
    maxContext,
    // The room an answer takes by default is kept free for it.
    conversationBudgetTokens: Math.max(256, limit - repository.tokens - DEFAULT_MAX_TOKENS.chat),
    attention: { mode: settings.attention.mode, tokenBudget: settings.attention.tokenBudget, selectionLayers: settings.attention.selectionLayers },
    ...(answerTokens > 0 ? { maxTokens: answerTokens } : {}),
  };
}

/** tidal.chat.maxTokens as a whole number of tokens, 0 when unset or not a positive number. */
function chatAnswerTokens(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 1 ? Math.min(Math.floor(value), 1 << 20) : 0;
}
