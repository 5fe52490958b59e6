// The chat panel's script, in the webview (bundled with markdown-it and highlight.js into
// dist/chat-panel.js; no remote resources). It draws what the extension sends and sends back
// what the user does; the messages are typed and checked in src/core/chat/chatMessages.ts.
import { MAX_CODE_BUTTONS, parseChatMessage, type ChatToPanel, type CodeButtonState, type PanelToChat, type Turn } from '../../core/chat/chatMessages';
import { turnAnnouncement } from '../../core/chat/announcements';
import { offersContinue, offersRegenerate, stopMarker } from '../../core/chat/answerMarkers';
import { createMarkdownRenderer, endsInOpenFence, type CodeBlock } from './markdown';
import { attachmentLabel, mentionCandidates, mentionQueryAt, type MentionCandidate, type MentionQuery } from '../../core/chat/mentions';

declare function acquireVsCodeApi(): { postMessage(message: unknown): void; getState(): unknown; setState(state: unknown): void };

const vscode = acquireVsCodeApi();
const send = (message: PanelToChat) => vscode.postMessage(message);
const renderMarkdown = createMarkdownRenderer();

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const messages = byId<HTMLElement>('messages');
const empty = byId<HTMLElement>('empty');
const modelButton = byId<HTMLButtonElement>('model');
const modelName = byId<HTMLElement>('model-name');
const modelDetail = byId<HTMLElement>('model-detail');
const announcer = byId<HTMLElement>('announcer');
const status = byId<HTMLElement>('status');
const form = byId<HTMLFormElement>('composer');
const input = byId<HTMLTextAreaElement>('input');
const sendButton = byId<HTMLButtonElement>('send');
const stopButton = byId<HTMLButtonElement>('stop');
const attachButton = byId<HTMLButtonElement>('attach');
const chips = byId<HTMLElement>('attachments');
const mentionList = byId<HTMLUListElement>('mention-list');

let turns: Turn[] = [];
let busy = false;
let attachments: string[] = [];
const codeBlocks = new Map<string, CodeBlock[]>();
const ATTENTION_NAMES = { full: 'full attention', tidal: 'TidalDecode', quest: 'Quest' } as const;

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function describeMeta(turn: Turn): string {
  const meta = turn.meta;
  if (!meta) return '';
  const parts = [`${meta.promptTokens.toLocaleString('en-US')} / ${meta.maxContext.toLocaleString('en-US')} tokens of context`];
  parts.push(`${meta.contextFiles} ${meta.contextFiles === 1 ? 'file' : 'files'}`);
  if (meta.reusedTokens > 0) parts.push(`${meta.reusedTokens.toLocaleString('en-US')} cached`);
  if (meta.attention) {
    const name = ATTENTION_NAMES[meta.attention.mode];
    parts.push(meta.attention.mode === 'full' ? name : `${name}, ${Math.round(meta.attention.attendedFraction * 100)}% attended`);
  }
  if (meta.tokens > 0 && meta.decodeMs > 0) parts.push(`${Math.round((meta.tokens * 1000) / meta.decodeMs)} tokens/s`);
  return parts.join(' · ');
}

