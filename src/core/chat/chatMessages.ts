// Messages exchanged between the chat webview (src/vscode/webview/chatPanel.ts, bundled to
// dist/chat-panel.js) and the extension (chatViewProvider.ts). Both sides import these types;
// each side checks what it receives with the parser for its direction, since a webview message
// is just JSON.
import type { AnswerMeta, Turn } from './conversation';

const CODE_ACTIONS = ['copy', 'insert', 'newFile', 'apply'] as const;
/** A code block's buttons: Copy, Insert at the cursor, New file, Apply (to the file it names, reviewed hunk by hunk). */
export type CodeAction = (typeof CODE_ACTIONS)[number];
/** Keys the tests' API may press in the composer. */
const COMPOSER_KEYS = ['Enter', 'Tab', 'ArrowDown', 'ArrowUp', 'Escape'] as const;
export type ComposerKey = (typeof COMPOSER_KEYS)[number];

export type PanelToChat =
  | { type: 'ready' }
  | { type: 'ask'; text: string; attachments: string[] }
  | { type: 'stop' }
  | { type: 'regenerate' }
  /** Continue an answer that stopped at its token limit. */
  | { type: 'continue' }
  /** The header's model button: run Select Model. */
  | { type: 'selectModel' }
  | { type: 'pickAttachment' }
  /** The panel wants the workspace's file paths, to complete a `#`/`@` mention. */
  | { type: 'listFiles' }
  /** A path of an answer's "Used N files" list clicked: open that file. */
  | { type: 'openFile'; path: string }
  /** The attachments the composer's chips show now, and the ids the `#`/`@` list offers (sent whenever they change). */
  | { type: 'chips'; attachments: string[]; offered?: string[] }
  /**
   * A code block's button pressed. `info` (the fence's info string) and `lineBefore` (the
   * answer's last non-blank line above the block) name the file Apply edits.
   */
  | { type: 'codeAction'; action: CodeAction; code: string; language: string; info?: string; lineBefore?: string }
  /** What the panel shows after a render: each turn's source text, and the page's visible text. */
  | {
      type: 'rendered';
      turns: { role: 'user' | 'assistant'; text: string }[];
      visibleText: string;
      draft?: string;
      /** The last answer's code-block buttons as drawn: which block, which action, whether it can be pressed. */
      codeButtons?: CodeButtonState[];
    };

/** A code block's button in the panel, as drawn. */
export interface CodeButtonState {
  block: number;
  action: CodeAction;
  disabled: boolean;
}

export type ChatToPanel =
  | { type: 'engine'; summary: string }
  /** The whole conversation (on load, new chat, regenerate); replaces what the panel shows. */
  | { type: 'conversation'; turns: Turn[]; busy: boolean }
  /** One turn added or replaced (same id). */
  | { type: 'turn'; turn: Turn }
  /** Text appended to a streaming answer. */
  | { type: 'delta'; id: string; text: string }
  | { type: 'busy'; busy: boolean; status?: string }
  /** Files picked to attach to the next question. */
  | { type: 'attach'; paths: string[] }
  /** The workspace's file paths, for `#`/`@` completion (answers listFiles). */
  | { type: 'files'; paths: string[] }
  /**
   * Drives the composer as a person would (the tests' API): types the question's text (the
   * cursor at its end), presses a key in it, presses a chip's remove button (by attachment id),
   * presses Send.
   */
  | { type: 'composer'; text?: string; press?: ComposerKey; remove?: string; submit?: boolean }
  /** Presses a code block's button (`block`: its index) in the last answer, as a person would (the tests' API). */
  | { type: 'codeButton'; action: CodeAction; block: number }
  /** Text added to the question being written (an editor selection, quoted). */
  | { type: 'draft'; text: string }
  | { type: 'notice'; text: string };

export type { AnswerMeta, Turn };

// Sizes beyond which a message from the panel is refused (a question, a code block).
export const MAX_TEXT_CHARS = 200_000;
export const MAX_ATTACHMENTS = 32;
/** Most workspace paths offered for `#`/`@` completion. */
export const MAX_LISTED_FILES = 5000;
/** Longest fence info string and line before a code block a codeAction may carry. */
export const MAX_INFO_CHARS = 1024;
export const MAX_LINE_BEFORE_CHARS = 4096;
/** Most code-block buttons a render report may list (four per block). */
export const MAX_CODE_BUTTONS = 4 * 256;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isText = (value: unknown, max = MAX_TEXT_CHARS): value is string => typeof value === 'string' && value.length <= max;
const isCodeAction = (value: unknown): value is CodeAction => (CODE_ACTIONS as readonly unknown[]).includes(value);
const isPathList = (value: unknown): value is string[] =>
  Array.isArray(value) && value.length <= MAX_ATTACHMENTS && value.every((path) => isText(path, 4096) && path.length > 0);

