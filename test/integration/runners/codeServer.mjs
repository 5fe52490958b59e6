// The offline runner: a real VS Code (code-server 4.139, VS Code's server with its web
// workbench) on a loopback port, its workbench opened in headless Chromium.
//
// The suite runs in code-server's extension host (Node 24), loaded the way VS Code loads
// extension tests: the URL's `payload` names an extension development folder
// (test/integration, whose package.json carries the suite) and the test module. code-server
// honours those two only with `--vscode-option enable-smoke-test-driver`.
//
// Screenshots: the suite writes `<name>.request.json` into TIDAL_TEST_CHECKPOINTS; this runner
// looks at the workbench, saves `.test-artifacts/screenshots/<name>.png` and answers with
// `<name>.response.json` (what it saw: the active view container, the chat webview, the
// notifications on screen); it may press a notification's button after the screenshot.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { setupVscodeServer } from '../../../scripts/setup-vscode-server.mjs';
import {
  integrationDir,
  keepVscodeLogs,
  log,
  logsDir,
  readResults,
  repoRoot,
  RunDeadline,
  screenshotsDir,
  SUITE_START_TIMEOUT_MS,
  suiteEntry,
  userSettings,
  afterInstall,
} from './common.mjs';

const EXTENSION_ID = 'tidal-code.tidal-code';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage', // containers often have a tiny /dev/shm
  // Loopback only: any other host name fails to resolve inside the browser.
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
];
const VIEWPORT = { width: 1400, height: 900 };
// Failure guards, not pauses: how long the runner waits for what a screenshot request names
// (the suite waits longer for the answer), and for code-server to report its port.
const WORKBENCH_WAIT_MS = 60_000;
const LISTEN_TIMEOUT_MS = 60_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** vscode-remote URI of a path on the server (this machine) as the workbench names it. */
function remoteUri(authority, absolutePath) {
  return `vscode-remote://${authority}${absolutePath.split(path.sep).map(encodeURIComponent).join('/')}`;
}

function writeJsonAtomically(file, value) {
  writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 2));
  renameSync(`${file}.tmp`, file);
}

function scratchTmpDir(tempRoot) {
  const dir = path.join(tempRoot, 'tmp');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The environment code-server runs in: nothing from the user's own code-server setup leaks in. */
function codeServerEnvironment(tempRoot) {
  const env = { ...process.env };
  for (const name of ['PORT', 'PASSWORD', 'HASHED_PASSWORD', 'VSCODE_OPTIONS', 'VSCODE_PROXY_URI', 'CODE_SERVER_CONFIG']) delete env[name];
  return {
    ...env,
    EXTENSIONS_GALLERY: '{}', // no marketplace: nothing is queried over the network
    XDG_CONFIG_HOME: path.join(tempRoot, 'xdg-config'),
    XDG_DATA_HOME: path.join(tempRoot, 'xdg-data'),
    XDG_CACHE_HOME: path.join(tempRoot, 'xdg-cache'),
    TMPDIR: scratchTmpDir(tempRoot), // its sockets and caches go away with the scratch folder
  };
}

function installVsix(tools, baseArgs, env, vsix) {
  const result = spawnSync(tools.node, [...baseArgs, '--install-extension', vsix], { env, encoding: 'utf8', timeout: 90_000 });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  writeFileSync(path.join(logsDir, 'install-extension.log'), output);
  if (result.status !== 0 || !/successfully installed/i.test(output)) {
    throw new Error(`code-server --install-extension ${path.relative(repoRoot, vsix)} failed (exit ${result.status ?? result.signal}):\n${output.trim()}`);
  }
}

/** Starts code-server on 127.0.0.1 with a port the OS picks; resolves with that port. */
async function startCodeServer(tools, baseArgs, env, workspace, cleanup) {
  const args = [
    ...baseArgs,
    '--auth',
    'none',
    '--bind-addr',
    '127.0.0.1:0',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--ignore-last-opened',
    '--vscode-option',
    'enable-smoke-test-driver',
    workspace,
  ];
  // Its own process group, so that stopping it also stops the extension host and the other
  // processes it starts.
  const server = spawn(tools.node, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const serverLog = createWriteStream(path.join(logsDir, 'code-server.log'));
  server.stdout.pipe(serverLog, { end: false });
  server.stderr.pipe(serverLog, { end: false });
  const killGroup = (signal) => {
    try {
      process.kill(-server.pid, signal);
    } catch {
      // already gone
    }
  };
  const exited = new Promise((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })));
  const killOnExit = () => killGroup('SIGKILL');
  process.once('exit', killOnExit);
  cleanup.add('stop code-server', async () => {
    killGroup('SIGTERM');
    const stopped = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)]);
    if (!stopped) killGroup('SIGKILL');
    killGroup('SIGKILL'); // children that outlived their parent in the same group
    process.removeListener('exit', killOnExit);
    serverLog.end();
  });

  const port = await new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(
      () =>
        reject(new Error(`code-server did not report a listening port within ${LISTEN_TIMEOUT_MS / 1000} s (see .test-artifacts/integration/code-server.log)`)),
      LISTEN_TIMEOUT_MS,
    );
    server.stdout.on('data', (chunk) => {
      seen += chunk;
      const match = /HTTP server listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(seen);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`code-server exited (${code ?? signal}) before listening (see .test-artifacts/integration/code-server.log)`));
    });
  });
  return { port, exited };
}

