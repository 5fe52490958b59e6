// The panel's Markdown: raw HTML never becomes markup, unsafe links and images are not
// rendered, fenced code is highlighted and kept exactly for the code-block buttons.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createMarkdownRenderer, endsInOpenFence, highlightCode, isSafeLink } from '../../../src/vscode/webview/markdown';
import { MAX_INFO_CHARS, MAX_LINE_BEFORE_CHARS } from '../../../src/core/chat/chatMessages';

const render = createMarkdownRenderer();

// Every tag name in the HTML, to compare with the tags the renderer is allowed to produce.
const tags = (html: string) => [...html.matchAll(/<([a-zA-Z][a-zA-Z0-9]*)[\s>]/g)].map((m) => m[1].toLowerCase());
const ALLOWED = new Set([
  'p',
  'a',
  'em',
  'strong',
  'code',
  'pre',
  'ul',
  'ol',
  'li',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'blockquote',
  'table',
  'thead',
  'tbody',
  'tr',
  'th',
  'td',
  'hr',
  'br',
  's',
  'div',
  'span',
  'button',
]);

test('raw HTML in an answer is shown as text, never as markup', () => {
  const poisoned = [
    '<script>alert(1)</script>',
    '<img src=x onerror="alert(1)">',
    'text <iframe src="https://example.com"></iframe>',
    '<a href="javascript:alert(1)">x</a>',
    '<style>body{display:none}</style>',
    '```js\n</code></pre><script>alert(1)</script>\n```',
    '`<b>inline</b>`',
  ];
  for (const source of poisoned) {
    const { html } = render(source);
    for (const tag of tags(html)) assert.ok(ALLOWED.has(tag), `tag <${tag}> from ${JSON.stringify(source)}: ${html}`);
    assert.doesNotMatch(html, /<script|<img|<iframe|<style/i, html);
  }
  assert.match(render('<script>alert(1)</script>').html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
});

test('links: http(s) and mailto are links, other schemes and images are not', () => {
  assert.match(render('[docs](https://example.com/a?b=1)').html, /<a href="https:\/\/example\.com\/a\?b=1" rel="noopener noreferrer">docs<\/a>/);
  assert.match(render('[mail](mailto:a@b.c)').html, /<a href="mailto:a@b\.c"/);
  for (const url of [
    'javascript:alert(1)',
    'JAVASCRIPT:alert(1)',
    'data:text/html,<b>x</b>',
    'vbscript:x',
    'file:///etc/passwd',
    'command:workbench.action.quit',
    'vscode://x',
  ]) {
    assert.equal(isSafeLink(url), false, url);
    assert.doesNotMatch(render(`[x](${url})`).html, /<a /, url);
  }
  assert.doesNotMatch(render('![pic](https://example.com/p.png)').html, /<img/);
});

test('fenced code: highlighted, with its exact source kept for the buttons', () => {
  const code = 'def select_top_k(scores, k):\n    return sorted(scores)[-k:]  # <top>\n';
  const { html, codeBlocks } = render(`Here:\n\n\`\`\`python\n${code}\`\`\`\n\nand\n\n\`\`\`\nplain & <text>\n\`\`\`\n`);
  assert.deepEqual(codeBlocks, [
    { language: 'python', code, info: 'python', lineBefore: 'Here:' },
    { language: '', code: 'plain & <text>\n', info: '', lineBefore: 'and' },
  ]);
  assert.match(html, /<code class="hljs language-python"><span class="hljs-keyword">def<\/span>/);
  assert.match(html, /# &lt;top&gt;/);
  assert.match(html, /plain &amp; &lt;text&gt;/);
  for (const action of ['copy', 'insert', 'newFile', 'apply']) {
    assert.match(html, new RegExp(`data-action="${action}" data-block="0"`));
    assert.match(html, new RegExp(`data-action="${action}" data-block="1"`));
  }
  // Unknown languages fall back to escaped text; the language label is escaped too.
  assert.equal(highlightCode('<x>', 'no-such-language'), '&lt;x&gt;');
  // Only a word that looks like a language name labels the block; anything else reads 'text'.
  assert.match(render('```"><b>\nx\n```').html, /<span class="code-language">text<\/span>/);
  assert.deepEqual(render('```{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\nx\n```').codeBlocks, [
    { language: '', code: 'x\n', info: '{{{{{{{{{{{{{{{{{{{{{{{{{{{{{', lineBefore: '' },
  ]);
  // A fence with text only on its opening line shows that text rather than an empty box.
  const bare = render('```{{{ <b>');
  assert.deepEqual(bare.codeBlocks, [{ language: '', code: '{{{ <b>', info: '{{{ <b>', lineBefore: '' }]);
  assert.match(bare.html, /<code class="hljs">\{\{\{ &lt;b&gt;<\/code>/);
  assert.equal(render('```c++ title\nx\n```').codeBlocks[0].language, 'c++');
});

test('an answer cut mid-stream (an open fence) still renders, and each render starts its own block list', () => {
  const open = render('Start\n\n```ts\nconst a = 1;');
  assert.equal(open.codeBlocks.length, 1);
  assert.equal(open.codeBlocks[0].code, 'const a = 1;');
  assert.equal(render('no code').codeBlocks.length, 0);
});

// The attributes of the Apply button of block `index` in `html`, unescaped as a browser would.
function applyButton(html: string, index: number): { info: string; lineBefore: string; title: string; raw: string } {
  const raw = new RegExp(
    `<button [^>]*data-action="apply" data-block="${index}"[^>]*><span class="glyph" aria-hidden="true"></span><span class="label">Apply</span></button>`,
  ).exec(html)?.[0];
  assert.ok(raw, `no Apply button for block ${index}: ${html}`);
  const attribute = (name: string) => {
    const value = new RegExp(` ${name}="([^"]*)"`).exec(raw)?.[1];
    assert.ok(value !== undefined, `no ${name} on ${raw}`);
    return value
      .replace(/&quot;/g, '"')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&');
  };
  return { info: attribute('data-info'), lineBefore: attribute('data-line-before'), title: attribute('title'), raw };
}

test('Apply: each code block has one, carrying its fence info and the line above it (what names the target file)', () => {
  const source = [
    'Two changes.',
    '',
    'In `src/kvCache.ts`:',
    '',
    '```ts',
    'trim(position: number): void {}',
    '```',
    '',
    '```ts src/other.ts',
    'export const a = 1;',
    '```',
    '',
    '- and in a list, after text on the line right above:',
    '  ```python',
    '  print(1)',
    '  ```',
  ].join('\n');
  const { html, codeBlocks } = render(source);
  assert.equal(codeBlocks.length, 3);
  assert.equal((html.match(/data-action="apply"/g) ?? []).length, 3);
  assert.deepEqual(
    codeBlocks.map(({ info, lineBefore }) => ({ info, lineBefore })),
    [
      { info: 'ts', lineBefore: 'In `src/kvCache.ts`:' },
      { info: 'ts src/other.ts', lineBefore: '```' },
      { info: 'python', lineBefore: '- and in a list, after text on the line right above:' },
    ],
  );
  for (const [index, block] of codeBlocks.entries()) {
    const button = applyButton(html, index);
    assert.equal(button.info, block.info);
    assert.equal(button.lineBefore, block.lineBefore);
  }
  // The title says where it goes, as tidal.applyCodeBlock will find it.
  assert.equal(applyButton(html, 0).title, 'Apply to src/kvCache.ts, then review the change hunk by hunk');
  assert.equal(applyButton(html, 1).title, 'Apply to src/other.ts, then review the change hunk by hunk');
  assert.equal(applyButton(html, 2).title, 'Apply to the active editor, then review the change hunk by hunk');
});

test('Apply: the info string and the line above are escaped in its attributes, whatever they hold', () => {
  const hostile = [
    { info: 'ts" onclick="alert(1)', lineBefore: 'See `a.ts`"><img src=x onerror=alert(1)>' },
    { info: "ts title='x' <script>&amp;", lineBefore: '<script>alert("x")</script> & \'quoted\'' },
    { info: 'ts src/a&b.ts', lineBefore: '">' },
  ];
  for (const { info, lineBefore } of hostile) {
    const { html, codeBlocks } = render(`${lineBefore}\n\n\`\`\`${info}\ncode\n\`\`\`\n`);
    assert.equal(codeBlocks.length, 1, html);
    const button = applyButton(html, 0);
    // The start tag is name="value" pairs only, and the names are the button's own (no value
    // ended early to start an attribute such as onclick).
    const startTag = button.raw.slice(0, button.raw.indexOf('><span class="glyph"') + 1);
    assert.match(startTag, /^<button(?: [\w-]+="[^"<>]*")*>$/, startTag);
    const names = [...startTag.matchAll(/ ([\w-]+)="/g)].map((match) => match[1]);
    assert.deepEqual(names, ['type', 'class', 'data-action', 'data-block', 'data-info', 'data-line-before', 'title'], startTag);
    assert.equal(button.info, info.trim());
    assert.equal(button.lineBefore, codeBlocks[0].lineBefore);
    for (const tag of tags(html)) assert.ok(ALLOWED.has(tag), `tag <${tag}> from ${JSON.stringify(info)}: ${html}`);
  }
});

test('Apply: a very long info string or line above is cut to what a panel message may carry', () => {
  const { codeBlocks } = render(`${'w'.repeat(10_000)}\n\n\`\`\`ts ${'x'.repeat(5000)}\ncode\n\`\`\`\n`);
  assert.equal(codeBlocks[0].info.length, MAX_INFO_CHARS);
  assert.equal(codeBlocks[0].lineBefore.length, MAX_LINE_BEFORE_CHARS);
});

test('code block buttons: icons with a label for screen readers and a tooltip, in the order Copy, Insert, New File, Apply', () => {
  const { html } = render('In `src/a.ts`:\n\n```ts\nconst a = 1;\n```\n');
  const buttons = [
    ...html.matchAll(
      /<button [^>]*data-action="(\w+)"[^>]* title="([^"]*)"><span class="glyph" aria-hidden="true"><\/span><span class="label">([^<]+)<\/span><\/button>/g,
    ),
  ].map(([, action, title, label]) => ({ action, title, label }));
  assert.deepEqual(buttons, [
    { action: 'copy', title: 'Copy to the clipboard', label: 'Copy' },
    { action: 'insert', title: 'Insert at the cursor in the editor', label: 'Insert at Cursor' },
    { action: 'newFile', title: 'Open in a new untitled file', label: 'New File' },
    { action: 'apply', title: 'Apply to src/a.ts, then review the change hunk by hunk', label: 'Apply' },
  ]);
});

test('a streaming answer ends inside a code block until its closing fence arrives', () => {
  assert.equal(endsInOpenFence(''), false);
  assert.equal(endsInOpenFence('Use this:\n\n```ts\nconst a = 1;'), true);
  assert.equal(endsInOpenFence('Use this:\n\n```ts\nconst a = 1;\n``'), true, 'two backticks do not close it');
  assert.equal(endsInOpenFence('Use this:\n\n```ts\nconst a = 1;\n```'), false);
  assert.equal(endsInOpenFence('````md\n```ts\nx\n```\n'), true, 'a shorter fence inside a longer one does not close it');
  assert.equal(endsInOpenFence('````md\n```ts\nx\n```\n````\nafter'), false);
  assert.equal(endsInOpenFence('~~~\ncode\n```'), true, 'a fence closes only with its own character');
  assert.equal(endsInOpenFence('~~~\ncode\n~~~~'), false);
  assert.equal(endsInOpenFence('```ts\ncode\n``` trailing'), true, 'a closing fence has nothing after it');
  assert.equal(endsInOpenFence('    ```\nindented code, not a fence'), false);
  assert.equal(endsInOpenFence('``` `inline` ```'), false, 'an info string with a backtick is no fence');
  // Each prefix of a finished answer: open exactly while inside its one block.
  const answer = 'Here:\n```py\nprint(1)\n```\nDone.';
  const close = answer.indexOf('```\nDone');
  for (let end = 0; end <= answer.length; end++) {
    const prefix = answer.slice(0, end);
    // Open from the opening fence's third backtick ("```" alone opens a block) to the closing one's.
    const inside = end >= answer.indexOf('```py') + 3 && end < close + 3;
    assert.equal(endsInOpenFence(prefix), inside, JSON.stringify(prefix));
  }
});