function renderTurn(turn: Turn, isLast: boolean): HTMLElement {
  const article = element('article', `turn ${turn.role} ${turn.status}`);
  article.dataset.turn = turn.id;
  const header = element('div', 'turn-header');
  header.append(element('span', 'who', turn.role === 'user' ? 'You' : 'Tidal'));
  if (turn.role === 'assistant' && turn.status === 'streaming') header.append(element('span', 'badge live', 'answering'));
  if (turn.status === 'stopped') header.append(element('span', 'badge', 'stopped'));
  article.append(header);

  if (turn.role === 'user') {
    article.append(element('div', 'body plain', turn.text));
    if (turn.attachments?.length) {
      const list = element('div', 'chips');
      for (const path of turn.attachments) list.append(element('span', 'chip', attachmentLabel(path)));
      article.append(list);
    }
    return article;
  }
  const body = element('div', 'body markdown');
  if (turn.text.length > 0) {
    const rendered = renderMarkdown(turn.text);
    body.innerHTML = rendered.html; // markdown-it output: raw HTML escaped, links checked
    codeBlocks.set(turn.id, rendered.codeBlocks);
    // A block still being written: Copy shows what is there, but Insert, New file and Apply
    // would put half of it into a file; they wait for the block's closing fence.
    if (turn.status === 'streaming' && rendered.codeBlocks.length > 0 && endsInOpenFence(turn.text)) {
      const last = rendered.codeBlocks.length - 1;
      body.querySelectorAll<HTMLButtonElement>(`button.code-action[data-block="${last}"]:not([data-action="copy"])`).forEach((button) => {
        button.disabled = true;
        button.title = `${button.title} (once the block is complete)`;
      });
    }
  } else if (turn.status === 'streaming') {
    body.append(element('span', 'thinking', 'Reading the repository…'));
  }
  article.append(body);
  if (turn.status === 'error') {
    const failed = element('div', 'error-text', turn.error ?? 'The answer failed.');
    // Asking again fails the same way until the model is changed: offer that instead of Regenerate.
    if (turn.canRetry === false) {
      failed.append(' ', commandButton('Select Model', 'selectModel', 'Choose a model that can answer (Tidal: Select Model)'));
    }
    article.append(failed);
  }
  const marker = stopMarker(turn);
  if (marker) {
    const note = element('div', 'stop-note', marker);
    note.setAttribute('role', 'note');
    if (offersContinue(turn, isLast)) {
      note.append(' ', commandButton('Continue', 'continue', 'Go on with this answer where it stopped'));
    }
    article.append(note);
  }
  if (turn.meta?.cutToFit?.length) article.append(element('div', 'meta cut-note', `Attachments cut to fit the context: ${turn.meta.cutToFit.join('; ')}`));
  const used = turn.meta?.contextPaths;
  if (used && used.length > 0) article.append(usedFiles(used));
  const footer = element('div', 'turn-footer');
  const meta = describeMeta(turn);
  if (meta) footer.append(element('span', 'meta', meta));
  if (offersRegenerate(turn, isLast)) {
    footer.append(commandButton('Regenerate', 'regenerate', 'Answer the last question again'));
  }
  if (footer.childElementCount > 0) article.append(footer);
  return article;
}

/** A link-styled button of the answer that sends `command` to the extension (the click handler below). */
function commandButton(label: string, command: 'regenerate' | 'continue' | 'selectModel', title: string): HTMLButtonElement {
  const button = element('button', 'link-button', label);
  button.type = 'button';
  button.dataset.command = command;
  button.title = title;
  return button;
}

/** "Used N files": the repository files in the answer's prompt, each a button that opens it. */
function usedFiles(paths: string[]): HTMLElement {
  const details = element('details', 'used-files');
  details.append(element('summary', undefined, `Used ${paths.length} ${paths.length === 1 ? 'file' : 'files'}`));
  const list = element('ul');
  for (const path of paths) {
    const open = element('button', 'link-button file-link', path);
    open.type = 'button';
    open.dataset.path = path;
    open.title = `Open ${path}`;
    const item = element('li');
    item.append(open);
    list.append(item);
  }
  details.append(list);
  return details;
}

let reportTimer: ReturnType<typeof setTimeout> | undefined;
function report(): void {
  clearTimeout(reportTimer);
  reportTimer = setTimeout(() => {
    send({
      type: 'rendered',
      turns: turns.map((turn) => ({ role: turn.role, text: turn.text })),
      visibleText: messages.innerText,
      draft: input.value,
      codeButtons: lastAnswerCodeButtons(),
    });
  }, 50);
}

