// Records the embedded model's tokenizer encodings (through @huggingface/tokenizers, the
// tokenizer the extension and `tidal-eval` use) of fixed strings and of excerpts of this
// repository's files: test/fixtures/shipped-model/tokenizer_cases.json, which
// test/unit/evalTokenizer.test.ts holds the tokenizer to, so that an upgrade of the library
// that changes the ids (and with them the eval prompts) is noticed. Record again only on purpose.
//
//   node bench/eval/record_tokenizer_cases.mjs test/fixtures/shipped-model/tokenizer_cases.json [--all-files]
//
// --all-files encodes every whole file of the eval corpus instead of excerpts (a larger
// one-off check, not committed).
import { readFileSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

const [out, mode] = process.argv.slice(2);
const tokenizer = new Tokenizer(JSON.parse(readFileSync('models/tidal-code-mini/tokenizer.json', 'utf8')), {});
const encode = (text) => tokenizer.encode(text, { add_special_tokens: false }).ids;

const strings = [
  '', ' ', '  ', '\n', '\n\n\n', ' \n ', '\t\t x', 'a  b   c', 'x   \n  y', 'trailing   ', '\r\n\r\n  \r\n',
  "don't we'll I'M they'RE it's 'd 'll 've", "'s'S'x", '12345678 + 0.5e-3', 'x=1;y=22;z=333',
  'héllo wörld — naïve café', 'Привет мир', '日本語のテキスト', 'emoji 🌊🎉 done', 'e\u0301 combining',
  '\u00a0nbsp\u2003em space\u3000ideographic', '①②③ ⅫⅣ ٣٤٥', 'x\u0085y\u2028z', '#!/usr/bin/env node\n',
  '<|file_sep|>a.py\nprint(1)<|endoftext|>', '<|fim_prefix|>def f(<|fim_suffix|>)\n<|fim_middle|>',
  '    return {"key": value, \'other\': [1, 2]}\n', '!!!???...;;;\n\n', ' ,', ' -->\n', 'a\u200bb',
  'SECRET_KEY_KAZO = "1234567"\n', '#define PASSKEY_RIMU 98765\n', 'printf("%d", PASSKEY_RIMU);  // ->',
];

function walk(dir, found) {
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) walk(full, found);
    else if (/\.(ts|mjs|js|cpp|h|cu|py|md)$/.test(name)) found.push(full);
  }
  return found;
}
const files = walk('src', []).concat(walk('native/cli', []), walk('tools/train', []));
const cases = strings.map((text) => ({ text, ids: encode(text) }));
files.forEach((file, i) => {
  const text = readFileSync(file, 'utf8');
  if (mode === '--all-files') cases.push({ text, ids: encode(text) });
  else if (i % 7 === 0) {
    const start = Math.floor(text.length / 3);
    const excerpt = text.slice(start, start + 1500);
    cases.push({ text: excerpt, ids: encode(excerpt) });
  }
});
writeFileSync(out, JSON.stringify({ source: 'models/tidal-code-mini/tokenizer.json through @huggingface/tokenizers', cases }) + '\n');
console.log(`${cases.length} cases -> ${out}`);
