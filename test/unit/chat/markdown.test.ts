// The panel's Markdown: raw HTML never becomes markup, unsafe links and images are not
// rendered, fenced code is highlighted and kept exactly for the code-block buttons.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createMarkdownRenderer, highlightCode, isSafeLink } from '../../../src/chat/markdown';

const render = createMarkdownRenderer();

// Every tag name in the HTML, to compare with the tags the renderer is allowed to produce.
const tags = (html: string) => [...html.matchAll(/<([a-zA-Z][a-zA-Z0-9]*)[\s>]/g)].map((m) => m[1].toLowerCase());
const ALLOWED = new Set(['p', 'a', 'em', 'strong', 'code', 'pre', 'ul', 'ol', 'li', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'blockquote', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'hr', 'br', 's', 'div', 'span', 'button']);

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
  for (const url of ['javascript:alert(1)', 'JAVASCRIPT:alert(1)', 'data:text/html,<b>x</b>', 'vbscript:x', 'file:///etc/passwd', 'command:workbench.action.quit', 'vscode://x']) {
    assert.equal(isSafeLink(url), false, url);
    assert.doesNotMatch(render(`[x](${url})`).html, /<a /, url);
  }
  assert.doesNotMatch(render('![pic](https://example.com/p.png)').html, /<img/);
});

test('fenced code: highlighted, with its exact source kept for the buttons', () => {
  const code = 'def select_top_k(scores, k):\n    return sorted(scores)[-k:]  # <top>\n';
  const { html, codeBlocks } = render(`Here:\n\n\`\`\`python\n${code}\`\`\`\n\nand\n\n\`\`\`\nplain & <text>\n\`\`\`\n`);
  assert.deepEqual(codeBlocks, [
    { language: 'python', code },
    { language: '', code: 'plain & <text>\n' },
  ]);
  assert.match(html, /<code class="hljs language-python"><span class="hljs-keyword">def<\/span>/);
  assert.match(html, /# &lt;top&gt;/);
  assert.match(html, /plain &amp; &lt;text&gt;/);
  for (const action of ['copy', 'insert', 'newFile']) {
    assert.match(html, new RegExp(`data-action="${action}" data-block="0"`));
    assert.match(html, new RegExp(`data-action="${action}" data-block="1"`));
  }
  // Unknown languages fall back to escaped text; the language label is escaped too.
  assert.equal(highlightCode('<x>', 'no-such-language'), '&lt;x&gt;');
  // Only a word that looks like a language name labels the block; anything else reads 'text'.
  assert.match(render('```"><b>\nx\n```').html, /<span class="code-language">text<\/span>/);
  assert.deepEqual(render('```{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\nx\n```').codeBlocks, [{ language: '', code: 'x\n' }]);
  // A fence with text only on its opening line shows that text rather than an empty box.
  const bare = render('```{{{ <b>');
  assert.deepEqual(bare.codeBlocks, [{ language: '', code: '{{{ <b>' }]);
  assert.match(bare.html, /<code class="hljs">\{\{\{ &lt;b&gt;<\/code>/);
  assert.equal(render('```c++ title\nx\n```').codeBlocks[0].language, 'c++');
});

test('an answer cut mid-stream (an open fence) still renders, and each render starts its own block list', () => {
  const open = render('Start\n\n```ts\nconst a = 1;');
  assert.equal(open.codeBlocks.length, 1);
  assert.equal(open.codeBlocks[0].code, 'const a = 1;');
  assert.equal(render('no code').codeBlocks.length, 0);
});
