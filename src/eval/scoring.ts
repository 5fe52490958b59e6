// Scoring of `tidal-eval`: one full-attention prefill per sample, then each attention
// configuration decodes from a fork of that sequence (TidalDecode and Quest act only on decode
// steps, so the prefill is shared). A configuration with sparsePrefillTokens N forks before the
// prompt's last N + 1 tokens instead and prefills N of them under its own attention
// (sparsePrefill: what a keystroke's recomputed tokens would run as), then decodes the last.
import type { AttentionOptions, NativeEngine, SelectionPolicyName } from '../native/addon';
import type { ConfigKey } from './report';

export interface EvalConfig {
  attention: Required<Pick<AttentionOptions, 'mode'>> & AttentionOptions;
  /** Prompt tokens before the last one prefilled under `attention` (tidal, quest); 0: none. */
  sparsePrefillTokens?: number;
}

// "tidal", or "tidal+prefill256" for a configuration whose last 256 prompt tokens run sparse.
function modeOf(config: EvalConfig): string {
  return config.sparsePrefillTokens ? `${config.attention.mode}+prefill${config.sparsePrefillTokens}` : config.attention.mode;
}

// The policies' names in the tables, after the layers: "2,4" (per query head), "2,4/max", "2,4/sum".
const POLICY_SUFFIX: Record<SelectionPolicyName, string> = { perQueryHead: '', perKvHeadMax: '/max', perKvHeadSum: '/sum' };

// "2,4" for tidal, "2,4/max" with the per-KV-head max policy, "-" otherwise.
export function selectionOf(config: EvalConfig): string {
  const { mode, selectionLayers, selectionPolicy } = config.attention;
  return mode === 'tidal' ? (selectionLayers ?? []).join(',') + POLICY_SUFFIX[selectionPolicy ?? 'perQueryHead'] : '-';
}

// "full", "tidal 2,4 b256", "quest b256", "quest+prefill256 b256".
export function labelOf(config: EvalConfig): string {
  const { mode, tokenBudget } = config.attention;
  return mode === 'full' ? 'full' : mode === 'tidal' ? `${modeOf(config)} ${selectionOf(config)} b${tokenBudget}` : `${modeOf(config)} b${tokenBudget}`;
}

export function keyOf(config: EvalConfig): ConfigKey {
  const { mode, tokenBudget } = config.attention;
  return { mode: modeOf(config), selection: selectionOf(config), budget: mode === 'full' ? 0 : (tokenBudget ?? 0) };
}

// full; tidal at every budget for every selection-layer choice (for each selection policy);
// quest at every budget; with sparsePrefillTokens > 0, each tidal and quest configuration again
// with that many prompt tokens prefilled sparse (tidal only with sparseQuest false: the CUDA
// backend prefills Quest densely only).
export function makeEvalConfigs(
  budgets: readonly number[],
  selectionChoices: readonly (readonly number[])[],
  withQuest: boolean,
  sparsePrefillTokens = 0,
  selectionPolicies: readonly SelectionPolicyName[] = ['perQueryHead'],
  sparseQuest = true,
): EvalConfig[] {
  const configs: EvalConfig[] = [{ attention: { mode: 'full' } }];
  for (const policy of selectionPolicies) {
    for (const layers of selectionChoices) {
      for (const budget of budgets) {
        const attention: EvalConfig['attention'] = { mode: 'tidal', tokenBudget: budget, selectionLayers: [...layers] };
        if (policy !== 'perQueryHead') attention.selectionPolicy = policy;
        configs.push({ attention });
      }
    }
  }
  if (withQuest) for (const budget of budgets) configs.push({ attention: { mode: 'quest', tokenBudget: budget } });
  if (sparsePrefillTokens > 0) {
    for (const config of configs.slice(1))
      if (sparseQuest || config.attention.mode !== 'quest') configs.push({ attention: { ...config.attention }, sparsePrefillTokens });
  }
  return configs;
}

// The highest logit's token, the lowest id on ties.
export function argmaxToken(logits: ArrayLike<number>, offset = 0, vocab = logits.length - offset): number {
  let best = 0;
  for (let i = 1; i < vocab; i++) if (logits[offset + i] > logits[offset + best]) best = i;
  return best;
}

// -log softmax(logits)[token], in double precision.
export function negativeLogLikelihood(logits: ArrayLike<number>, offset: number, vocab: number, token: number): number {
  let max = logits[offset];
  for (let i = 1; i < vocab; i++) max = Math.max(max, logits[offset + i]);
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[offset + i] - max);
  return Math.log(sum) + max - logits[offset + token];
}

// Runs `body` with a sequence that is released afterwards, so an error leaks no KV cache.
async function withSequence<T>(engine: NativeEngine, sequence: Promise<number>, body: (id: number) => Promise<T>): Promise<T> {
  const id = await sequence;
  try {
    return await body(id);
  } finally {
    await engine.releaseSequence(id);
  }
}

export class ScoringError extends Error {}

/**
 * Prefills all prompt tokens but the last with full attention; then, per configuration, a fork
 * decodes the last prompt token and greedily the answer (stopping at the first wrong token), so
 * every answer token is predicted by a decode step under that configuration. Returns, per
 * configuration, whether the whole answer came out.
 */
export async function scorePasskey(
  engine: NativeEngine,
  prompt: readonly number[],
  answer: readonly number[],
  configs: readonly EvalConfig[],
): Promise<boolean[]> {
  if (prompt.length < 2 || answer.length === 0) throw new ScoringError('a passkey sample needs a prompt of 2+ tokens and an answer');
  return perConfiguration(engine, prompt, configs, async (next) => {
    for (const expected of answer) if ((await next()) !== expected) return false;
    return true;
  });
}

