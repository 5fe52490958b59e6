// A small test harness that runs inside VS Code's extension host: tests run one after another
// (they share one VS Code window), each under a time limit, and the results are written as
// JSON after every test, so the runner outside sees progress even if a test hangs.
//
// Time limits here are failure guards only: no test waits a fixed time for something to
// happen; it waits for an observable state (waitFor) and the limit only bounds how long a broken
// run takes to report. The runner sizes its own limit from the sum of the tests' limits.
//
// Environment, set by test/integration/run.mjs:
//   TIDAL_TEST_RESULTS      file to write results to (required)
//   TIDAL_TEST_CHECKPOINTS  folder for screenshot requests to the runner (absent: no screenshots)
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { releaseHeldEngines } = require('./engineHold');

/** @typedef {{ name: string, fn: () => Promise<void> | void, timeoutMs: number }} TestCase */
/** @typedef {{ name: string, passed: boolean, durationMs: number, error?: string }} TestResult */

/** @type {TestCase[]} */
const registered = [];

/** How long the suite waits for the runner's screenshot (more than the runner's own waits). */
const SCREENSHOT_TIMEOUT_MS = 120_000;

/** Registers a test; `timeoutMs` bounds it (default 30 s). */
function test(name, fn, { timeoutMs = 30_000 } = {}) {
  registered.push({ name, fn, timeoutMs });
}

function writeJsonAtomically(file, value) {
  const staging = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(staging, JSON.stringify(value, null, 2));
  fs.renameSync(staging, file);
}

function withTimeout(promise, timeoutMs, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function describeError(error) {
  if (error instanceof Error) return error.stack || `${error.name}: ${error.message}`;
  return String(error);
}

/** Runs every registered test and returns the results; never throws for a failing test. */
async function runRegisteredTests() {
  const resultsFile = process.env.TIDAL_TEST_RESULTS;
  if (!resultsFile) throw new Error('TIDAL_TEST_RESULTS is not set; run the suite through test/integration/run.mjs');
  const planned = registered.map((testCase) => testCase.name);
  // The longest the suite may take: every test's limit, and the final screenshot's.
  const plannedMs = registered.reduce((sum, testCase) => sum + testCase.timeoutMs, 0) + SCREENSHOT_TIMEOUT_MS;
  /** @type {TestResult[]} */
  const results = [];
  const write = (finished) =>
    writeJsonAtomically(resultsFile, { planned, plannedMs, results, finished, vscodeVersion: require('vscode').version, node: process.version });
  write(false);
  for (const testCase of registered) {
    const started = Date.now();
    try {
      await withTimeout(Promise.resolve().then(testCase.fn), testCase.timeoutMs, `test "${testCase.name}"`);
      results.push({ name: testCase.name, passed: true, durationMs: Date.now() - started });
    } catch (error) {
      results.push({ name: testCase.name, passed: false, durationMs: Date.now() - started, error: describeError(error) });
    }
    releaseHeldEngines(); // a test that failed while holding the engine must not leave it stopped
    write(false);
  }
  // One last look at the window while the extension host still runs (it stops once run()
  // returns), so that a failure can be read off the screenshot.
  await captureWorkbench('integration-final').catch(() => undefined);
  write(true);
  return results;
}

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes; returns the last value. */
async function waitFor(probe, { timeoutMs = 10_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value || Date.now() >= deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Asks the runner for a screenshot of the workbench named `name` and waits for it. The runner
 * answers with what it saw in the workbench DOM (see test/integration/runners/codeServer.mjs).
 * Returns undefined when the runner takes no screenshots (e.g. the Electron runner).
 * Before the screenshot the runner waits, up to its own limit, for what the options name: the
 * chat webview on screen with text in it, the webview in a theme ('vscode-dark' or
 * 'vscode-light'), ghost text in the editor, a notification on screen whose message contains
 * `waitForNotification` (VS Code shows no toasts under the runner's smoke-test driver: open the
 * notification center first, `notifications.showList`).
 * @param {string} name file name without extension
 * `press` names keys the runner presses in the page first, in order, as a person would
 * (Playwright's names, e.g. 'Alt+Backslash'): how a test reaches a keybinding.
 * `pressNotificationButton` ({ message, button }): after the screenshot the runner clicks the
 * button labelled `button` on the notification whose message contains `message`; the response's
 * `pressedNotificationButton` says whether it found one.
 * `clickViewAction` (a label, e.g. 'New Chat'): before the keys, the runner clicks the view-title
 * action whose label starts with it; `clickInChat` (a CSS selector): it clicks that element of
 * the chat panel. The response's `clickedViewAction` / `clickedInChat` say whether it found one.
 * `waitForQuickInput`: wait for a quick pick whose title contains this text, with rows in it.
 * The response tells where the chat webview is (`chatLocation`: 'sidebar', 'auxiliarybar',
 * 'panel', 'editor' or null), the view-title actions on screen and the open quick input.
 * @param {{ waitForChatView?: boolean, waitForTheme?: 'vscode-dark' | 'vscode-light', waitForGhostText?: boolean, waitForNotification?: string, waitForQuickInput?: string, clickViewAction?: string, clickInChat?: string, press?: string[], pressNotificationButton?: { message: string, button: string }, timeoutMs?: number }} [options]
 * @returns {Promise<undefined | { screenshot: string, pressedNotificationButton?: boolean, clickedViewAction?: boolean, clickedInChat?: boolean, workbench: { activeViewContainer: string | null, sidebarTitle: string | null, chatWebviewVisible: boolean, chatWebviewText: string, chatLocation: string | null, viewTitleActions: string[], quickInput: null | { title: string, items: string[] }, ghostTextVisible: boolean, ghostText: string, notifications: { message: string, buttons: string[] }[] } }>}
 */
async function captureWorkbench(
  name,
  {
    waitForChatView = false,
    waitForTheme,
    waitForGhostText = false,
    waitForNotification,
    waitForQuickInput,
    clickViewAction,
    clickInChat,
    press = [],
    pressNotificationButton,
    timeoutMs = SCREENSHOT_TIMEOUT_MS,
  } = {},
) {
  const folder = process.env.TIDAL_TEST_CHECKPOINTS;
  if (!folder) return undefined;
  const responseFile = path.join(folder, `${name}.response.json`);
  fs.rmSync(responseFile, { force: true });
  writeJsonAtomically(path.join(folder, `${name}.request.json`), {
    name,
    waitForChatView,
    waitForTheme,
    waitForGhostText,
    waitForNotification,
    waitForQuickInput,
    clickViewAction,
    clickInChat,
    press,
    pressNotificationButton,
  });
  const answered = await waitFor(() => fs.existsSync(responseFile), { timeoutMs, intervalMs: 100 });
  if (!answered) throw new Error(`the runner did not take screenshot "${name}" within ${timeoutMs} ms`);
  const response = JSON.parse(fs.readFileSync(responseFile, 'utf8'));
  if (response.error) throw new Error(`screenshot "${name}": ${response.error}`);
  return response;
}

/**
 * The Tidal extension's test API (activating the extension if it is not yet).
 * @returns {Promise<import('../../../src/vscode/testApi').TidalApi>}
 */
async function tidalApi() {
  return tidalExtension().activate();
}

/** The installed Tidal extension (vscode.Extension), not activated here. */
function tidalExtension() {
  const extension = require('vscode').extensions.getExtension('tidal-code.tidal-code');
  assert.ok(extension, 'the Tidal extension is not installed');
  return extension;
}

module.exports = { test, runRegisteredTests, waitFor, captureWorkbench, tidalApi, tidalExtension };
