// Where the local engine runs: from the platform and the addon's load result, what the extension
// says (status bar, tooltip, the engine's message) and whether it shows the one-time notification.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  addonLoadResultOf,
  localEngineOffer,
  NATIVE_ENGINE_TARGETS,
  platformName,
  remoteTooltipNote,
  shouldShowLocalEngineNotice,
  type AddonLoadResult,
} from '../../../src/vscode/localEngine';

const missing: AddonLoadResult = { loaded: false, kind: 'missing', message: 'The Tidal native engine is not in this installation.' };
const unloadable: AddonLoadResult = {
  loaded: false,
  kind: 'unloadable',
  message: 'The Tidal native engine at /ext/dist/native/tidal_native.node could not be loaded on linux-x64 (Node 24.1.0): invalid ELF header',
};

test('platform names are the ones vsce --target uses; the native engine is published for linux-x64, win32-x64 and linux-arm64', () => {
  assert.equal(platformName('darwin', 'arm64'), 'darwin-arm64');
  assert.equal(platformName('win32', 'x64'), 'win32-x64');
  assert.deepEqual(NATIVE_ENGINE_TARGETS, ['linux-x64', 'win32-x64', 'linux-arm64']);
});

test('with the addon loaded there is a local engine, on any platform', () => {
  assert.deepEqual(localEngineOffer('linux-x64', { loaded: true }), { local: true, platform: 'linux-x64' });
  assert.equal(remoteTooltipNote(localEngineOffer('linux-x64', { loaded: true })), undefined);
});

test('another platform without the addon (the universal package without its WebAssembly engine): no local engine, and the remote backend offered', () => {
  for (const platform of ['darwin-arm64', 'darwin-x64', 'win32-arm64', 'linux-armhf']) {
    const offer = localEngineOffer(platform, missing);
    assert.equal(offer.local, false);
    if (offer.local) continue;
    assert.equal(offer.nativePackage, false);
    assert.equal(offer.headline, `no local engine on ${platform}`);
    assert.equal(offer.statusText, `$(circle-slash) Tidal: no local engine on ${platform}`);
    assert.match(offer.reason, new RegExp(`built for linux-x64, win32-x64, linux-arm64 only; this package has no native engine for ${platform}`));
    assert.match(offer.reason, /WebAssembly engine \(dist\/native-wasm\).*is missing/);
    assert.match(offer.tooltip, /`tidal\.backend` to `remote`/);
    assert.match(offer.tooltip, /command:workbench\.action\.openSettings\?%5B%22tidal\.remote%22%5D/, 'a link to the remote server settings');
    assert.match(offer.tooltip, /command:workbench\.action\.openSettings\?%5B%22tidal\.backend%22%5D/, 'a link to the backend setting');
    assert.match(offer.modelMessage, /Set tidal\.backend to remote/);
    assert.match(offer.noticeMessage, new RegExp(`^Tidal: no local engine on ${platform}\\. `));
    assert.match(remoteTooltipNote(offer) ?? '', /no local engine on .*requests go to the remote server/);
  }
});

test('linux-x64, win32-x64 or linux-arm64 with the addon missing: this install lost it, reinstalling brings it back', () => {
  for (const platform of ['linux-x64', 'win32-x64', 'linux-arm64']) {
    const offer = localEngineOffer(platform, missing);
    assert.equal(offer.local, false);
    if (offer.local) continue;
    assert.equal(offer.nativePackage, true);
    assert.match(offer.reason, new RegExp(`missing from this installation; reinstall the extension \\(its ${platform} package carries the engine\\)`));
  }
});

test('an addon that does not load (wrong platform, ABI, a missing library) names the reason the loader gave', () => {
  for (const platform of ['linux-x64', 'darwin-arm64']) {
    const offer = localEngineOffer(platform, unloadable);
    assert.equal(offer.local, false);
    if (offer.local) continue;
    assert.match(offer.reason, /^The native engine could not be loaded\. .*invalid ELF header$/);
    assert.match(offer.noticeMessage, /invalid ELF header/);
  }
});

test("the notification: only without a local engine, only for a local backend, once per window, never after Don't Show Again", () => {
  const none = localEngineOffer('win32-x64', missing);
  for (const backend of ['auto', 'cpu', 'cuda'] as const) assert.equal(shouldShowLocalEngineNotice(none, backend, undefined, false), true, backend);
  assert.equal(shouldShowLocalEngineNotice(none, 'remote', undefined, false), false, 'the remote backend needs no local engine');
  assert.equal(shouldShowLocalEngineNotice(none, 'auto', undefined, true), false, 'already shown in this window');
  assert.equal(shouldShowLocalEngineNotice(none, 'auto', 'dismissed', false), false, "Don't Show Again");
  assert.equal(shouldShowLocalEngineNotice(localEngineOffer('linux-x64', { loaded: true }), 'auto', undefined, false), false, 'a local engine: nothing to say');
});

test("the engine client's status becomes the load result: only `unavailable` is a failure", () => {
  assert.deepEqual(addonLoadResultOf({ state: 'ready' }), { loaded: true });
  assert.deepEqual(addonLoadResultOf({ state: 'error' }), { loaded: true }, 'a crashed engine had an addon');
  assert.deepEqual(addonLoadResultOf({ state: 'starting' }), { loaded: true });
  assert.deepEqual(addonLoadResultOf({ state: 'unavailable', problem: { kind: 'missing', message: 'm' } }), { loaded: false, kind: 'missing', message: 'm' });
  assert.deepEqual(addonLoadResultOf({ state: 'unavailable' }), { loaded: false, kind: 'unloadable', message: '' });
});
