// Hostile model folders and files (reliability issue, cause 11): each is built on the fly from
// a committed fixture model in a temp folder, then loaded through the real addon (and through
// ModelSession.load where the tokenizer is involved). Every one must end in a clear
// ERR_TIDAL_MODEL error that names what is wrong, never in a crash or a silent load; and
// inspectModel, which reads only the headers, must report the same problem before any load.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { ModelSession } from '../../src/host/modelSession';
import { loadAddon } from '../../src/native/addon';
import { tokenizerForModel } from '../../src/core/tokenizer/modelTokenizer';
import { folderTensors, GgufEntry, ggufImage, qwen2FixtureMetadata } from '../unit/models/ggufImage';

const addon = loadAddon(path.resolve('dist'));
const FIXTURES = 'test/fixtures/models';
const TOKENIZER = 'test/fixtures/tokenizers/chatml-byte-bpe';
const scratch = mkdtempSync(path.join(os.tmpdir(), 'tidal-model-folders-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

let made = 0;
type Json = Record<string, any>;

// A copy of a fixture model folder (with the fixture tokenizer), edited by `edit`.
function folderOf(fixture: string, edit?: (dir: string) => void): string {
  const dir = path.join(scratch, `${fixture}-${made++}`);
  mkdirSync(dir);
  for (const name of readdirSync(path.join(FIXTURES, fixture))) copyFileSync(path.join(FIXTURES, fixture, name), path.join(dir, name));
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(TOKENIZER, name), path.join(dir, name));
  edit?.(dir);
  return dir;
}

function editJson(file: string, edit: (json: Json) => void): void {
  const json = JSON.parse(readFileSync(file, 'utf8')) as Json;
  edit(json);
  writeFileSync(file, JSON.stringify(json, null, 2));
}

// The parts of a single-file safetensors checkpoint, and writing them back (header as given).
function readSafetensors(file: string): { header: Json; data: Buffer } {
  const bytes = readFileSync(file);
  const length = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Json, data: bytes.subarray(8 + length) };
}
function writeSafetensors(file: string, header: Json, data: Buffer, claimedLength?: bigint): void {
  const text = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(claimedLength ?? BigInt(text.length));
  writeFileSync(file, Buffer.concat([length, text, data]));
}
function editSafetensors(dir: string, edit: (header: Json) => void): void {
  const file = path.join(dir, 'model.safetensors');
  const { header, data } = readSafetensors(file);
  edit(header);
  writeSafetensors(file, header, data);
}

async function assertLoadRefused(modelPath: string, pattern: RegExp): Promise<void> {
  const inspection = addon.inspectModel(modelPath);
  assert.ok(
    inspection.problems.some((p) => pattern.test(p.message)),
    `inspectModel(${modelPath}): ${JSON.stringify(inspection.problems)}`,
  );
  await assert.rejects(addon.loadModel(modelPath, { threads: 2 }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'ERR_TIDAL_MODEL', error.message);
    assert.match(error.message, pattern);
    return true;
  });
}

async function assertSessionRefused(modelDir: string, pattern: RegExp): Promise<void> {
  await assert.rejects(ModelSession.load(addon, { modelDir, options: { threads: 2 } }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'ERR_TIDAL_MODEL', error.message);
    assert.match(error.message, pattern);
    return true;
  });
}

// ---- weights that do not match their config ----

test('cause 11: num_hidden_layers 5 over 6-layer safetensors is refused, naming model.layers.5.*', async () => {
  const dir = folderOf('llama3-gqa-f32', (d) => editJson(path.join(d, 'config.json'), (c) => (c.num_hidden_layers = 5)));
  const pattern =
    /model\.layers\.5\.\* \(9 tensors\) are in the weights but not used by config\.json's 5 layers \(num_hidden_layers = 5\); the config does not match the weights/;
  await assertLoadRefused(dir, pattern);
  await assertSessionRefused(dir, pattern);
});

// A GGUF image of the qwen2 fixture (F32 tensors, the fixture tokenizer in its metadata).
function qwen2Gguf(name: string, editMetadata?: (m: Record<string, GgufEntry>) => void): string {
  const folder = path.join(FIXTURES, 'qwen2-tied-sharded-f32');
  const metadata = qwen2FixtureMetadata(folder, TOKENIZER, 'qwen2');
  editMetadata?.(metadata);
  const file = path.join(scratch, name);
  writeFileSync(file, ggufImage(metadata, folderTensors(folder)));
  return file;
}

