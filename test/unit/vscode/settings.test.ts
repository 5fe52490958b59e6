import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { DEFAULT_SETTINGS, maxKvBytesOf, readSettings } from '../../../src/vscode/settings';

test('no values configured gives the documented defaults and no problems', () => {
  const { settings, problems } = readSettings(() => undefined);
  assert.deepEqual(settings, DEFAULT_SETTINGS);
  assert.deepEqual(problems, []);
});

test('valid values pass through, selection layers sorted and de-duplicated', () => {
  const values: Record<string, unknown> = {
    modelPath: '/models/qwen',
    backend: 'remote',
    remoteUrl: 'https://gpu-box.example:8443/v1',
    remoteModel: 'Qwen/Qwen2.5-Coder-7B-Instruct',
    'attention.mode': 'quest',
    'attention.tokenBudget': 512,
    'attention.selectionLayers': [13, 2, 13],
    'attention.sparsePrefill': true,
    'context.maxTokens': 100000,
    'inlineCompletions.enabled': false,
    'inlineCompletions.debounceMs': 40,
  };
  const { settings, problems } = readSettings((key) => values[key]);
  assert.deepEqual(problems, []);
  assert.equal(settings.backend, 'remote');
  assert.equal(settings.remoteUrl, 'https://gpu-box.example:8443/v1');
  assert.equal(settings.remoteModel, 'Qwen/Qwen2.5-Coder-7B-Instruct');
  assert.equal(settings.attention.mode, 'quest');
  assert.equal(settings.attention.tokenBudget, 512);
  assert.deepEqual(settings.attention.selectionLayers, [2, 13]);
  assert.equal(settings.attention.sparsePrefill, true);
  assert.equal(settings.context.maxTokens, 100000);
  assert.equal(settings.inlineCompletions.enabled, false);
  assert.equal(settings.inlineCompletions.debounceMs, 40);
});

test('each invalid value falls back to its default and is reported by name', () => {
  const values: Record<string, unknown> = {
    backend: 'tpu',
    remoteUrl: 'file:///etc/passwd',
    'attention.mode': 'sparse',
    'attention.tokenBudget': 3.5,
    'attention.selectionLayers': [2, -1],
    'attention.sparsePrefill': 'yes',
    'context.include': ['src/**', 7],
    'inlineCompletions.debounceMs': 999999,
  };
  const { settings, problems } = readSettings((key) => values[key]);
  assert.equal(settings.backend, DEFAULT_SETTINGS.backend);
  assert.equal(settings.remoteUrl, DEFAULT_SETTINGS.remoteUrl);
  assert.equal(settings.attention.mode, DEFAULT_SETTINGS.attention.mode);
  assert.equal(settings.attention.tokenBudget, DEFAULT_SETTINGS.attention.tokenBudget);
  assert.deepEqual(settings.attention.selectionLayers, []);
  assert.equal(settings.attention.sparsePrefill, false);
  assert.deepEqual(settings.context.include, DEFAULT_SETTINGS.context.include);
  assert.equal(settings.inlineCompletions.debounceMs, DEFAULT_SETTINGS.inlineCompletions.debounceMs);
  const named = problems.map((line) => line.split(':')[0]).sort();
  assert.deepEqual(named, [
    'tidal.attention.mode',
    'tidal.attention.selectionLayers',
    'tidal.attention.sparsePrefill',
    'tidal.attention.tokenBudget',
    'tidal.backend',
    'tidal.context.include',
    'tidal.inlineCompletions.debounceMs',
    'tidal.remoteUrl',
  ]);
});

test('the defaults equal the manifest defaults in package.json', () => {
  const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as {
    contributes: { configuration: { properties: Record<string, { default: unknown }> }[] };
  };
  const properties = Object.assign({}, ...manifest.contributes.configuration.map((section) => section.properties)) as Record<string, { default: unknown }>;
  const fromManifest = readSettings((key) => properties[`tidal.${key}`]?.default);
  assert.deepEqual(fromManifest.problems, []);
  assert.deepEqual(fromManifest.settings, DEFAULT_SETTINGS);
});

test('repository context and KV memory settings: valid values pass through, invalid ones fall back by name', () => {
  const valid: Record<string, unknown> = {
    'context.reuseShiftedKv': false,
    'context.persist': false,
    'context.persistMaxGB': 2.5,
    'engine.maxKvMemoryGB': 12,
    'engine.kvCache': 'fp8',
  };
  const good = readSettings((key) => valid[key]);
  assert.deepEqual(good.problems, []);
  assert.equal(good.settings.context.reuseShiftedKv, false);
  assert.equal(good.settings.context.persist, false);
  assert.equal(good.settings.context.persistMaxGB, 2.5);
  assert.equal(good.settings.engine.maxKvMemoryGB, 12);
  assert.equal(good.settings.engine.kvCache, 'fp8');
  assert.equal(DEFAULT_SETTINGS.engine.kvCache, 'bf16');
  assert.equal(maxKvBytesOf(good.settings), 12 * 1024 ** 3);
  assert.equal(maxKvBytesOf(DEFAULT_SETTINGS), undefined, '0 GB: no cap');

  const invalid: Record<string, unknown> = {
    'context.reuseShiftedKv': 'yes',
    'context.persist': 1,
    'context.persistMaxGB': -1,
    'engine.maxKvMemoryGB': Number.NaN,
    'engine.kvCache': 'fp4',
  };
  const bad = readSettings((key) => invalid[key]);
  assert.equal(bad.settings.context.reuseShiftedKv, true);
  assert.equal(bad.settings.context.persist, true);
  assert.equal(bad.settings.context.persistMaxGB, 20);
  assert.equal(bad.settings.engine.maxKvMemoryGB, 0);
  assert.equal(bad.settings.engine.kvCache, 'bf16');
  assert.deepEqual(bad.problems.map((line) => line.split(':')[0]).sort(), [
    'tidal.context.persist',
    'tidal.context.persistMaxGB',
    'tidal.context.reuseShiftedKv',
    'tidal.engine.kvCache',
    'tidal.engine.maxKvMemoryGB',
  ]);
});