/** The last answer's code-block buttons as drawn (at most MAX_CODE_BUTTONS). */
function lastAnswerCodeButtons(): CodeButtonState[] {
  const answers = messages.querySelectorAll<HTMLElement>('article.turn.assistant');
  const buttons = answers[answers.length - 1]?.querySelectorAll<HTMLButtonElement>('button.code-action') ?? [];
  const states: CodeButtonState[] = [];
  for (const button of Array.from(buttons).slice(0, MAX_CODE_BUTTONS)) {
    const action = button.dataset.action;
    if (action === 'copy' || action === 'insert' || action === 'newFile' || action === 'apply') {
      states.push({ block: Number(button.dataset.block), action, disabled: button.disabled });
    }
  }
  return states;
}

function renderAll(): void {
  clearTimeout(pendingRender);
  pendingRender = undefined;
  codeBlocks.clear();
  Array.from(messages.querySelectorAll('article.turn')).forEach((node) => node.remove());
  empty.hidden = turns.length > 0;
  const lastAssistant = turns.map((turn) => turn.role).lastIndexOf('assistant');
  turns.forEach((turn, index) => messages.append(renderTurn(turn, index === lastAssistant && index === turns.length - 1)));
  messages.scrollTop = messages.scrollHeight;
  report();
}

function replaceTurn(turn: Turn): void {
  const index = turns.findIndex((existing) => existing.id === turn.id);
  if (index >= 0) turns[index] = turn;
  else turns.push(turn);
  renderAll();
}

// Streaming: text arrives in small chunks; the answer is re-rendered at most every 40 ms.
let pendingRender: ReturnType<typeof setTimeout> | undefined;
function appendDelta(id: string, text: string): void {
  const turn = turns.find((existing) => existing.id === id);
  if (!turn) return;
  turn.text += text;
  if (pendingRender) return;
  pendingRender = setTimeout(() => {
    pendingRender = undefined;
    // The turn as it is now: a finished turn may have replaced the streaming one meanwhile.
    const current = turns.find((existing) => existing.id === id);
    if (!current || current.status !== 'streaming') return;
    const node = messages.querySelector(`article[data-turn="${CSS.escape(id)}"]`);
    const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    if (node) node.replaceWith(renderTurn(current, false));
    if (atBottom) messages.scrollTop = messages.scrollHeight;
    report();
  }, 40);
}

// The one live region: the start and end of an answer and errors (src/core/chat/announcements.ts).
// Cleared first, so that the same words said twice are read twice.
let announceTimer: ReturnType<typeof setTimeout> | undefined;
function announce(text: string): void {
  clearTimeout(announceTimer);
  announcer.textContent = '';
  announceTimer = setTimeout(() => (announcer.textContent = text), 50);
}

/** The header's model button: the model's name, then what the engine says about it (both wrap). */
function showEngine(summary: string): void {
  const [name, ...details] = summary.split(' · ');
  modelName.textContent = name;
  modelDetail.textContent = details.join(' · ');
  modelDetail.hidden = details.length === 0;
  modelButton.title = `${summary}\nSelect Model`;
  modelButton.setAttribute('aria-label', `Model: ${summary}. Select Model`);
}

function setBusy(value: boolean, text?: string): void {
  busy = value;
  sendButton.hidden = value;
  stopButton.hidden = !value;
  status.textContent = value ? (text ?? 'Answering…') : '';
  status.hidden = !value;
}

function renderChips(): void {
  chips.replaceChildren();
  chips.hidden = attachments.length === 0;
  for (const path of attachments) {
    const label = attachmentLabel(path);
    const chip = element('span', 'chip removable');
    chip.dataset.attachment = path;
    chip.title = path;
    chip.append(element('span', undefined, label));
    const remove = element('button', 'chip-remove', '×');
    remove.type = 'button';
    remove.title = `Remove ${label}`;
    remove.setAttribute('aria-label', `Remove ${label}`);
    remove.addEventListener('click', () => {
      attachments = attachments.filter((other) => other !== path);
      renderChips();
      input.focus();
    });
    chip.append(remove);
    chips.append(chip);
  }
  reportComposer();
}

