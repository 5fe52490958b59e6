// The completion pipeline on the real engine (embedded model, in-process ModelSession): the
// text shown is the engine's own output for that prompt cut by the stop rules (checked
// against a run without them), and a superseded request is cancelled inside the engine
// within a step or two of the abort.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { CompletionService, type CompletionConfig } from '../../../src/core/completion/completionService';
import { applyStopRules } from '../../../src/core/completion/stopRules';
import { removeSuffixOverlap } from '../../../src/core/completion/suffixOverlap';
import { ModelSession } from '../../../src/host/modelSession';
import type { GenerateParams, GenerateResult } from '../../../src/core/protocol/protocol';
import type { GenerationBackend } from '../../../src/core/backend/generationBackend';
import { loadAddon } from '../../../src/native/addon';
import { completionParams } from '../paramsOfKind';

const addon = loadAddon(path.resolve('dist'));
const load = () => ModelSession.load(addon, { modelDir: path.resolve('models/tidal-code-mini'), options: { threads: 2 } });

const config: CompletionConfig = {
  enabled: true,
  debounceMs: 0,
  mode: 'auto',
  maxPrefixChars: 4000,
  maxSuffixChars: 1000,
  maxLines: 16,
  maxTokens: { singleLine: 48, multiLine: 128 },
  attention: { mode: 'full' },
  repoName: 'service',
};
const repoFiles = [{ path: 'service/config.py', content: 'import os\n\nLISTEN_HOST = "127.0.0.1"\nLISTEN_PORT = 8080\n' }];

interface Observed {
  params: GenerateParams;
  chunks: number;
  chunksAtAbort?: number;
  result?: GenerateResult;
}

function observedBackend(session: ModelSession) {
  const calls: Observed[] = [];
  const backend: GenerationBackend = {
    kind: 'local',
    async generate(params, onText, signal) {
      const call: Observed = { params, chunks: 0 };
      calls.push(call);
      signal?.addEventListener(
        'abort',
        () => {
          call.chunksAtAbort = call.chunks;
          session.cancel(params.requestId);
        },
        { once: true },
      );
      call.result = await session.generate(params, (text) => {
        call.chunks++;
        onText(text);
      });
      return call.result;
    },
  };
  return { backend, calls };
}

function service(backend: GenerationBackend, overrides: Partial<CompletionConfig> = {}) {
  let id = 0;
  return new CompletionService({
    backend: () => backend,
    config: () => ({ ...config, ...overrides }),
    repositoryPart: async () => ({ files: repoFiles, tokens: 30 }),
    newRequestId: () => `t${++id}`,
  });
}

test('the completion is the engine output for the prompt, cut by the stop rules, as a run without them gives', { timeout: 120_000 }, async () => {
  const session = await load();
  try {
    const { backend, calls } = observedBackend(session);
    const completions = service(backend);
    const documents = [
      { text: 'from service.config import LISTEN_PORT\n\n\ndef address():\n', offset: -1 },
      { text: 'import os\n\nHOST = ', offset: -1 },
      { text: 'class Cache:\n    def __init__(self, capacity):\n        self.capacity = capacity\n\n    def get(self, key):\n', offset: -1 },
    ];
    let nonEmpty = 0;
    for (const [i, document] of documents.entries()) {
      const offset = document.offset < 0 ? document.text.length : document.offset;
      const outcome = await completions.complete({ documentKey: `doc${i}`, filePath: `service/f${i}.py`, text: document.text, offset });
      assert.ok(outcome, `document ${i}: no outcome (${completions.lastError})`);
      // Reference: the same request run to the end on its own, then cut.
      const params = completionParams(calls[calls.length - 1].params);
      assert.equal(params.prefix, document.text.slice(0, offset));
      const reference = await session.generate({ ...params, requestId: `ref${i}` });
      const linePrefix = document.text.slice(document.text.lastIndexOf('\n', offset - 1) + 1, offset);
      const cut = applyStopRules(reference.text, { mode: outcome.mode, linePrefix, suffix: params.suffix ?? '', maxLines: config.maxLines }, true).text;
      assert.equal(outcome.text, removeSuffixOverlap(cut, params.suffix ?? ''), `document ${i}: raw engine text ${JSON.stringify(reference.text)}`);
      assert.ok(reference.text.startsWith(outcome.rawText ?? ''), 'the streamed text is a prefix of the full generation');
      if (outcome.text.trim()) nonEmpty++;
    }
    assert.ok(nonEmpty >= 1, 'the model completed none of the documents');
  } finally {
    await session.unload();
  }
});

test('a superseded request is cancelled inside the engine within a step or two of the abort', { timeout: 120_000 }, async () => {
  const session = await load();
  try {
    const { backend, calls } = observedBackend(session);
    const completions = service(backend, { mode: 'multi-line', maxLines: 1000, maxTokens: { singleLine: 48, multiLine: 2000 } });
    const text = 'def handle(request):\n';
    const first = completions.complete({ documentKey: 'd', filePath: 'service/h.py', text, offset: text.length });
    while (calls.length === 0 || calls[0].chunks < 3) await new Promise((resolve) => setTimeout(resolve, 2));
    const second = completions.complete({ documentKey: 'd', filePath: 'service/h.py', text: text + '    ', offset: text.length + 4 });
    assert.equal(await first, undefined);
    const cancelled = calls[0];
    assert.equal(cancelled.result?.finishReason, 'cancelled');
    assert.ok(cancelled.chunksAtAbort !== undefined);
    assert.ok(
      cancelled.result!.tokens <= cancelled.chunksAtAbort + 2,
      `${cancelled.result!.tokens} tokens generated, ${cancelled.chunksAtAbort} streamed when aborted`,
    );
    const outcome = await second;
    assert.ok(outcome);
    assert.equal(session.stats().queue.cancelled >= 1, true);
    assert.equal(session.stats().queue.running, null);
    assert.deepEqual({ ...completions.counters, finished: 0 }, { started: 2, finished: 0, cancelled: 1, failed: 0, cacheHits: 0, inFlight: 0 });
  } finally {
    await session.unload();
  }
});
