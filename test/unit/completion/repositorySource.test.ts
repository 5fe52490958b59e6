// Which repository part a completion request carries: for the local backend over a folder on
// disk the engine host's own (`repository: true`, no files); for the remote backend, or a folder
// the host cannot read, the files rendered by the extension (`repositoryContext`), as before.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CompletionService, type CompletionConfig } from '../../../src/core/completion/completionService';
import type { BackendSetting, GenerateParams } from '../../../src/core/protocol/protocol';
import type { GenerationBackend } from '../../../src/core/backend/generationBackend';
import { hostRendersRepository, repositoryPartFor } from '../../../src/core/backend/repositoryPart';
import { completionParams } from '../paramsOfKind';

const config: CompletionConfig = {
  enabled: true,
  debounceMs: 0,
  mode: 'auto',
  maxPrefixChars: 1000,
  maxSuffixChars: 200,
  maxLines: 16,
  maxTokens: { singleLine: 48, multiLine: 128 },
};

function completionsFor(backend: BackendSetting, folderScheme: string | undefined) {
  const sent: GenerateParams[] = [];
  const rendered: (string | undefined)[] = [];
  const generation: GenerationBackend = {
    kind: backend === 'remote' ? 'remote' : 'local',
    async generate(params) {
      sent.push(params);
      return {
        requestId: params.requestId,
        text: 'x',
        finishReason: 'stop',
        tokens: 1,
        promptTokens: 10,
        reusedTokens: 0,
        recomputedTokens: 10,
        timings: { queuedMs: 0, prefillMs: 0, decodeMs: 0, totalMs: 0 },
      };
    },
  };
  const service = new CompletionService({
    backend: () => generation,
    config: () => config,
    repositoryPart: repositoryPartFor({
      hostRenders: () => hostRendersRepository(backend, folderScheme),
      host: () => ({ source: 'host', files: 3, tokens: 700 }),
      files: async (excludePath) => (rendered.push(excludePath), { files: [{ path: 'lib.ts', content: 'export {};\n' }], tokens: 5 }),
    }),
    newRequestId: () => 'c1',
  });
  return { service, sent, rendered };
}

const request = { documentKey: 'file:///w/a.ts', filePath: 'a.ts', text: 'let a = ;\n', offset: 8 };

for (const backend of ['auto', 'cuda', 'cpu'] as const) {
  test(`local backend (${backend}): repository: true and no files; nothing is rendered in the extension`, async () => {
    const { service, sent, rendered } = completionsFor(backend, 'file');
    await service.complete(request);
    assert.equal(completionParams(sent[0]).repository, true);
    assert.equal(completionParams(sent[0]).repositoryContext, undefined);
    assert.deepEqual(rendered, []);
  });
}

test('remote backend: the files rendered here, the active file left out, and no repository flag', async () => {
  const { service, sent, rendered } = completionsFor('remote', 'file');
  await service.complete(request);
  assert.deepEqual(completionParams(sent[0]).repositoryContext, [{ path: 'lib.ts', content: 'export {};\n' }]);
  assert.equal(completionParams(sent[0]).repository, undefined);
  assert.deepEqual(rendered, ['a.ts']);
});

test('a folder the host cannot read (virtual file system) keeps the rendered files; no folder is the host part', () => {
  assert.equal(hostRendersRepository('auto', 'vscode-vfs'), false);
  assert.equal(hostRendersRepository('auto', undefined), true);
  assert.equal(hostRendersRepository('remote', undefined), false);
});
