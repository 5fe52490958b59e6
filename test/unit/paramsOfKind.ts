// Recorded generate requests, narrowed to their kind (GenerateParams is a union on `kind`);
// a request of another kind fails the test there.
import assert from 'node:assert/strict';

import type { ChatGenerateParams, CompletionGenerateParams, GenerateParams } from '../../src/core/protocol/protocol';

export function chatParams(params: GenerateParams | undefined): ChatGenerateParams {
  assert.equal(params?.kind, 'chat');
  return params as ChatGenerateParams;
}

export function completionParams(params: GenerateParams | undefined): CompletionGenerateParams {
  assert.equal(params?.kind, 'completion');
  return params as CompletionGenerateParams;
}