test('cause 11: a GGUF whose block_count is below its blk.N tensors is refused, naming blk.5.*', async () => {
  // The same file with its true block_count loads.
  assert.deepEqual(addon.inspectModel(qwen2Gguf('intact.gguf')).problems, []);
  const intact = await addon.loadModel(qwen2Gguf('intact.gguf'), { threads: 2 });
  await intact.unload();
  const file = qwen2Gguf('five-of-six.gguf', (m) => (m['qwen2.block_count'] = { type: 'u32', value: 5 }));
  await assertLoadRefused(file, /blk\.5\.\* \(12 tensors\) are in the weights but not used by the GGUF metadata's 5 layers \(qwen2\.block_count = 5\)/);
});

// ---- tokenizers that do not fit the model ----

test('cause 11: a tokenizer with an empty vocabulary is refused, naming tokenizer.json', async () => {
  const dir = folderOf('qwen2-tied-sharded-f32', (d) =>
    editJson(path.join(d, 'tokenizer.json'), (t) => {
      t.model.vocab = {};
      t.model.merges = [];
    }),
  );
  await assertSessionRefused(dir, new RegExp(`tokenizer ${path.join(dir, 'tokenizer.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has an empty vocabulary`));
});

test('cause 11: token ids beyond the model vocab_size are refused (sparse ids, more tokens, bos/eos, FIM)', async () => {
  // Few tokens, but one id the 512-row embedding cannot hold.
  const sparse = folderOf('qwen2-tied-sharded-f32', (d) => editJson(path.join(d, 'tokenizer.json'), (t) => (t.model.vocab['zzzz'] = 9999)));
  await assertSessionRefused(sparse, /has 497 tokens, 1 of them with ids outside the model \('zzzz' = 9999\): the model's embedding holds only 512 token ids/);
  // More tokens than the model has.
  const larger = folderOf('qwen2-tied-sharded-f32', (d) =>
    editJson(path.join(d, 'tokenizer.json'), (t) => {
      for (let id = 505; id < 600; id++) t.model.vocab[`extra${id}`] = id;
    }),
  );
  await assertSessionRefused(larger, /88 of them with ids outside the model \('extra599' = 599, 'extra598' = 598, 'extra597' = 597 and 85 more\)/);
  // The end-of-turn token, and a FIM marker, past the embedding.
  const eos = folderOf('qwen2-tied-sharded-f32', (d) =>
    editJson(path.join(d, 'tokenizer.json'), (t) => (t.added_tokens.find((a: Json) => a.content === '<|im_end|>').id = 700)),
  );
  await assertSessionRefused(
    eos,
    /The eos_token '<\|im_end\|>' of the tokenizer .*tokenizer\.json has id 700, but the model's embedding holds only 512 token ids/,
  );
  const fim = folderOf('qwen2-tied-sharded-f32', (d) =>
    editJson(path.join(d, 'tokenizer.json'), (t) => (t.added_tokens.find((a: Json) => a.content === '<|fim_prefix|>').id = 600)),
  );
  await assertSessionRefused(fim, /special or added tokens outside the model \('<\|fim_prefix\|>' = 600\)/);
  // An EOS token tokenizer_config.json names that the vocabulary does not have.
  const missingEos = folderOf('qwen2-tied-sharded-f32', (d) => editJson(path.join(d, 'tokenizer_config.json'), (c) => (c.eos_token = '<|no_such_token|>')));
  await assertSessionRefused(missingEos, /The eos_token '<\|no_such_token\|>' of the tokenizer .*tokenizer\.json is not in its vocabulary/);
});

test('cause 11: a GGUF whose token list is longer than its embedding is refused by the tokenizer check', () => {
  const file = qwen2Gguf('long-token-list.gguf', (m) => {
    const tokens = (m['tokenizer.ggml.tokens'] as { value: string[] }).value;
    const types = (m['tokenizer.ggml.token_type'] as { value: number[] }).value;
    for (let id = tokens.length; id < 520; id++) (tokens.push(`[EXTRA${id}]`), types.push(1));
  });
  assert.throws(
    () => tokenizerForModel(file, undefined, addon),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_TIDAL_MODEL');
      assert.match(e.message, /long-token-list\.gguf has 520 tokens, 8 of them with ids outside the model .*holds only 512 token ids/);
      return true;
    },
  );
});

// ---- damaged weights and configs (already refused; pinned here) ----

test('cause 11: damaged safetensors are refused with what is wrong', async () => {
  const truncated = folderOf('llama3-gqa-f32', (d) => truncateSync(path.join(d, 'model.safetensors'), 700_000));
  await assertLoadRefused(truncated, /past the end of the data section .* the file is truncated or corrupt/);

  const longHeader = folderOf('llama3-gqa-f32', (d) => {
    const { header, data } = readSafetensors(path.join(d, 'model.safetensors'));
    writeSafetensors(path.join(d, 'model.safetensors'), header, data, 50_000_000n);
  });
  await assertLoadRefused(longHeader, /header length 50000000 runs past the end of the file/);

  const overlapping = folderOf('llama3-gqa-f32', (d) =>
    editSafetensors(d, (h) => {
      h['model.norm.weight'].data_offsets = [...h['model.embed_tokens.weight'].data_offsets];
      h['model.norm.weight'].shape = [h['model.embed_tokens.weight'].shape.reduce((a: number, b: number) => a * b, 1)];
    }),
  );
  await assertLoadRefused(overlapping, /overlap in the data section/);

  const badDtype = folderOf('llama3-gqa-f32', (d) =>
    editSafetensors(d, (h) => {
      h['model.norm.weight'].dtype = 'I8';
    }),
  );
  await assertLoadRefused(badDtype, /tensor 'model\.norm\.weight' has dtype 'I8', which is not supported; supported dtypes: F32, F16, BF16/);

  const badByteCount = folderOf('llama3-gqa-f32', (d) =>
    editSafetensors(d, (h) => {
      h['model.norm.weight'].dtype = 'F16';
    }),
  );
  await assertLoadRefused(badByteCount, /tensor 'model\.norm\.weight' has data_offsets .* but shape \[64\] x F16 needs 128 bytes/);

  // Same bytes, rows and columns swapped: finite values, wrong shape.
  const wrongShape = folderOf('llama3-gqa-f32', (d) =>
    editSafetensors(d, (h) => {
      h['model.embed_tokens.weight'].shape.reverse();
    }),
  );
  await assertLoadRefused(wrongShape, /tensor 'model\.embed_tokens\.weight' has shape \[64, 512\], expected \[512, 64\] from config\.json/);

  const gitLfs = folderOf('llama3-gqa-f32', (d) =>
    writeFileSync(path.join(d, 'model.safetensors'), 'version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n'),
  );
  await assertLoadRefused(gitLfs, /is a Git LFS pointer, not the weights/);
});

test('cause 11: configs with negative, huge or mismatched dimensions are refused naming the field', async () => {
  const cases: [Json, RegExp][] = [
    [{ hidden_size: -64 }, /hidden_size = -64 is out of range \(expected 1 to 131072\)/],
    [{ num_hidden_layers: 1e9 }, /num_hidden_layers = 1000000000 is out of range/],
    [{ vocab_size: 2 ** 40 }, /vocab_size = 1099511627776 is out of range/],
    [{ intermediate_size: 0 }, /intermediate_size = 0 is out of range/],
    [{ num_attention_heads: 3 }, /num_attention_heads = 3 is not a multiple of num_key_value_heads = 2|not divisible/],
    [{ vocab_size: 'many' }, /field 'vocab_size' must be an integer, found string/],
    [{ vocab_size: 600 }, /tensor 'model\.embed_tokens\.weight' has shape \[512, 64\], expected \[600, 64\]/],
    [{ num_hidden_layers: 7 }, /missing tensor 'model\.layers\.6\.input_layernorm\.weight'/],
  ];
  for (const [fields, pattern] of cases) {
    const dir = folderOf('llama3-gqa-f32', (d) => editJson(path.join(d, 'config.json'), (c) => Object.assign(c, fields)));
    await assertLoadRefused(dir, pattern);
  }
  const notJson = folderOf('llama3-gqa-f32', (d) => writeFileSync(path.join(d, 'config.json'), '{"vocab_size": 512,'));
  await assertLoadRefused(notJson, /config\.json is not valid JSON/);
});

test('cause 11, 15: damaged GGUF files are refused (bad magic, truncated, absurd counts)', async () => {
  const intact = readFileSync(qwen2Gguf('source.gguf'));
  const write = (name: string, bytes: Buffer) => {
    const file = path.join(scratch, name);
    writeFileSync(file, bytes);
    return file;
  };
  await assertLoadRefused(
    write('bad-magic.gguf', Buffer.concat([Buffer.from('GGUV'), intact.subarray(4)])),
    /is not a GGUF file \(bad magic: expected the magic "GGUF", found "GGUV"\) nor a model folder/,
  );
  await assertLoadRefused(write('truncated-header.gguf', intact.subarray(0, 4000)), /truncated/);
  await assertLoadRefused(write('truncated-data.gguf', intact.subarray(0, intact.length - 1000)), /runs past the end of the file|truncated/);
  const absurdTensors = Buffer.from(intact);
  absurdTensors.writeBigUInt64LE(1n << 60n, 8);
  await assertLoadRefused(write('absurd-tensors.gguf', absurdTensors), /tensor count 1152921504606846976 is absurdly large/);
  const absurdMetadata = Buffer.from(intact);
  absurdMetadata.writeBigUInt64LE(1n << 40n, 16);
  await assertLoadRefused(write('absurd-metadata.gguf', absurdMetadata), /metadata count 1099511627776 is larger than the file allows/);
});