/** A message from the panel, checked; undefined for anything that is not one. */
export function parsePanelMessage(value: unknown): PanelToChat | undefined {
  if (!isRecord(value)) return undefined;
  switch (value.type) {
    case 'ready':
    case 'stop':
    case 'regenerate':
    case 'continue':
    case 'selectModel':
    case 'pickAttachment':
    case 'listFiles':
      return { type: value.type };
    case 'chips':
      if (!isPathList(value.attachments) || (value.offered !== undefined && !isPathList(value.offered))) return undefined;
      return { type: 'chips', attachments: value.attachments, ...(value.offered !== undefined ? { offered: value.offered as string[] } : {}) };
    case 'ask':
      if (!isText(value.text)) return undefined;
      if (value.attachments !== undefined && !isPathList(value.attachments)) return undefined;
      return { type: 'ask', text: value.text, attachments: (value.attachments as string[] | undefined) ?? [] };
    case 'codeAction':
      if (!isCodeAction(value.action)) return undefined;
      if (!isText(value.code) || !isText(value.language ?? '', 64)) return undefined;
      if (value.info !== undefined && !isText(value.info, MAX_INFO_CHARS)) return undefined;
      if (value.lineBefore !== undefined && !isText(value.lineBefore, MAX_LINE_BEFORE_CHARS)) return undefined;
      return {
        type: 'codeAction',
        action: value.action,
        code: value.code,
        language: (value.language as string | undefined) ?? '',
        ...(value.info !== undefined ? { info: value.info as string } : {}),
        ...(value.lineBefore !== undefined ? { lineBefore: value.lineBefore as string } : {}),
      };
    case 'rendered': {
      if (!Array.isArray(value.turns) || !isText(value.visibleText, 4 * MAX_TEXT_CHARS)) return undefined;
      const turns: { role: 'user' | 'assistant'; text: string }[] = [];
      for (const turn of value.turns) {
        if (!isRecord(turn) || (turn.role !== 'user' && turn.role !== 'assistant') || !isText(turn.text)) return undefined;
        turns.push({ role: turn.role, text: turn.text });
      }
      if (value.draft !== undefined && !isText(value.draft)) return undefined;
      let codeButtons: CodeButtonState[] | undefined;
      if (value.codeButtons !== undefined) {
        if (!Array.isArray(value.codeButtons) || value.codeButtons.length > MAX_CODE_BUTTONS) return undefined;
        codeButtons = [];
        for (const button of value.codeButtons) {
          if (!isRecord(button) || !isCodeAction(button.action) || typeof button.disabled !== 'boolean') return undefined;
          if (!Number.isInteger(button.block) || (button.block as number) < 0) return undefined;
          codeButtons.push({ block: button.block as number, action: button.action, disabled: button.disabled });
        }
      }
      return {
        type: 'rendered',
        turns,
        visibleText: value.visibleText,
        ...(value.draft !== undefined ? { draft: value.draft as string } : {}),
        ...(codeButtons ? { codeButtons } : {}),
      };
    }
    case 'openFile':
      return isText(value.path, 4096) && value.path.length > 0 ? { type: 'openFile', path: value.path } : undefined;
    default:
      return undefined;
  }
}

function isTurn(value: unknown): value is Turn {
  return (
    isRecord(value) &&
    typeof value.id === 'string' &&
    (value.role === 'user' || value.role === 'assistant') &&
    typeof value.text === 'string' &&
    (value.status === 'streaming' || value.status === 'done' || value.status === 'stopped' || value.status === 'error')
  );
}

/** A message from the extension, checked in the panel; undefined for anything else. */
export function parseChatMessage(value: unknown): ChatToPanel | undefined {
  if (!isRecord(value)) return undefined;
  switch (value.type) {
    case 'engine':
      return typeof value.summary === 'string' ? { type: 'engine', summary: value.summary } : undefined;
    case 'conversation':
      return Array.isArray(value.turns) && value.turns.every(isTurn) && typeof value.busy === 'boolean'
        ? { type: 'conversation', turns: value.turns, busy: value.busy }
        : undefined;
    case 'turn':
      return isTurn(value.turn) ? { type: 'turn', turn: value.turn } : undefined;
    case 'delta':
      return typeof value.id === 'string' && typeof value.text === 'string' ? { type: 'delta', id: value.id, text: value.text } : undefined;
    case 'busy':
      return typeof value.busy === 'boolean' && (value.status === undefined || typeof value.status === 'string')
        ? { type: 'busy', busy: value.busy, ...(value.status !== undefined ? { status: value.status as string } : {}) }
        : undefined;
    case 'attach':
      return isPathList(value.paths) ? { type: 'attach', paths: value.paths } : undefined;
    case 'files':
      return Array.isArray(value.paths) && value.paths.length <= MAX_LISTED_FILES && value.paths.every((path) => isText(path, 4096))
        ? { type: 'files', paths: value.paths }
        : undefined;
    case 'composer':
      if (value.text !== undefined && !isText(value.text)) return undefined;
      if (value.remove !== undefined && !isText(value.remove, 4096)) return undefined;
      if (value.submit !== undefined && typeof value.submit !== 'boolean') return undefined;
      if (value.press !== undefined && !(COMPOSER_KEYS as readonly unknown[]).includes(value.press)) return undefined;
      return {
        type: 'composer',
        ...(value.text !== undefined ? { text: value.text as string } : {}),
        ...(value.press !== undefined ? { press: value.press as ComposerKey } : {}),
        ...(value.remove !== undefined ? { remove: value.remove as string } : {}),
        ...(value.submit !== undefined ? { submit: value.submit as boolean } : {}),
      };
    case 'notice':
      return typeof value.text === 'string' ? { type: 'notice', text: value.text } : undefined;
    case 'codeButton':
      return isCodeAction(value.action) && Number.isInteger(value.block) && (value.block as number) >= 0
        ? { type: 'codeButton', action: value.action, block: value.block as number }
        : undefined;
    case 'draft':
      return isText(value.text) ? { type: 'draft', text: value.text } : undefined;
    default:
      return undefined;
  }
}