/** The chat webview's frames: the outer one VS Code positions, the inner one with the content. */
function findChatWebviewFrames(page) {
  const frames = [];
  for (const frame of page.frames()) {
    let url;
    try {
      url = new URL(frame.url());
    } catch {
      continue;
    }
    if (url.searchParams.get('extensionId') === EXTENSION_ID && url.pathname.endsWith('/index.html')) {
      frames.push({ outer: frame, content: frame.childFrames()[0] });
    }
  }
  return frames;
}

async function chatWebviewState(page) {
  for (const { outer, content } of findChatWebviewFrames(page)) {
    const element = await outer.frameElement().catch(() => undefined);
    const visible = element ? await element.isVisible().catch(() => false) : false;
    if (!visible) continue;
    const seen = content
      ? await content.evaluate(() => ({ text: document.body?.innerText ?? '', theme: document.body?.dataset.vscodeThemeKind ?? null })).catch(() => undefined)
      : undefined;
    const box = await element.boundingBox().catch(() => null);
    return {
      chatWebviewVisible: true,
      chatWebviewText: seen?.text ?? '',
      chatWebviewTheme: seen?.theme ?? null,
      chatLocation: box ? await partAt(page, box) : null,
      content,
    };
  }
  return { chatWebviewVisible: false, chatWebviewText: '', chatWebviewTheme: null, chatLocation: null, content: undefined };
}

/**
 * The workbench part the middle of `box` lies in: 'sidebar' (primary side bar), 'auxiliarybar'
 * (secondary side bar), 'panel' or 'editor'; null for none. A webview is drawn over its part,
 * not inside it in the DOM, so its place is read off the screen.
 */
function partAt(page, box) {
  const x = box.x + box.width / 2;
  const y = box.y + box.height / 2;
  return page
    .evaluate(
      ({ x, y }) => {
        for (const part of ['sidebar', 'auxiliarybar', 'panel', 'editor']) {
          const rect = document.getElementById(`workbench.parts.${part}`)?.getBoundingClientRect();
          if (rect && rect.width > 0 && x >= rect.left && x <= rect.right && y >= rect.top && y <= rect.bottom) return part;
        }
        return null;
      },
      { x, y },
    )
    .catch(() => null);
}

/**
 * The view-title actions on screen (their labels, as a screen reader reads them) and the quick
 * input, when one is open: its title and the labels of its rows.
 */
function viewActionsAndQuickInput(page) {
  return page
    .evaluate(() => {
      const shown = (node) => node.getBoundingClientRect().width > 0;
      const viewTitleActions = [...document.querySelectorAll('.title-actions .action-label')]
        .filter(shown)
        .map((node) => node.getAttribute('aria-label') ?? '');
      const widget = document.querySelector('.quick-input-widget');
      const open = widget !== null && shown(widget) && getComputedStyle(widget).display !== 'none';
      const quickInput = open
        ? {
            title: widget.querySelector('.quick-input-title')?.textContent ?? '',
            items: [...widget.querySelectorAll('.quick-input-list .monaco-list-row')].map(
              (row) => row.querySelector('.label-name')?.textContent ?? row.getAttribute('aria-label') ?? '',
            ),
          }
        : null;
      return { viewTitleActions, quickInput };
    })
    .catch(() => ({ viewTitleActions: [], quickInput: null }));
}