/** Tells the extension what the composer offers and holds (the tests' API reads it). */
function reportComposer(): void {
  send({ type: 'chips', attachments, ...(mention ? { offered: mention.items.map((item) => item.id) } : {}) });
}

// `#` or `@` completion: workspace paths (asked of the extension once per mention typed) and
// the editor's selection, problems and git diff; the one picked becomes a chip.
let workspacePaths: string[] | undefined;
let workspacePathsAsked = false;
let mention: { query: MentionQuery; items: MentionCandidate[]; active: number } | undefined;

function updateMention(): void {
  const query = input.selectionStart === input.selectionEnd ? mentionQueryAt(input.value, input.selectionStart) : undefined;
  if (!query) return closeMention();
  if (!mention) {
    workspacePaths = undefined;
    workspacePathsAsked = false;
  }
  if (!workspacePathsAsked) {
    workspacePathsAsked = true;
    send({ type: 'listFiles' });
  }
  const items = mentionCandidates(query.query, workspacePaths ?? []).filter((item) => !attachments.includes(item.id));
  mention = { query, items, active: Math.min(mention?.active ?? 0, Math.max(0, items.length - 1)) };
  renderMention();
}

function closeMention(): void {
  const wasOpen = mention !== undefined;
  mention = undefined;
  if (wasOpen) reportComposer();
  mentionList.hidden = true;
  mentionList.replaceChildren();
  input.removeAttribute('aria-activedescendant');
}

function renderMention(): void {
  if (!mention) return;
  mentionList.replaceChildren();
  mentionList.hidden = mention.items.length === 0;
  mention.items.forEach((item, index) => {
    const option = element('li', index === mention!.active ? 'mention active' : 'mention', item.label);
    option.id = `mention-${index}`;
    option.setAttribute('role', 'option');
    option.setAttribute('aria-selected', String(index === mention!.active));
    option.addEventListener('mousedown', (event) => event.preventDefault()); // the input keeps the focus
    option.addEventListener('click', () => pickMention(index));
    mentionList.append(option);
  });
  if (mention.items.length > 0) input.setAttribute('aria-activedescendant', `mention-${mention.active}`);
  mentionList.querySelector('.active')?.scrollIntoView({ block: 'nearest' });
  reportComposer();
}

function pickMention(index: number): void {
  const item = mention?.items[index];
  if (!mention || !item) return;
  // The typed `#query` gives way to the chip.
  const cursor = input.selectionStart;
  input.value = input.value.slice(0, mention.query.start) + input.value.slice(cursor);
  input.setSelectionRange(mention.query.start, mention.query.start);
  closeMention();
  attachments = [...new Set([...attachments, item.id])];
  renderChips();
  input.focus();
}

input.addEventListener('input', updateMention);
input.addEventListener('blur', closeMention);
input.addEventListener('keydown', (event) => {
  if (!mention || mention.items.length === 0) return;
  const moves: Record<string, number> = { ArrowDown: 1, ArrowUp: -1 };
  if (event.key in moves) {
    mention.active = (mention.active + moves[event.key] + mention.items.length) % mention.items.length;
    renderMention();
  } else if ((event.key === 'Enter' || event.key === 'Tab') && !event.shiftKey && !event.isComposing) {
    pickMention(mention.active);
  } else if (event.key === 'Escape') {
    closeMention();
  } else return;
  // Handled here: not a new line, not a send, not a focus move.
  event.preventDefault();
  event.stopImmediatePropagation();
});

