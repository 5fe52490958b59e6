// Markdown of the chat's answers to HTML, for the panel: markdown-it with raw HTML off (it is
// shown as text), links only to http(s) and mailto, no images (nothing remote is ever
// loaded), and fenced code highlighted by highlight.js inside a block with Copy / Insert /
// New File / Apply buttons (icons, each with a label for screen readers). Apply edits the file the block names (its fence info or the line
// above it, applyTarget.ts), so the block keeps both. Runs in the webview bundle and, for the
// tests, in Node.
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import csharp from 'highlight.js/lib/languages/csharp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import markdown from 'highlight.js/lib/languages/markdown';
import plaintext from 'highlight.js/lib/languages/plaintext';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import shell from 'highlight.js/lib/languages/shell';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import MarkdownIt from 'markdown-it';

import { codeBlockPath } from '../../core/edit/applyTarget';
import { MAX_INFO_CHARS, MAX_LINE_BEFORE_CHARS } from '../../core/chat/chatMessages';

const LANGUAGES = { bash, c, cpp, csharp, css, diff, go, java, javascript, json, markdown, plaintext, python, rust, shell, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);

export interface CodeBlock {
  language: string; // as written after the fence ('' when none)
  code: string;
  /** The fence's whole info string ("ts src/a.ts"), at most MAX_INFO_CHARS. */
  info: string;
  /** The last non-blank line of the answer above the fence ("In `src/a.ts`:"), trimmed, at most MAX_LINE_BEFORE_CHARS. */
  lineBefore: string;
}

export interface RenderedMarkdown {
  html: string;
  codeBlocks: CodeBlock[];
}

const SAFE_LINK = /^(https?:|mailto:)/i;

export function isSafeLink(url: string): boolean {
  return SAFE_LINK.test(url.trim());
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** highlight.js markup for `code` (escaped), or the escaped code when the language is unknown. */
export function highlightCode(code: string, language: string): string {
  const name = language.toLowerCase();
  if (name && hljs.getLanguage(name)) return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
  return escapeHtml(code);
}

/** The language named after a fence: its first word when it looks like one, else ''. */
export function fenceLanguage(info: string): string {
  const word = info.trim().split(/\s+/)[0] ?? '';
  return /^[\w+#.-]{1,24}$/.test(word) ? word : '';
}

/** The last non-blank line above line `fenceLine` of the source, trimmed ('' when none). */
function lineAbove(lines: string[], fenceLine: number): string {
  for (let line = Math.min(fenceLine, lines.length) - 1; line >= 0; line -= 1) {
    if (lines[line].trim() !== '') return lines[line].trim();
  }
  return '';
}

export function createMarkdownRenderer(): (source: string) => RenderedMarkdown {
  const md = new MarkdownIt({ html: false, linkify: true, breaks: false, typographer: false });
  md.disable('image');
  md.validateLink = isSafeLink;
  let blocks: CodeBlock[] = [];
  let sourceLines: string[] = [];
  md.renderer.rules.fence = (tokens, index) => {
    const token = tokens[index];
    const language = fenceLanguage(token.info);
    // A fence whose only text is on its opening line (e.g. "```{{{"): show that text as the code.
    const content = token.content === '' && language === '' ? token.info.trim() : token.content;
    const block = blocks.length;
    const info = token.info.trim().slice(0, MAX_INFO_CHARS);
    const lineBefore = lineAbove(sourceLines, token.map?.[0] ?? 0).slice(0, MAX_LINE_BEFORE_CHARS);
    blocks.push({ language, code: content, info, lineBefore });
    const known = language && hljs.getLanguage(language.toLowerCase()) ? language.toLowerCase() : '';
    // Icon buttons (media/icons/, drawn by CSS); the label is their accessible name, the title their tooltip.
    const button = (action: string, label: string, title: string, data = '') =>
      `<button type="button" class="code-action" data-action="${action}" data-block="${block}"${data} title="${escapeHtml(title)}">` +
      `<span class="glyph" aria-hidden="true"></span><span class="label">${label}</span></button>`;
    const target = codeBlockPath(info, lineBefore);
    return (
      `<div class="code-block" data-block="${block}">` +
      `<div class="code-toolbar"><span class="code-language">${escapeHtml(language || 'text')}</span>` +
      button('copy', 'Copy', 'Copy to the clipboard') +
      button('insert', 'Insert at Cursor', 'Insert at the cursor in the editor') +
      button('newFile', 'New File', 'Open in a new untitled file') +
      button(
        'apply',
        'Apply',
        `Apply to ${target ?? 'the active editor'}, then review the change hunk by hunk`,
        ` data-info="${escapeHtml(info)}" data-line-before="${escapeHtml(lineBefore)}"`,
      ) +
      `</div><pre><code class="hljs${known ? ` language-${known}` : ''}">${highlightCode(content, known)}</code></pre></div>\n`
    );
  };
  // Links open outside the webview (the panel asks VS Code to open them); mark them for it.
  const defaultLinkOpen = md.renderer.rules.link_open ?? ((tokens, index, options, _env, self) => self.renderToken(tokens, index, options));
  md.renderer.rules.link_open = (tokens, index, options, env, self) => {
    tokens[index].attrSet('rel', 'noopener noreferrer');
    return defaultLinkOpen(tokens, index, options, env, self);
  };
  return (source) => {
    blocks = [];
    sourceLines = source.split(/\r?\n/);
    const html = md.render(source);
    return { html, codeBlocks: blocks };
  };
}

/**
 * Whether `text` ends inside a fenced code block (an opening fence not yet closed), as a
 * streaming answer does while a block is still being written. CommonMark's rule: a fence is 3
 * or more backticks or tildes after at most 3 spaces; it is closed by a fence of the same
 * character, at least as long, with nothing after it.
 */
export function endsInOpenFence(text: string): boolean {
  let open: { char: string; length: number } | undefined;
  for (const line of text.split('\n')) {
    const fence = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
    if (!fence) continue;
    const [, marks, rest] = fence;
    if (!open) {
      if (marks[0] === '`' && rest.includes('`')) continue; // not a fence: an info string may not hold a backtick
      open = { char: marks[0], length: marks.length };
    } else if (marks[0] === open.char && marks.length >= open.length && rest.trim() === '') {
      open = undefined;
    }
  }
  return open !== undefined;
}
