// What the user is told about the model: the one-time demo note (when, and when never again),
// and a failed load as a notification whose actions can fix it.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { ModelErrorCause, ModelState } from '../../../src/vscode/modelController';
import { demoMemoryAfterLoad, modelProblemKind, modelProblemNotice, scopesHoldingModelPath, shouldShowDemoNotice } from '../../../src/vscode/modelNotices';

const ready = (embedded: boolean) =>
  ({ state: 'ready', loaded: { modelDir: embedded ? '/ext/models/tidal-code-mini' : '/models/qwen' }, loadMs: 5, embedded }) as unknown as ModelState;
const failed = (cause: ModelErrorCause, message: string, embedded = false): ModelState => ({
  state: 'error',
  modelDir: '/models/bad',
  message,
  embedded,
  cause,
});

test('the demo note shows once the embedded model is loaded with tidal.modelPath empty, once per window', () => {
  assert.equal(shouldShowDemoNotice(ready(true), '', undefined, false), true);
  assert.equal(shouldShowDemoNotice(ready(true), '  ', undefined, false), true, 'a blank path is the embedded model');
  assert.equal(shouldShowDemoNotice(ready(true), '', undefined, true), false, 'already shown in this window');
  assert.equal(shouldShowDemoNotice(ready(false), '/models/qwen', undefined, false), false, "a model of the user's own");
  assert.equal(shouldShowDemoNotice({ state: 'loading', modelDir: '/ext' }, '', undefined, false), false, 'not before the model is there');
  assert.equal(shouldShowDemoNotice({ state: 'idle', message: 'Remote backend: http://x' }, '', undefined, false), false, 'nothing local runs');
  assert.equal(shouldShowDemoNotice(failed('path', 'x', true), '', undefined, false), false);
});

test('the demo note never returns after "Don\'t Show Again" or once a model of the user\'s own has loaded', () => {
  assert.equal(shouldShowDemoNotice(ready(true), '', 'dismissed', false), false);
  assert.equal(shouldShowDemoNotice(ready(true), '', 'modelChosen', false), false);
  assert.equal(demoMemoryAfterLoad(ready(false), undefined), 'modelChosen');
  assert.equal(demoMemoryAfterLoad(ready(true), undefined), undefined, 'the embedded model chooses nothing');
  assert.equal(demoMemoryAfterLoad(failed('path', 'x'), undefined), undefined, 'a path that fails to load is no model chosen');
  assert.equal(demoMemoryAfterLoad(ready(false), 'dismissed'), 'dismissed');
  // Back on the embedded model after a real one: still no note.
  assert.equal(shouldShowDemoNotice(ready(true), '', demoMemoryAfterLoad(ready(false), undefined), false), false);
});

test('a bad tidal.modelPath becomes an error naming the problem, with Select Model, Open Setting and Use Embedded', () => {
  const missing = modelProblemNotice(failed('path', 'The model path /models/bad does not exist. Fix tidal.modelPath or run "Tidal: Select Model".'), 'auto');
  assert.deepEqual(missing?.actions, ['Select Model', 'Open Setting', 'Use Embedded']);
  assert.equal(missing?.setting, 'tidal.modelPath');
  assert.match(missing!.message, /^Tidal: tidal\.modelPath names a path that does not exist\. The model path \/models\/bad does not exist/);

  const architecture = modelProblemNotice(
    failed('model', "Could not load the model: unsupported model architecture 'BertModel' (model_type 'bert'); supported: llama, mistral, qwen2, qwen3"),
    'auto',
  );
  assert.deepEqual(architecture?.actions, ['Select Model', 'Open Setting', 'Use Embedded']);
  assert.match(architecture!.message, /has an architecture Tidal does not support\. Unsupported model architecture 'BertModel'/);

  const invalid = modelProblemNotice(failed('model', "Could not load the model: cannot read the model's config.json"), 'cpu');
  assert.deepEqual(invalid?.actions, ['Select Model', 'Open Setting', 'Use Embedded']);
  assert.match(invalid!.message, /is not a valid model\. Cannot read the model's config\.json$/);
});

test('the problem named: missing path, not a model path, unsupported architecture, invalid model', () => {
  assert.equal(modelProblemKind('path', 'The model path /m does not exist. Fix tidal.modelPath'), 'missingPath');
  assert.equal(modelProblemKind('path', 'tidal.modelPath points to the file /m.bin: use a model folder'), 'notAModelPath');
  assert.equal(modelProblemKind('model', "unsupported architecture 'gemma' (general.architecture)"), 'unsupportedArchitecture');
  assert.equal(modelProblemKind('model', "config.json: required field 'vocab_size' is missing"), 'invalidModel');
  assert.equal(modelProblemKind('memory', 'out of memory'), 'outOfMemory');
  assert.equal(modelProblemKind('engine', 'CUDA error'), 'engine');
});

test('Open Setting goes to the setting that caused the failure: the KV cap, or an explicit CUDA backend', () => {
  const cap = modelProblemNotice(
    failed('memory', 'Could not load the model: over the KV memory cap. The KV cache cap is the setting tidal.engine.maxKvMemoryGB: raise it'),
    'auto',
  );
  assert.equal(cap?.setting, 'tidal.engine.maxKvMemoryGB');
  assert.deepEqual(cap?.actions, ['Select Model', 'Open Setting', 'Use Embedded']);
  const noGpu = modelProblemNotice(failed('engine', 'Could not load the model: CUDA: no device', true), 'cuda');
  assert.equal(noGpu?.setting, 'tidal.backend');
  assert.deepEqual(noGpu?.actions, ['Select Model', 'Open Setting', 'Show Log']);
  assert.equal(modelProblemNotice(failed('engine', 'Could not load the model: CUDA: no device'), 'cuda')?.setting, 'tidal.backend');
});

test('the embedded model failing offers no Use Embedded (it is the one failing), and other states give no notification', () => {
  const embedded = modelProblemNotice(
    failed('path', 'The embedded model is missing from the extension (/ext/models/tidal-code-mini); reinstall Tidal Code.', true),
    'auto',
  );
  assert.deepEqual(embedded?.actions, ['Select Model', 'Show Log']);
  assert.equal(embedded?.setting, undefined);
  assert.match(embedded!.message, /reinstall Tidal Code/);
  assert.equal(modelProblemNotice(ready(true), 'auto'), undefined);
  assert.equal(modelProblemNotice({ state: 'loading', modelDir: '/m' }, 'auto'), undefined);
  assert.equal(modelProblemNotice({ state: 'idle', message: 'Engine starting…' }, 'auto'), undefined);
});

test('Use Embedded clears tidal.modelPath in every scope that sets it', () => {
  assert.deepEqual(scopesHoldingModelPath({ globalValue: '/models/bad' }), ['global']);
  assert.deepEqual(scopesHoldingModelPath({ workspaceValue: 'models/bad', globalValue: '' }), ['workspace']);
  assert.deepEqual(scopesHoldingModelPath({ workspaceFolderValue: 'a', workspaceValue: 'b', globalValue: 'c' }), ['workspaceFolder', 'workspace', 'global']);
  assert.deepEqual(scopesHoldingModelPath({}), []);
  assert.deepEqual(scopesHoldingModelPath(undefined), []);
});
