// The main job on the embedded default model (models/tidal-code-mini), through the same
// engine host process the extension starts: complete a code snippet, then answer a question
// about a small sample repository that sits in the context, for each attention mode; print
// what came out and tokens/s. Run with `node dist/embedded-demo.js` after `npm run build`.
import * as path from 'node:path';

import { startEngineHost } from './hostProcess';
import { AttentionMode, engineInfoRequest, generateRequest, loadModelRequest, shutdownRequest, statsRequest } from '../core/protocol/protocol';

const root = path.resolve(__dirname, '..');
const modelDir = process.env.TIDAL_MODEL ?? path.join(root, 'models', 'tidal-code-mini');
const tokenBudget = Number(process.env.TIDAL_BUDGET ?? 64);
// TidalDecode selection layers: the engine's preset ({2, 5} on this 6-layer model), or a
// comma-separated list in TIDAL_SELECTION_LAYERS to compare others (e.g. "2" alone loses the
// answer at budget 64).
const selectionLayers = process.env.TIDAL_SELECTION_LAYERS ? process.env.TIDAL_SELECTION_LAYERS.split(',').map(Number) : undefined;

// A small repository: the answer to the question is planted in one file, far from the end.
const sampleRepo = [
  {
    path: 'service/config.py',
    content: 'import os\n\nLISTEN_HOST = "127.0.0.1"\nSECRET_KEY_LISTEN_PORT = "48213"\nLOG_LEVEL = os.environ.get("LOG_LEVEL", "info")\n',
  },
  {
    path: 'service/cache.py',
    content:
      'class LruCache:\n    def __init__(self, capacity):\n        self.capacity = capacity\n        self.items = {}\n\n    def get(self, key):\n        value = self.items.pop(key, None)\n        if value is not None:\n            self.items[key] = value\n        return value\n\n    def put(self, key, value):\n        self.items.pop(key, None)\n        self.items[key] = value\n        if len(self.items) > self.capacity:\n            self.items.pop(next(iter(self.items)))\n',
  },
  {
    path: 'service/server.py',
    content:
      'from service.cache import LruCache\nfrom service.config import LISTEN_HOST\n\ncache = LruCache(1024)\n\n\ndef handle(request):\n    cached = cache.get(request.path)\n    if cached is not None:\n        return cached\n    response = render(request)\n    cache.put(request.path, response)\n    return response\n',
  },
];

async function main(): Promise<void> {
  const { child: host, connection: rpc } = startEngineHost(path.join(root, 'dist', 'engine-host.js'));
  host.stderr.pipe(process.stderr);
  rpc.listen();
  try {
    const info = await rpc.sendRequest(engineInfoRequest);
    const loaded = await rpc.sendRequest(loadModelRequest, { modelDir });
    const m = loaded.model;
    console.log(
      `model ${path.relative(root, modelDir)}: ${m.architecture}, ${m.numLayers} layers, ${m.numHeads}/${m.numKvHeads} heads x ${m.headDim}, ` +
        `vocab ${m.vocabSize}, ${(m.weightBytes / 1e6).toFixed(1)} MB ${m.dtype}, backend ${m.backend} (${m.threads} threads), ` +
        `${info.build === 'wasm' ? 'WebAssembly engine' : 'native engine'}`,
    );

    // The small model is strongest at continuing a repository-style stream (its FIM is weak), so
    // both requests are raw continuations of `<|file_sep|>path` + contents, as it was trained.
    const repoStream = sampleRepo.map((file) => `<|file_sep|>${file.path}\n${file.content}`).join('');
    const snippet = 'def mean(values):\n    total = 0\n    for value in values:\n';
    const completion = await rpc.sendRequest(generateRequest, {
      requestId: 'complete',
      kind: 'raw',
      prompt: `${repoStream}<|file_sep|>service/stats.py\n${snippet}`,
      maxTokens: 40,
    });
    console.log(
      `\ncompletion (${completion.tokens} tokens, ${rate(completion.tokens, completion.timings.decodeMs)} tok/s decode, ` +
        `prompt ${completion.promptTokens} tokens in ${completion.timings.prefillMs.toFixed(0)} ms):\n` +
        indent(snippet + completion.text),
    );

    console.log(
      `\nquestion: which port does the service listen on? (asked in code, the form this small model was trained on; sparse budget ${tokenBudget}, tidal selection layers ${selectionLayers?.join(',') ?? 'preset'})`,
    );
    const question = 'print(SECRET_KEY_LISTEN_PORT)  # ->';
    const rows: string[] = [];
    for (const mode of ['full', 'tidal', 'quest'] as AttentionMode[]) {
      const answer = await rpc.sendRequest(generateRequest, {
        requestId: `ask-${mode}`,
        kind: 'raw',
        prompt: `${repoStream}<|file_sep|>service/main.py\nfrom service.config import *\n\n${question}`,
        maxTokens: 8,
        attention: { mode, tokenBudget, ...(selectionLayers ? { selectionLayers } : {}) },
      });
      const text = answer.text.split('\n')[0].trim();
      rows.push(
        `| ${mode.padEnd(5)} | ${text.padEnd(10)} | ${text.includes('48213') ? 'yes' : 'no '} | ${String(answer.promptTokens).padStart(6)} | ` +
          `${String(answer.reusedTokens).padStart(6)} | ${rate(answer.tokens, answer.timings.decodeMs).padStart(7)} |`,
      );
    }
    console.log('| mode  | answer     | right | prompt | reused | tok/s   |\n|-------|------------|-------|--------|--------|---------|');
    console.log(rows.join('\n'));
    const stats = await rpc.sendRequest(statsRequest);
    console.log(
      `\nprefix cache: ${stats.prefixCache.tokensReused} tokens reused, ${stats.prefixCache.tokensRecomputed} recomputed over ${stats.prefixCache.requests} requests`,
    );
    await rpc.sendRequest(shutdownRequest);
  } finally {
    rpc.dispose();
    host.stdin.end();
  }
}

function rate(tokens: number, ms: number): string {
  return ms > 0 ? (tokens / (ms / 1000)).toFixed(0) : '-';
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}

main().catch((error) => {
  console.error(`embedded demo failed: ${(error as Error).message}`);
  process.exit(1);
});
