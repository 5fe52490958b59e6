// Renders a conversation into prompt text with the model's own chat template
// (tokenizer_config.json `chat_template`, a Jinja template).
//
// A template is code that came with the model's files, and @huggingface/jinja runs whatever it
// says: `{% for i in range(100000000) %}` holds the thread for a minute and then runs the heap
// out. So no template runs on this thread. Every render goes to a worker thread with a heap
// limit, and the caller waits for its answer (Atomics.wait, so renderChat stays synchronous) at
// most a time limit. A render past a limit costs its worker, which is terminated (the next
// render starts a new one), and its request, which gets an error naming the template.
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';

import type { TokenizerConfig } from '../tokenizer/tokenizer';
import { tokenContent } from '../tokenizer/tokenizer';
import { TidalError } from '../../native/errors';

export type ChatRole = 'system' | 'user' | 'assistant';
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** How long the caller waits for one render. */
export const RENDER_TIME_LIMIT_MS = 2_000;
/** The worker's heap; a template that needs more is stopped. */
const RENDER_HEAP_MB = 256;
/** A rendered prompt longer than this is refused: no model's context holds it. */
const MAX_RENDERED_CHARS = 16 * 1024 * 1024;
/** Starting the worker (loading the template library) is not the template's time. */
const WORKER_START_LIMIT_MS = 10_000;
/** Compiled templates the worker keeps (a session renders with one or two). */
const COMPILED_TEMPLATES = 8;

// The dist bundles carry @huggingface/jinja as text (esbuild.mjs defines it): a worker runs code
// given as text, and a packaged extension has no node_modules to load the library from. Other
// bundles (the tests) load it from node_modules.
declare const TIDAL_JINJA_BUNDLE: string | undefined;

function jinjaLoader(): string {
  if (typeof TIDAL_JINJA_BUNDLE === 'string') return `(function () {\n${TIDAL_JINJA_BUNDLE}\nreturn tidalJinja;\n})()`;
  let resolved: string;
  try {
    resolved = require.resolve('@huggingface/jinja');
  } catch {
    resolved = require.resolve('@huggingface/jinja', { paths: [process.cwd()] });
  }
  return `require(${JSON.stringify(resolved)})`;
}

// The worker: answers each render request on `port` and then raises `signal`, which the caller
// waits on. Answers: { text } | { stage: 'parse' | 'render' | 'size', error }; at start
// { stage: 'ready' } or { stage: 'start', error }.
const workerCode = (loadJinja: string) => `
const { workerData } = require('node:worker_threads');
const { signal, port, maxChars, keep } = workerData;
const answer = (reply) => {
  port.postMessage(reply);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
};
const messageOf = (error) => (error instanceof Error ? error.message : String(error));
let jinja;
try {
  jinja = ${loadJinja};
} catch (error) {
  answer({ stage: 'start', error: messageOf(error) });
}
if (jinja !== undefined) {
  const compiled = new Map();
  port.on('message', ({ source, context }) => {
    let template = compiled.get(source);
    if (template === undefined) {
      try {
        template = new jinja.Template(source);
      } catch (error) {
        return answer({ stage: 'parse', error: messageOf(error) });
      }
      if (compiled.size >= keep) compiled.clear();
      compiled.set(source, template);
    }
    let text;
    try {
      text = template.render(context);
    } catch (error) {
      return answer({ stage: 'render', error: messageOf(error) });
    }
    if (text.length > maxChars) return answer({ stage: 'size', error: String(text.length) });
    answer({ text });
  });
  answer({ stage: 'ready' });
}
`;

interface RenderAnswer {
  text?: string;
  stage?: 'ready' | 'start' | 'parse' | 'render' | 'size';
  error?: string;
}

