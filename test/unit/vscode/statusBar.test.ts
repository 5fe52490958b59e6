// The status bar item's text and tooltip in each state, over a stand-in for the few `vscode`
// classes it uses: the repository's warm-up from the engine host's workspace/status, and engine
// and model problems taking precedence over it.
import Module from 'node:module';
import assert from 'node:assert/strict';
import { test } from 'node:test';

class MarkdownString {
  value = '';
  constructor(value = '') {
    this.value = value;
  }
  appendMarkdown(text: string) {
    this.value += text;
    return this;
  }
  appendText(text: string) {
    this.value += text.replace(/[\\`*_{}[\]()#+\-.!]/g, '\\$&');
    return this;
  }
}
class ThemeColor {
  constructor(readonly id: string) {}
}
const fakeVscode = {
  StatusBarAlignment: { Left: 1, Right: 2 },
  MarkdownString,
  ThemeColor,
  window: { createStatusBarItem: () => ({ text: '', tooltip: undefined as unknown, show() {}, dispose() {} }) },
};
const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const load = loader._load;
loader._load = function (request: string, ...rest: unknown[]) {
  return request === 'vscode' ? fakeVscode : load.call(this, request, ...rest);
};

const { TidalStatusBar, DEMO_MODEL_NOTE, repositoryShare, tokensPerSecond } =
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('../../../src/vscode/statusBar') as typeof import('../../../src/vscode/statusBar');
import type { RepositoryStatus } from '../../../src/core/protocol/protocol';
import type { EngineStatus } from '../../../src/vscode/engineClient';
import type { ModelState } from '../../../src/vscode/modelController';
import type { CompletionActivity } from '../../../src/vscode/statusBar';
import { humanDuration, repositoryProgressText, repositoryTooltipLine, timeLeft } from '../../../src/vscode/repositoryStatusText';

const engine: EngineStatus = {
  state: 'ready',
  info: { engineVersion: '0.1.0', compiledBackends: ['cpu'], cuda: { usable: false, deviceName: '', message: 'no GPU' }, pid: 1, nodeVersion: 'v20' },
};
const model = {
  state: 'ready',
  loaded: { modelDir: '/models/mini', model: { backend: 'cpu', maxContext: 8192 }, tokenizer: {} },
  loadMs: 10,
  embedded: true,
} as unknown as ModelState;
const status = (state: RepositoryStatus['state'], extra: Partial<RepositoryStatus> = {}): RepositoryStatus => ({
  state,
  files: 120,
  droppedFiles: 3,
  skippedFiles: 2,
  totalTokens: 99_000,
  warmTokens: 45_000,
  ...extra,
});

function show(repository: RepositoryStatus | undefined, engineStatus = engine, modelState: ModelState = model, figures: Partial<CompletionActivity> = {}) {
  const bar = new TidalStatusBar();
  bar.update(engineStatus, true, modelState, { busy: false, contextTokens: 1234, lastLatencyMs: 80, repository, ...figures });
  const item = (bar as unknown as { item: { text: string; tooltip: unknown; backgroundColor?: ThemeColor } }).item;
  const tooltip = typeof item.tooltip === 'string' ? item.tooltip : (item.tooltip as MarkdownString).value;
  return { text: item.text, tooltip, background: item.backgroundColor?.id };
}

test('reading the repository, then its context warming up with the time left', () => {
  assert.equal(show(status('scanning')).text, '$(sync~spin) Tidal: reading repository…');
  assert.equal(show(status('warming', { etaMs: 12_300 })).text, '$(sync~spin) Tidal: context 45K/99K tokens, 12 s left');
  assert.equal(show(status('warming')).text, '$(sync~spin) Tidal: context 45K/99K tokens', 'no time when none is known');
  assert.equal(
    show(status('warming', { warmTokens: 4500, totalTokens: 9000, etaMs: 150_000 })).text,
    '$(sync~spin) Tidal: context 4.5K/9.0K tokens, 3 min left',
  );
  assert.match(show(status('warming', { etaMs: 12_300 })).tooltip, /45,000 of 99,000 tokens done/);
});

test("a request's long prompt being read shows its progress; the repository's warm-up goes first; done, the usual text", () => {
  const reading = { requestId: 'chat-1', done: 6000, total: 14_239, etaMs: 3400 };
  assert.equal(show(status('ready'), engine, model, { prefill: reading }).text, '$(sync~spin) Tidal: reading 6.0K/14K tokens, 3 s left');
  assert.equal(show(status('ready'), engine, model, { prefill: { ...reading, etaMs: undefined } }).text, '$(sync~spin) Tidal: reading 6.0K/14K tokens');
  assert.equal(show(status('warming', { etaMs: 12_300 }), engine, model, { prefill: reading }).text, '$(sync~spin) Tidal: context 45K/99K tokens, 12 s left');
  assert.equal(show(status('ready'), engine, model, { prefill: { ...reading, done: 14_239 } }).text, '$(pulse) Tidal CPU · 1.2K ctx · 80 ms');
});

test('busy for any engine work: a completion in flight, the chat answering, an edit being written, or several; idle otherwise', () => {
  const idle = show(status('ready'));
  assert.equal(idle.text, '$(pulse) Tidal CPU · 1.2K ctx · 80 ms');
  assert.match(idle.tooltip, /— ready/);
  const answering = show(status('ready'), engine, model, { answering: true });
  assert.equal(answering.text, '$(sync~spin) Tidal CPU · 1.2K ctx · 80 ms');
  assert.match(answering.tooltip, /busy \(answering in the chat\)/);
  assert.match(show(status('ready'), engine, model, { busy: true }).tooltip, /busy \(completing\)/);
  assert.match(show(status('ready'), engine, model, { busy: true, answering: true }).tooltip, /busy \(completing, answering in the chat\)/);
  const editing = show(status('ready'), engine, model, { editing: true });
  assert.equal(editing.text, '$(sync~spin) Tidal CPU · 1.2K ctx · 80 ms');
  assert.match(editing.tooltip, /busy \(editing the selection\)/);
});

test('ready: the usual text; the tooltip counts files, tokens, the restored ones and those left out', () => {
  const ready = show(status('ready', { warmTokens: 99_000, restoredTokens: 60_000 }));
  assert.equal(ready.text, '$(pulse) Tidal CPU · 1.2K ctx · 80 ms');
  assert.match(ready.tooltip, /Repository: 120 files, 99,000 tokens in context \\\(60,000 restored from disk\\\), 3 files left out by the token budget/);
  const plain = show(status('ready', { droppedFiles: 0 }));
  assert.doesNotMatch(plain.tooltip, /restored|left out/);
});

test('a repository error: warning icon, the message in the tooltip; no host repository: nothing about it', () => {
  const failed = show(status('error', { message: 'cannot read /home/dev/demo' }));
  assert.equal(failed.text, '$(warning) Tidal CPU · 1.2K ctx · 80 ms');
  assert.match(failed.tooltip, /Repository context failed: cannot read \/home\/dev\/demo\\\. Completions and chat work without it\\\./);
  const none = show(undefined);
  assert.equal(none.text, '$(pulse) Tidal CPU · 1.2K ctx · 80 ms');
  assert.doesNotMatch(none.tooltip, /Repository/);
  assert.equal(show(status('closed')).text, none.text);
});

test('engine and model problems take precedence over the repository', () => {
  const warming = status('warming', { etaMs: 5000 });
  const engineDown = show(warming, { state: 'error', message: 'The engine stopped unexpectedly (signal SIGKILL).' });
  assert.equal(engineDown.text, '$(error) Tidal');
  assert.match(engineDown.tooltip, /SIGKILL/);
  const modelFailed = show(warming, engine, {
    state: 'error',
    modelDir: '/m',
    message: 'Could not load the model: out of memory',
    embedded: false,
    cause: 'memory',
  });
  assert.equal(modelFailed.text, '$(warning) Tidal');
  assert.equal(modelFailed.background, 'statusBarItem.warningBackground');
  assert.equal(show(warming, engine, { state: 'loading', modelDir: '/m' }).text, '$(loading~spin) Tidal');
});

test('the texts as functions: progress only while reading or warming; times in s, then min', () => {
  assert.equal(repositoryProgressText(undefined), undefined);
  assert.equal(repositoryProgressText(status('ready')), undefined);
  assert.equal(repositoryProgressText(status('paused')), undefined);
  assert.match(repositoryTooltipLine(status('paused'))!, /paused at 45,000 of 99,000 tokens/);
  assert.equal(
    repositoryTooltipLine(status('ready', { files: 1, droppedFiles: 1 })),
    'Repository: 1 file, 99,000 tokens in context, 1 file left out by the token budget',
  );
  assert.equal(timeLeft(undefined), undefined);
  assert.equal(timeLeft(400), '1 s');
  assert.equal(timeLeft(89_000), '89 s');
  assert.equal(timeLeft(600_000), '10 min');
});

test('durations read as a person reads them, at every scale and at the unit boundaries', () => {
  assert.equal(humanDuration(0), '0 ms');
  assert.equal(humanDuration(80.4), '80 ms');
  assert.equal(humanDuration(999.4), '999 ms');
  assert.equal(humanDuration(1000), '1.0 s');
  assert.equal(humanDuration(5_449), '5.4 s');
  assert.equal(humanDuration(9_949), '9.9 s');
  assert.equal(humanDuration(9_950), '10 s');
  assert.equal(humanDuration(54_197), '54 s');
  assert.equal(humanDuration(59_499), '59 s');
  assert.equal(humanDuration(59_500), '1 min');
  assert.equal(humanDuration(125_000), '2 min 5 s');
  assert.equal(humanDuration(Number.NaN), '–');
  assert.equal(humanDuration(-1), '–');
  // Random durations: the text's number, scaled by its unit, is within rounding of the input.
  let seed = 0x2545f491;
  const random = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  for (let i = 0; i < 500; i++) {
    const ms = random() ** 3 * 600_000;
    const text = humanDuration(ms);
    const m = /^(?:(\d+) min(?: (\d+) s)?|([\d.]+) (ms|s))$/.exec(text);
    assert.ok(m, `${ms} -> ${text}`);
    const back = m[1] !== undefined ? Number(m[1]) * 60_000 + Number(m[2] ?? 0) * 1000 : Number(m[3]) * (m[4] === 's' ? 1000 : 1);
    const tolerance = ms < 1000 ? 0.5 : ms < 9950 ? 50 : 500;
    assert.ok(Math.abs(back - ms) <= tolerance + 1e-9, `${ms} -> ${text} reads as ${back}`);
  }
});

test('a long completion shows "54 s", not "54197 ms"; the tooltip gives first token, tokens and their rate', () => {
  const slow = show(undefined, engine, model, { lastLatencyMs: 54_197, lastFirstTokenMs: 1_250, lastTokens: 24, lastDecodeMs: 800 });
  assert.equal(slow.text, '$(pulse) Tidal CPU · 1.2K ctx · 54 s');
  assert.match(slow.tooltip, /Last completion: 54 s, first token after 1\.3 s, 24 tokens at 30\.0 tokens\/s/);
  assert.equal(tokensPerSecond(1, 10), undefined, 'one token has no rate');
  assert.equal(tokensPerSecond(10, 0), undefined);
  assert.equal(tokensPerSecond(300, 1000), '300 tokens/s');
});

test('the embedded model is called a demo, with a link to select a real one; where it runs is said', () => {
  const demo = show(undefined);
  assert.ok(demo.tooltip.includes(DEMO_MODEL_NOTE));
  assert.match(DEMO_MODEL_NOTE, /demo/);
  assert.match(DEMO_MODEL_NOTE, /\(command:tidal\.selectModel\)/);
  assert.match(demo.tooltip, /Runs on: CPU/);
  const real = show(undefined, engine, { ...model, embedded: false } as ModelState);
  assert.doesNotMatch(real.tooltip, /demo/);
  assert.match(real.tooltip, /Model: \/models\/mini/);
  const gpu = show(undefined, { ...engine, info: { ...engine.info!, cuda: { usable: true, deviceName: 'NVIDIA H100', message: '' } } }, {
    ...model,
    loaded: { ...(model as { loaded: object }).loaded, model: { backend: 'cuda', maxContext: 8192 } },
  } as unknown as ModelState);
  assert.match(gpu.tooltip, /Runs on: GPU \\\(NVIDIA H100\\\)/);
  assert.equal(gpu.text, '$(pulse) Tidal CUDA · 1.2K ctx · 80 ms');
});

test("the repository's share of the prompt: files in it of all it has, only once ready", () => {
  assert.equal(repositoryShare(status('ready', { files: 120, droppedFiles: 3 })), 'In the prompt: 120 of 123 repository files (97%)');
  assert.equal(
    repositoryShare(status('ready', { files: 1399, droppedFiles: 1 })),
    'In the prompt: 1,399 of 1,400 repository files (99%)',
    'never rounds up to 100% while a file is out',
  );
  assert.equal(repositoryShare(status('ready', { files: 0, droppedFiles: 0 })), undefined);
  assert.equal(repositoryShare(status('warming')), undefined);
  assert.match(show(status('ready', { files: 120, droppedFiles: 3 })).tooltip, /In the prompt: 120 of 123 repository files \\\(97%\\\)/);
});

test('no local engine: the status bar names the platform, the tooltip leads to the remote backend; with it selected, REMOTE as usual', () => {
  const unavailable: EngineStatus = { state: 'unavailable', message: 'not here', problem: { kind: 'missing', message: 'not here' } };
  const idle: ModelState = { state: 'idle', message: 'Tidal has no local engine on darwin-arm64.' };
  const render = (remoteUrl?: string) => {
    const bar = new TidalStatusBar('darwin-arm64');
    bar.update(unavailable, true, idle, { busy: false, remoteUrl });
    return { text: bar.text, tooltip: bar.tooltipText };
  };
  const local = render();
  assert.equal(local.text, '$(circle-slash) Tidal: no local engine on darwin-arm64');
  assert.match(local.tooltip, /this package has no native engine for darwin-arm64/);
  assert.match(local.tooltip, /Open the remote server settings/);
  const remote = render('http://gpu-box:8765/v1');
  assert.equal(remote.text, '$(pulse) Tidal REMOTE');
  assert.match(
    remote.tooltip,
    /OpenAI-compatible server at http:\/\/gpu-box:8765\/v1\. There is no local engine on darwin-arm64; requests go to the remote server/,
  );
});