function receive(message: ChatToPanel): void {
  switch (message.type) {
    case 'engine':
      showEngine(message.summary);
      return;
    case 'conversation':
      turns = message.turns;
      setBusy(message.busy);
      renderAll();
      return;
    case 'turn': {
      const before = turns.find((existing) => existing.id === message.turn.id);
      const isLast = !before || turns.at(-1)?.id === message.turn.id;
      const said = turnAnnouncement(before && { ...before }, message.turn, isLast);
      replaceTurn(message.turn);
      if (said) announce(said);
      return;
    }
    case 'delta':
      appendDelta(message.id, message.text);
      return;
    case 'busy':
      setBusy(message.busy, message.status);
      return;
    case 'attach':
      attachments = [...new Set([...attachments, ...message.paths])];
      renderChips();
      return;
    case 'files':
      workspacePaths = message.paths;
      if (mention) updateMention();
      return;
    case 'composer':
      if (message.text !== undefined) {
        input.value = message.text;
        input.setSelectionRange(input.value.length, input.value.length);
        input.dispatchEvent(new Event('input'));
      }
      if (message.press !== undefined) input.dispatchEvent(new KeyboardEvent('keydown', { key: message.press, bubbles: true, cancelable: true }));
      if (message.remove !== undefined) chips.querySelector<HTMLElement>(`[data-attachment="${CSS.escape(message.remove)}"] .chip-remove`)?.click();
      if (message.submit) form.requestSubmit();
      return;
    case 'codeButton': {
      const answers = messages.querySelectorAll<HTMLElement>('article.turn.assistant');
      const button = answers[answers.length - 1]?.querySelector<HTMLButtonElement>(
        `button.code-action[data-action="${message.action}"][data-block="${message.block}"]`,
      );
      button?.click();
      return;
    }
    case 'draft':
      input.value = input.value.trim() ? `${input.value.trimEnd()}\n\n${message.text}` : message.text;
      input.focus();
      report();
      return;
    case 'notice':
      status.hidden = false;
      status.textContent = message.text;
      announce(message.text);
      return;
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || busy) return;
  send({ type: 'ask', text, attachments });
  input.value = '';
  attachments = [];
  renderChips();
});
input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});
stopButton.addEventListener('click', () => send({ type: 'stop' }));
attachButton.addEventListener('click', () => send({ type: 'pickAttachment' }));
modelButton.addEventListener('click', () => send({ type: 'selectModel' }));
messages.addEventListener('click', (event) => {
  const target = (event.target as HTMLElement).closest('button');
  if (!target) return;
  if (target.dataset.command === 'regenerate' || target.dataset.command === 'continue' || target.dataset.command === 'selectModel') {
    send({ type: target.dataset.command });
    return;
  }
  if (target.dataset.path !== undefined) {
    send({ type: 'openFile', path: target.dataset.path });
    return;
  }
  const action = target.dataset.action;
  const turnId = target.closest<HTMLElement>('article.turn')?.dataset.turn;
  const block = turnId ? codeBlocks.get(turnId)?.[Number(target.dataset.block)] : undefined;
  if (!block || (action !== 'copy' && action !== 'insert' && action !== 'newFile' && action !== 'apply')) return;
  if (action === 'apply') send({ type: 'codeAction', action, code: block.code, language: block.language, info: block.info, lineBefore: block.lineBefore });
  else send({ type: 'codeAction', action, code: block.code, language: block.language });
  if (action === 'copy') {
    // The check mark and "Copied" for a moment, in the tooltip and for a screen reader.
    const label = target.querySelector('.label');
    const title = target.title;
    target.classList.add('done');
    target.title = 'Copied';
    if (label) label.textContent = 'Copied';
    announce('Copied to the clipboard.');
    setTimeout(() => {
      target.classList.remove('done');
      target.title = title;
      if (label) label.textContent = 'Copy';
    }, 1200);
  }
});

window.addEventListener('message', (event) => {
  const message = parseChatMessage(event.data);
  if (message) receive(message);
});

setBusy(false);
renderChips();
send({ type: 'ready' });