/** Clicks the view-title action whose label starts with `label`, as a person would; resolves with whether there was one. */
async function clickViewAction(page, label) {
  const action = page
    .locator(`.title-actions .action-label[aria-label^="${label.replace(/["\\]/g, '')}"]`)
    .filter({ visible: true })
    .first();
  if ((await action.count()) === 0) return false;
  await action.click({ timeout: 10_000 });
  return true;
}

/** Clicks the element `selector` in the chat webview, as a person would; resolves with whether there was one. */
async function clickInChat(page, selector) {
  const { content } = await chatWebviewState(page);
  if (!content) return false;
  const target = content.locator(selector).first();
  if ((await target.count()) === 0) return false;
  await target.click({ timeout: 10_000 });
  return true;
}

/** Resolves once `frame` has drawn two more frames (what was just rendered is on screen), or after a second. */
async function nextPaint(frame) {
  const painted = frame.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve(true)))));
  await Promise.race([painted.catch(() => false), sleep(1000)]);
}

/**
 * Notifications on screen, in toasts or in the open notification center: each one's message and
 * the labels of its buttons. With the smoke-test driver on (as here) VS Code shows no toasts, so
 * a test opens the center (`notifications.showList`) to have its notifications seen.
 */
const NOTIFICATION_ITEMS = '.notifications-toasts .notification-list-item, .notifications-center .notification-list-item';

function notificationItems(page) {
  return page
    .evaluate(
      (selector) =>
        [...document.querySelectorAll(selector)]
          .filter((toast) => toast.getBoundingClientRect().height > 0)
          .map((toast) => ({
            message: toast.querySelector('.notification-list-item-message')?.textContent ?? '',
            buttons: [...toast.querySelectorAll('.notification-list-item-buttons-container .monaco-button')].map((button) => button.textContent ?? ''),
          })),
      NOTIFICATION_ITEMS,
    )
    .catch(() => []);
}

/**
 * Presses the button labelled `label` on the first notification on screen whose message contains
 * `messagePart`, as a person would (a real click); resolves with whether there was one to press.
 */
async function pressNotificationButton(page, messagePart, label) {
  const toast = page.locator(NOTIFICATION_ITEMS, { has: page.locator('.notification-list-item-message', { hasText: messagePart }) }).first();
  const button = toast.locator('.notification-list-item-buttons-container .monaco-button', { hasText: label }).first();
  if ((await button.count()) === 0) return false;
  await button.click({ timeout: 10_000 });
  return true;
}

/**
 * What the workbench shows: the side bar's view container, the chat webview, ghost text, the
 * notifications on screen. Waits first, up to WORKBENCH_WAIT_MS, for what the request names:
 * the chat webview on screen with text in it, the webview in a theme (after a theme change),
 * ghost text in the editor, a notification whose message contains a text.
 */
async function inspectWorkbench(page, { waitForChatView, waitForTheme, waitForGhostText, waitForNotification, waitForQuickInput }) {
  const ghostTextShown = () =>
    page.evaluate(() => document.querySelector('.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text') !== null).catch(() => false);
  // The ghost text as shown: its inline part on the cursor's line and the lines below it.
  const ghostTextContent = () =>
    page
      .evaluate(() =>
        [...document.querySelectorAll('.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text .view-line')]
          .map((node) => node.textContent)
          .join('\n'),
      )
      .catch(() => '');
  const look = async () => {
    const webview = await chatWebviewState(page);
    const ghostText = await ghostTextShown();
    const notifications = await notificationItems(page);
    const { quickInput } = waitForQuickInput ? await viewActionsAndQuickInput(page) : { quickInput: null };
    const ready =
      (!waitForQuickInput || (quickInput !== null && quickInput.title.includes(waitForQuickInput) && quickInput.items.length > 0)) &&
      (!waitForChatView || (webview.chatWebviewVisible && webview.chatWebviewText.trim() !== '')) &&
      (!waitForTheme || webview.chatWebviewTheme === waitForTheme) &&
      (!waitForGhostText || ghostText) &&
      (!waitForNotification || notifications.some((toast) => toast.message.includes(waitForNotification)));
    return { webview, ghostText, notifications, ready };
  };
  const deadline = Date.now() + WORKBENCH_WAIT_MS;
  let seen = await look();
  while (!seen.ready && Date.now() < deadline) {
    await sleep(100);
    seen = await look();
  }
  // What was waited for is in the page; let it reach the screen before the screenshot.
  await nextPaint(page);
  if (seen.webview.content) await nextPaint(seen.webview.content);
  const sidebar = await page.evaluate(() => {
    const part = document.getElementById('workbench.parts.sidebar');
    return {
      activeViewContainer: part?.getAttribute('data-active-composite') ?? null,
      sidebarTitle: part?.querySelector('.composite.title h2')?.textContent ?? null,
    };
  });
  const { content: _content, ...webview } = seen.webview;
  return {
    ...sidebar,
    ...webview,
    ...(await viewActionsAndQuickInput(page)),
    ghostTextVisible: seen.ghostText,
    ghostText: seen.ghostText ? await ghostTextContent() : '',
    notifications: seen.notifications,
  };
}