/**
 * Like scorePasskey, but the answer is text and the model's own token boundaries count for
 * nothing: a fork decodes greedily until the generated text covers `answer` (right) or departs
 * from it (wrong), at most `maxTokens` tokens. An answer that stops inside what the tokenizer
 * would make one token (" kazoRimu(" before "(ledger") is found whether the model writes "(" on
 * its own or "(led"; comparing token ids would call the second wrong.
 */
export async function scoreCompletionText(
  engine: NativeEngine,
  prompt: readonly number[],
  answer: string,
  decodeText: (tokens: readonly number[]) => string,
  configs: readonly EvalConfig[],
  maxTokens: number,
): Promise<boolean[]> {
  if (prompt.length < 2 || answer.length === 0) throw new ScoringError('a completion sample needs a prompt of 2+ tokens and an answer');
  if (!(maxTokens >= 1)) throw new ScoringError('a completion sample needs maxTokens >= 1');
  return perConfiguration(engine, prompt, configs, async (next) => {
    const generated: number[] = [];
    while (generated.length < maxTokens) {
      generated.push(await next());
      const text = decodeText(generated);
      if (text.startsWith(answer)) return true;
      // A byte-level token may end inside a character: wait for the rest of it.
      const settled = text.endsWith('\uFFFD') ? text.slice(0, -1) : text;
      if (!answer.startsWith(settled)) return false;
    }
    return false;
  });
}

// Prefills all prompt tokens but the last with full attention; then, per configuration, a fork
// runs `judge`, whose `next()` decodes one step under that configuration (the last prompt
// token first, then the previous greedy token) and returns the greedy token. A configuration
// with sparsePrefillTokens forks that many tokens earlier and prefills them sparse first.
async function perConfiguration(
  engine: NativeEngine,
  prompt: readonly number[],
  configs: readonly EvalConfig[],
  judge: (next: () => Promise<number>) => Promise<boolean>,
): Promise<boolean[]> {
  return withSequence(engine, engine.createSequence(), async (base) => {
    const held = prompt.length - 1;
    await engine.prefill(base, prompt.slice(0, held));
    const correct: boolean[] = [];
    for (const config of configs) {
      const sparse = Math.min(config.sparsePrefillTokens ?? 0, held - 1);
      correct.push(
        await withSequence(engine, engine.forkSequence(base, held - sparse), async (fork) => {
          if (sparse > 0) await engine.prefill(fork, prompt.slice(held - sparse, held), { attention: { ...config.attention, sparsePrefill: true } });
          let token = prompt[prompt.length - 1];
          return judge(async () => (token = argmaxToken(await engine.decode(fork, token, config.attention))));
        }),
      );
    }
    return correct;
  });
}

export interface NllSum {
  nll: number; // sum of -log p(token) in nats
  tokens: number;
}

/**
 * Teacher-forced negative log-likelihood of window[prefix..]: window[0, prefix - 1) is prefilled
 * with full attention; then tokens window[prefix - 1 .. end - 1) are decoded one by one under
 * each configuration and score the next token. Element 0 of the result is the same tokens
 * scored from one full-attention prefill of the whole window (all logits), a reference the
 * `full` decode must match. A configuration with sparsePrefillTokens (which must be the number
 * of scored tokens) prefills those tokens in one sparse prefill instead, and scores its logits.
 */
export async function scorePerplexity(engine: NativeEngine, window: readonly number[], prefix: number, configs: readonly EvalConfig[]): Promise<NllSum[]> {
  const length = window.length;
  if (prefix < 2 || prefix >= length) throw new ScoringError('perplexity prefix must be in [2, window length)');
  if (configs.some((config) => config.sparsePrefillTokens && config.sparsePrefillTokens !== length - prefix))
    throw new ScoringError(`a sparse prefill scores the ${length - prefix} scored tokens: its sparsePrefillTokens must be that number`);
  const vocab = engine.modelInfo.vocabSize;
  const out: NllSum[] = [];
  out.push(
    await withSequence(engine, engine.createSequence(), async (whole) => {
      const logits = await engine.prefill(whole, window, { allLogits: true });
      const sum: NllSum = { nll: 0, tokens: 0 };
      for (let t = prefix - 1; t + 1 < length; t++) {
        sum.nll += negativeLogLikelihood(logits, t * vocab, vocab, window[t + 1]);
        sum.tokens++;
      }
      return sum;
    }),
  );
  await withSequence(engine, engine.createSequence(), async (base) => {
    await engine.prefill(base, window.slice(0, prefix - 1));
    for (const config of configs) {
      out.push(
        await withSequence(engine, engine.forkSequence(base), async (fork) => {
          const sum: NllSum = { nll: 0, tokens: 0 };
          if (config.sparsePrefillTokens) {
            const logits = await engine.prefill(fork, window.slice(prefix - 1, length - 1), {
              allLogits: true,
              attention: { ...config.attention, sparsePrefill: true },
            });
            for (let t = prefix - 1; t + 1 < length; t++) {
              sum.nll += negativeLogLikelihood(logits, (t - prefix + 1) * vocab, vocab, window[t + 1]);
              sum.tokens++;
            }
            return sum;
          }
          for (let t = prefix - 1; t + 1 < length; t++) {
            sum.nll += negativeLogLikelihood(await engine.decode(fork, window[t], config.attention), 0, vocab, window[t + 1]);
            sum.tokens++;
          }
          return sum;
        }),
      );
    }
  });
  return out;
}