class RenderWorker {
  private readonly signal = new Int32Array(new SharedArrayBuffer(4));
  private readonly port: MessagePort;
  private readonly worker: Worker;
  private started = false;

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(workerCode(jinjaLoader()), {
      eval: true,
      workerData: { signal: this.signal, port: port2, maxChars: MAX_RENDERED_CHARS, keep: COMPILED_TEMPLATES },
      transferList: [port2],
      resourceLimits: { maxOldGenerationSizeMb: RENDER_HEAP_MB },
      // The engine host's stdout carries the protocol: nothing of the worker may reach it.
      stdout: true,
      stderr: true,
    });
    this.worker.stdout.resume();
    this.worker.stderr.resume();
    // A worker past its heap limit ends with ERR_WORKER_OUT_OF_MEMORY; the render waiting on it
    // has already timed out and dropped it.
    this.worker.on('error', () => undefined);
    this.worker.unref();
  }

  /** The worker's answer, or undefined when it did not come within `ms` (the worker is then dead or stuck). */
  render(source: string, context: Record<string, unknown>, ms: number): RenderAnswer | undefined {
    if (!this.started) {
      const start = this.wait(WORKER_START_LIMIT_MS);
      if (start?.stage !== 'ready') {
        const why = start === undefined ? `it did not start within ${WORKER_START_LIMIT_MS / 1000} s` : start.error;
        throw Object.assign(new Error(`The chat template renderer could not start: ${why}`), { code: 'ERR_TIDAL_ENGINE' });
      }
      this.started = true;
    }
    this.port.postMessage({ source, context });
    return this.wait(ms);
  }

  terminate(): void {
    void this.worker.terminate().catch(() => undefined);
    this.port.close();
  }

  private wait(ms: number): RenderAnswer | undefined {
    if (Atomics.wait(this.signal, 0, 0, ms) === 'timed-out') return undefined;
    Atomics.store(this.signal, 0, 0);
    return receiveMessageOnPort(this.port)?.message as RenderAnswer | undefined;
  }
}

let renderWorker: RenderWorker | undefined;

/**
 * Starts the render worker now, without waiting for it (loading the template library takes a few
 * hundred milliseconds), so that the first chat request does not pay for it.
 */
export function startChatRenderer(): void {
  renderWorker ??= new RenderWorker();
}

// The template to use: a plain string, or the entry named 'default' of a list of named templates.
export function findChatTemplate(config: TokenizerConfig): string | undefined {
  const template = config.chat_template;
  if (typeof template === 'string') return template;
  if (Array.isArray(template)) return template.find((entry) => entry.name === 'default')?.template ?? template[0]?.template;
  return undefined;
}

export function renderChat(
  config: TokenizerConfig,
  messages: ChatMessage[],
  options: { addGenerationPrompt?: boolean; modelName?: string; timeLimitMs?: number } = {},
): string {
  const source = findChatTemplate(config);
  const model = options.modelName ? ` (model ${options.modelName})` : '';
  if (source === undefined) {
    throw new TidalError(
      'ERR_TIDAL_REQUEST',
      `The model${options.modelName ? ` ${options.modelName}` : ''} has no chat template in tokenizer_config.json, ` +
        'so it cannot be used for chat. Pick an instruction-tuned (chat) model, or use it for completions only.',
    );
  }
  const context = {
    messages,
    add_generation_prompt: options.addGenerationPrompt ?? true,
    bos_token: tokenContent(config.bos_token) ?? '',
    eos_token: tokenContent(config.eos_token) ?? '',
    pad_token: tokenContent(config.pad_token) ?? '',
  };
  const limitMs = options.timeLimitMs ?? RENDER_TIME_LIMIT_MS;
  renderWorker ??= new RenderWorker();
  let answer: RenderAnswer | undefined;
  try {
    answer = renderWorker.render(source, context, limitMs);
  } catch (error) {
    renderWorker.terminate();
    renderWorker = undefined;
    throw error;
  }
  if (answer === undefined) {
    renderWorker.terminate();
    renderWorker = undefined;
    throw new TidalError(
      'ERR_TIDAL_REQUEST',
      `The model's chat template did not finish within ${limitMs / 1000} s: it loops too long or needs more than ${RENDER_HEAP_MB} MB${model}. ` +
        "Fix chat_template in the model's tokenizer_config.json, or pick another model.",
    );
  }
  switch (answer.stage) {
    case 'parse':
      throw new TidalError('ERR_TIDAL_REQUEST', `The model's chat template could not be parsed: ${answer.error}${model}`);
    case 'render':
      throw new TidalError('ERR_TIDAL_REQUEST', `The model's chat template failed on this conversation: ${answer.error}${model}`);
    case 'size':
      throw new TidalError(
        'ERR_TIDAL_REQUEST',
        `The model's chat template wrote ${answer.error} characters for this conversation, more than the ${MAX_RENDERED_CHARS} allowed${model}. ` +
          "Fix chat_template in the model's tokenizer_config.json, or pick another model.",
      );
  }
  return answer.text ?? '';
}

/** Drops a leading BOS that the chat template wrote, for prompts that already start with one. */
export function withoutLeadingBos(text: string, bosToken: string | undefined): string {
  return bosToken && text.startsWith(bosToken) ? text.slice(bosToken.length) : text;
}