async function answerScreenshotRequests(page, checkpointsDir) {
  for (const file of readdirSync(checkpointsDir).filter((name) => name.endsWith('.request.json'))) {
    const requestFile = path.join(checkpointsDir, file);
    let request;
    try {
      request = JSON.parse(readFileSync(requestFile, 'utf8'));
    } catch {
      continue; // still being written
    }
    rmSync(requestFile, { force: true });
    const name = String(request.name).replace(/[^\w.-]/g, '_');
    let response;
    try {
      // A view-title action or an element of the chat panel to click first, then keys to press,
      // as a person would (Playwright names: 'Alt+Backslash').
      const clicked = {};
      if (typeof request.clickViewAction === 'string') clicked.clickedViewAction = await clickViewAction(page, request.clickViewAction);
      if (typeof request.clickInChat === 'string') clicked.clickedInChat = await clickInChat(page, request.clickInChat);
      for (const key of Array.isArray(request.press) ? request.press : []) await page.keyboard.press(String(key));
      const workbench = await inspectWorkbench(page, {
        waitForChatView: Boolean(request.waitForChatView),
        waitForTheme: typeof request.waitForTheme === 'string' ? request.waitForTheme : undefined,
        waitForGhostText: Boolean(request.waitForGhostText),
        waitForNotification: typeof request.waitForNotification === 'string' ? request.waitForNotification : undefined,
        waitForQuickInput: typeof request.waitForQuickInput === 'string' ? request.waitForQuickInput : undefined,
      });
      const screenshot = path.join(screenshotsDir, `${name}.png`);
      await page.screenshot({ path: screenshot, timeout: 30_000 });
      log(`screenshot ${path.relative(repoRoot, screenshot)}`);
      response = { screenshot: path.relative(repoRoot, screenshot), workbench, ...clicked };
      // After the screenshot, so that it shows the notification as it was offered.
      const press = request.pressNotificationButton;
      if (press && typeof press.message === 'string' && typeof press.button === 'string') {
        response.pressedNotificationButton = await pressNotificationButton(page, press.message, press.button);
      }
    } catch (error) {
      response = { error: error instanceof Error ? error.message : String(error) };
    }
    writeJsonAtomically(path.join(checkpointsDir, `${name}.response.json`), response);
  }
}

/**
 * Runs the suite in code-server; resolves with what the suite wrote (and a harness error when
 * the run could not finish). Everything started is registered with `cleanup`.
 */
export async function runWithCodeServer({ vsix, run, cleanup, suiteEnvironment = {}, timeoutMs }) {
  const tools = setupVscodeServer();
  // The limit covers starting VS Code and the suite, not a first-time tool install.
  const deadline = new RunDeadline(timeoutMs);
  const { chromium } = await import('playwright-core');

  mkdirSync(path.join(run.userDataDir, 'User'), { recursive: true });
  writeFileSync(path.join(run.userDataDir, 'User', 'settings.json'), JSON.stringify(userSettings, null, 2));
  const configFile = path.join(run.tempRoot, 'code-server.yaml');
  writeFileSync(configFile, 'auth: none\n');
  const env = codeServerEnvironment(run.tempRoot);
  const baseArgs = [tools.codeServerEntry, '--config', configFile, '--user-data-dir', run.userDataDir, '--extensions-dir', run.extensionsDir];
  cleanup.add('keep VS Code logs', () => keepVscodeLogs(run.userDataDir));

  log(`installing ${path.relative(repoRoot, vsix)} into a fresh extensions folder`);
  installVsix(tools, baseArgs, env, vsix);
  afterInstall(run, suiteEnvironment);

  const { port, exited } = await startCodeServer(tools, baseArgs, env, run.opened, cleanup);
  const authority = `127.0.0.1:${port}`;
  log(`code-server listening on http://${authority}/`);

  const context = await chromium.launchPersistentContext(path.join(run.tempRoot, 'chromium-profile'), {
    executablePath: tools.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: VIEWPORT,
    timeout: 60_000,
    // Chromium's crash-report and cache folders go to the scratch folder, not the user's home.
    env: {
      ...process.env,
      TMPDIR: scratchTmpDir(run.tempRoot),
      XDG_CONFIG_HOME: path.join(run.tempRoot, 'xdg-config'),
      XDG_CACHE_HOME: path.join(run.tempRoot, 'xdg-cache'),
    },
  });
  cleanup.add('close Chromium', () => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleLog = createWriteStream(path.join(logsDir, 'browser-console.log'));
  cleanup.add('close browser console log', () => new Promise((resolve) => consoleLog.end(resolve)));
  page.on('console', (message) => consoleLog.write(`[${message.type()}] ${message.text()}\n`));
  page.on('pageerror', (error) => consoleLog.write(`[pageerror] ${error.message}\n`));

  const payload = [
    ['extensionDevelopmentPath', remoteUri(authority, integrationDir)],
    ['extensionTestsPath', remoteUri(authority, suiteEntry)],
    [
      'extensionEnvironment',
      JSON.stringify({
        ...suiteEnvironment,
        // The extension builds its test API only when told it runs under the tests.
        TIDAL_TEST_API: '1',
        TIDAL_TEST_RESULTS: run.resultsFile,
        TIDAL_TEST_CHECKPOINTS: run.checkpointsDir,
        TIDAL_TEST_EXTENSIONS_DIR: run.extensionsDir,
      }),
    ],
    ['skipWelcome', 'true'],
    ['skipReleaseNotes', 'true'],
  ];
  const query = new URLSearchParams({ [run.opened.endsWith('.code-workspace') ? 'workspace' : 'folder']: run.opened, payload: JSON.stringify(payload) });
  await page.goto(`http://${authority}/?${query}`, { timeout: 60_000 });
  log('workbench loaded; the suite runs in the extension host');

  /** @type {{ code: number | null, signal: string | null } | undefined} */
  let serverExit;
  exited.then((status) => (serverExit = status));
  let results;
  let harnessError;
  const startDeadline = Date.now() + SUITE_START_TIMEOUT_MS;
  for (;;) {
    await answerScreenshotRequests(page, run.checkpointsDir);
    results = readResults(run.resultsFile);
    if (results?.finished) break;
    if (serverExit) {
      harnessError = `code-server exited (${serverExit.code ?? serverExit.signal}) while the suite ran`;
      break;
    }
    if (!results && Date.now() > startDeadline) {
      harnessError = `the suite did not start within ${SUITE_START_TIMEOUT_MS / 1000} s of the workbench loading (see .test-artifacts/integration/)`;
      break;
    }
    if (deadline.passed(results)) {
      harnessError =
        timeoutMs === undefined
          ? "the suite ran past the sum of its tests' time limits"
          : 'the suite did not finish before the time limit (TIDAL_INTEGRATION_TIMEOUT_S)';
      break;
    }
    await sleep(200);
  }
  if (harnessError) {
    const screenshot = path.join(screenshotsDir, 'integration-failure.png');
    await page.screenshot({ path: screenshot, timeout: 10_000 }).then(
      () => log(`screenshot ${path.relative(repoRoot, screenshot)}`),
      () => undefined,
    );
  }
  if (!existsSync(run.resultsFile) && !harnessError) harnessError = 'the suite wrote no results';
  return { results, harnessError };
}
