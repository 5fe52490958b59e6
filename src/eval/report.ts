// Results of `tidal-eval`: one record per (sample, configuration), saved as tab-separated
// lines so runs on several machines can be merged, and rendered as Markdown tables.
import { formatFixed, formatGeneral } from './printfNumber';

export interface ConfigKey {
  mode: string; // "full", "tidal", "quest"; perplexity also "full-prefill"
  selection: string; // tidal selection layers "2,4", else "-"
  budget: number; // 0 for full
}

export interface PasskeyRecord {
  context: number;
  depth: number;
  trial: number;
  config: ConfigKey;
  correct: boolean;
}

export interface PerplexityRecord {
  window: number;
  windowTokens: number; // window length
  config: ConfigKey;
  nll: number; // summed over the scored tokens
  tokens: number;
}

// Cross-file completion (src/eval/crossfile.ts): the helper's file at `depth` of the window.
export type CrossFileRecord = PasskeyRecord;

export interface EvalResults {
  passkey: PasskeyRecord[];
  perplexity: PerplexityRecord[];
  crossfile?: CrossFileRecord[];
}

export class ResultsFileError extends Error {}

const sameConfig = (a: ConfigKey, b: ConfigKey) => a.mode === b.mode && a.selection === b.selection && a.budget === b.budget;

export function serializeResults(results: EvalResults): string {
  let out = '';
  for (const r of results.passkey) {
    out += `passkey\t${r.context}\t${formatFixed(r.depth, 4)}\t${r.trial}\t${r.config.mode}\t${r.config.selection}\t${r.config.budget}\t${r.correct ? 1 : 0}\n`;
  }
  for (const r of results.crossfile ?? []) {
    out += `crossfile\t${r.context}\t${formatFixed(r.depth, 4)}\t${r.trial}\t${r.config.mode}\t${r.config.selection}\t${r.config.budget}\t${r.correct ? 1 : 0}\n`;
  }
  for (const r of results.perplexity) {
    out += `perplexity\t${r.window}\t${r.windowTokens}\t${r.config.mode}\t${r.config.selection}\t${r.config.budget}\t${formatGeneral(r.nll, 9)}\t${r.tokens}\n`;
  }
  return out;
}

function integerField(text: string): number {
  if (!/^[-+]?\d+$/.test(text)) throw new ResultsFileError(text);
  return Number(text);
}

function numberField(text: string): number {
  if (/^[-+]?(nan|inf)$/i.test(text)) return text.toLowerCase().endsWith('nan') ? NaN : text.startsWith('-') ? -Infinity : Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new ResultsFileError(text);
  return Number(text);
}

// Adds the records of a file written by --save; `source` names it in errors.
export function appendResults(text: string, source: string, results: EvalResults): void {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, index) => {
    if (line === '') return;
    const f = line.split('\t');
    try {
      if (f.length === 8 && (f[0] === 'passkey' || f[0] === 'crossfile')) {
        const records = f[0] === 'passkey' ? results.passkey : (results.crossfile ??= []);
        records.push({
          context: integerField(f[1]),
          depth: numberField(f[2]),
          trial: integerField(f[3]),
          config: { mode: f[4], selection: f[5], budget: integerField(f[6]) },
          correct: f[7] === '1',
        });
        return;
      }
      if (f.length === 8 && f[0] === 'perplexity') {
        results.perplexity.push({
          window: integerField(f[1]),
          windowTokens: integerField(f[2]),
          config: { mode: f[3], selection: f[4], budget: integerField(f[5]) },
          nll: numberField(f[6]),
          tokens: integerField(f[7]),
        });
        return;
      }
    } catch (error) {
      if (!(error instanceof ResultsFileError)) throw error;
    }
    throw new ResultsFileError(`${source}:${index + 1}: not a line \`tidal-eval --save\` writes; pass files it wrote to --load`);
  });
}

function percent(hits: number, total: number): string {
  return total === 0 ? '-' : `${formatFixed((100 * hits) / total, 0)}%`;
}

export function contextName(context: number): string {
  return context % 1024 === 0 ? `${context / 1024}K` : String(context);
}

// Configurations in the order they first appear.
function configsOf(records: { config: ConfigKey }[]): ConfigKey[] {
  const out: ConfigKey[] = [];
  for (const r of records) if (!out.some((k) => sameConfig(k, r.config))) out.push(r.config);
  return out;
}

class Tally {
  hits = 0;
  total = 0;
  rate(): number {
    return this.total ? this.hits / this.total : 0;
  }
}

function tallyOf<K>(map: Map<K, Tally>, key: K): Tally {
  let tally = map.get(key);
  if (tally === undefined) map.set(key, (tally = new Tally()));
  return tally;
}

const budgetText = (budget: number) => (budget ? String(budget) : '-');

// The tallies of retrieval records (passkey, cross-file): every configuration's by context, and
// full attention's by (context, depth).
function retrievalTallies(records: readonly PasskeyRecord[]) {
  const contexts = [...new Set(records.map((r) => r.context))].sort((a, b) => a - b);
  const depths = [...new Set(records.map((r) => r.depth))].sort((a, b) => a - b);
  const configs = configsOf([...records]);
  const byContext = configs.map(() => new Map<number, Tally>());
  const fullByDepth = new Map<string, Tally>();
  const cell = (context: number, depth: number) => `${context}|${depth}`;
  for (const r of records) {
    const t = tallyOf(byContext[configs.findIndex((k) => sameConfig(k, r.config))], r.context);
    t.hits += Number(r.correct);
    t.total++;
    if (r.config.mode === 'full') {
      const d = tallyOf(fullByDepth, cell(r.context, r.depth));
      d.hits += Number(r.correct);
      d.total++;
    }
  }
  return {
    contexts,
    depths,
    configs,
    tally: (c: number, context: number) => byContext[c].get(context) ?? new Tally(),
    fullAt: (context: number, depth: number) => fullByDepth.get(cell(context, depth)) ?? new Tally(),
  };
}

// A table of every configuration's accuracy by context.
function configurationTable(title: string, tallies: ReturnType<typeof retrievalTallies>): string {
  const { contexts, configs, tally } = tallies;
  let out = `\n### ${title}\n\n| mode | selection layers | budget |`;
  for (const context of contexts) out += ` ${contextName(context)} |`;
  out += '\n| --- | --- | ---: |';
  out += ' ---: |'.repeat(contexts.length);
  out += '\n';
  configs.forEach((k, c) => {
    out += `| ${k.mode} | ${k.selection} | ${budgetText(k.budget)} |`;
    for (const context of contexts) {
      const t = tally(c, context);
      out += ` ${percent(t.hits, t.total)} |`;
    }
    out += '\n';
  });
  return out;
}

// Each "MODE+prefillN" configuration (its last N prompt tokens prefilled sparse) against MODE with
// the same selection and budget (a dense prefill), sample by sample: the samples are the same, so
// the answers that changed say more than the two rates. Empty when no such configuration ran.
function sparsePrefillComparison(records: readonly PasskeyRecord[]): string {
  const configs = configsOf([...records]);
  const sample = (r: PasskeyRecord) => `${r.context}|${r.depth}|${r.trial}`;
  const contexts = [...new Set(records.map((r) => r.context))].sort((a, b) => a - b);
  let out = '';
  for (const sparse of configs) {
    const match = /^(.+)\+prefill(\d+)$/.exec(sparse.mode);
    if (!match) continue;
    const dense: ConfigKey = { mode: match[1], selection: sparse.selection, budget: sparse.budget };
    const denseAnswers = new Map<string, boolean>();
    for (const r of records) if (sameConfig(r.config, dense)) denseAnswers.set(sample(r), r.correct);
    const cells: string[] = [];
    for (const context of contexts) {
      let right = 0;
      let denseRight = 0;
      let lost = 0;
      let gained = 0;
      let total = 0;
      for (const r of records) {
        if (r.context !== context || !sameConfig(r.config, sparse)) continue;
        const before = denseAnswers.get(sample(r));
        if (before === undefined) continue;
        total++;
        right += Number(r.correct);
        denseRight += Number(before);
        if (before && !r.correct) lost++;
        if (!before && r.correct) gained++;
      }
      if (total)
        cells.push(`${contextName(context)} ${percent(right, total)} against ${percent(denseRight, total)} (${lost} lost, ${gained} gained of ${total})`);
    }
    const selection = sparse.selection === '-' ? '' : ` {${sparse.selection}}`;
    if (cells.length) out += `- ${sparse.mode}${selection} at ${sparse.budget} against ${dense.mode}${selection} with a dense prefill: ${cells.join('; ')}\n`;
  }
  return out ? `\n#### Sparse prefill against a dense prefill (the same samples)\n\n${out}` : '';
}

function renderPasskey(results: EvalResults, trainedLength: number): string {
  let out = '';
  const tallies = retrievalTallies(results.passkey);
  const { contexts, depths, configs, tally, fullAt } = tallies;

  out += '### Passkey retrieval, full attention (context x depth)\n\n| context |';
  for (const d of depths) out += ` depth ${formatFixed(100 * d, 0)}% |`;
  out += ' mean | samples |\n| ---: |';
  out += ' ---: |'.repeat(depths.length);
  out += ' ---: | ---: |\n';
  for (const context of contexts) {
    out += `| ${contextName(context)}${context > trainedLength ? ' (beyond training)' : ''} |`;
    const all = new Tally();
    for (const d of depths) {
      const t = fullAt(context, d);
      out += ` ${percent(t.hits, t.total)} |`;
      all.hits += t.hits;
      all.total += t.total;
    }
    out += ` ${percent(all.hits, all.total)} | ${all.total} |\n`;
  }

  out += configurationTable('Passkey retrieval by attention configuration (mean over depths and trials)', tallies);
  out += sparsePrefillComparison(results.passkey);

  // Targets.
  out += '\n### Against the targets\n\n';
  let fullIndex = -1;
  configs.forEach((k, c) => {
    if (k.mode === 'full') fullIndex = c;
  });
  const selections: string[] = [];
  for (const k of configs) if (k.mode === 'tidal' && !selections.includes(k.selection)) selections.push(k.selection);
  for (const context of contexts) {
    if (fullIndex < 0) break;
    const full = tally(fullIndex, context);
    out += `- ${contextName(context)}: full attention ${percent(full.hits, full.total)}`;
    if (context <= trainedLength) out += full.rate() >= 0.95 ? ' (>= 95%: met)' : ' (< 95%: not met)';
    else out += ' (beyond the trained length)';
    // The budgets at which a mode is at least as accurate as full attention.
    const matching = (mode: string, selection: string) => {
      const budgets: number[] = [];
      configs.forEach((k, c) => {
        const t = tally(c, context);
        if (k.mode === mode && k.selection === selection && t.total && t.rate() >= full.rate() - 1e-12) budgets.push(k.budget);
      });
      return budgets.length ? budgets.join(', ') : 'none';
    };
    if (full.hits === 0) {
      out += '; with nothing retrieved by full attention, the sparse modes are not compared here\n';
      continue;
    }
    out += '; budgets at which it is matched:';
    for (const s of selections) out += ` tidal {${s}}: ${matching('tidal', s)};`;
    out += ` quest: ${matching('quest', '-')}\n`;
  }
  for (const s of selections) {
    let wins = 0;
    let ties = 0;
    let losses = 0;
    configs.forEach((tidal, c) => {
      if (tidal.mode !== 'tidal' || tidal.selection !== s) return;
      configs.forEach((quest, q) => {
        if (quest.mode !== 'quest' || quest.budget !== tidal.budget) return;
        for (const context of contexts) {
          if (context > trainedLength) continue;
          const a = tally(c, context).rate();
          const b = tally(q, context).rate();
          if (a > b) wins++;
          else if (a < b) losses++;
          else ties++;
        }
      });
    });
    out += `- tidal {${s}} vs quest at equal budget, over (budget, context) cells within the trained length: ${wins} better, ${ties} equal, ${losses} worse\n`;
  }
  return out;
}

function renderPerplexity(results: EvalResults): string {
  const configs = configsOf(results.perplexity);
  const sums = configs.map(() => ({ nll: 0, tokens: 0 }));
  const windows = new Set<number>();
  let longest = -Infinity;
  for (const r of results.perplexity) {
    const sum = sums[configs.findIndex((k) => sameConfig(k, r.config))];
    sum.nll += r.nll;
    sum.tokens += r.tokens;
    windows.add(r.window);
    longest = Math.max(longest, r.windowTokens);
  }
  let fullNll = NaN;
  configs.forEach((k, c) => {
    if (k.mode === 'full' && sums[c].tokens) fullNll = sums[c].nll / sums[c].tokens;
  });
  let out =
    `\n### Held-out code perplexity (teacher-forced decode, ${windows.size} windows of ${contextName(longest)} tokens, ` +
    `${sums.length ? sums[0].tokens : 0} scored tokens)\n\n` +
    '| mode | selection layers | budget | nats/token | perplexity | vs full |\n| --- | --- | ---: | ---: | ---: | ---: |\n';
  configs.forEach((k, c) => {
    const nll = sums[c].nll / Math.max(sums[c].tokens, 1);
    const versusFull = Number.isNaN(fullNll) ? '-' : `${formatFixed(100 * (Math.exp(nll - fullNll) - 1), 2, { plus: true })}%`;
    out += `| ${k.mode} | ${k.selection} | ${budgetText(k.budget)} | ${formatFixed(nll, 4)} | ${formatFixed(Math.exp(nll), 3)} | ${versusFull} |\n`;
  });
  if (configs.some((k) => /\+prefill\d+$/.test(k.mode))) {
    out +=
      '\nThe +prefill rows score the same tokens from one sparse prefill of them, not from decode steps: each attends to the ' +
      'positions chosen for the whole pass and to the pass up to itself (`--sparse-prefill`).\n';
  }
  return out;
}

// Markdown: full-attention passkey accuracy by context and depth; accuracy of every
// configuration by context; a summary against the targets (`trainedLength`: contexts up to it
// count as within the trained length); and perplexity by configuration.
export function renderReport(results: EvalResults, trainedLength: number): string {
  return (
    (results.passkey.length ? renderPasskey(results, trainedLength) : '') +
    (results.crossfile?.length ? renderCrossFile(results.crossfile) : '') +
    (results.perplexity.length ? renderPerplexity(results) : '')
  );
}

// Markdown: cross-file completion accuracy of every configuration by context, with the
// samples per cell, and the full-attention accuracy by depth (how far back the helper was).
function renderCrossFile(records: readonly CrossFileRecord[]): string {
  const tallies = retrievalTallies(records);
  const { contexts, depths, fullAt } = tallies;
  let out =
    "\n### Cross-file completion, full attention (context x depth of the helper's file)\n\n" +
    `| context | ${depths.map((d) => `depth ${formatFixed(100 * d, 0)}%`).join(' | ')} | samples |\n` +
    `| ---: | ${depths.map(() => '---:').join(' | ')} | ---: |\n`;
  for (const context of contexts) {
    const cells = depths.map((d) => fullAt(context, d));
    out += `| ${contextName(context)} | ${cells.map((t) => percent(t.hits, t.total)).join(' | ')} | ${cells.reduce((n, t) => n + t.total, 0)} |\n`;
  }
  out += configurationTable('Cross-file completion by attention configuration (mean over depths and trials)', tallies);
  out += sparsePrefillComparison(records);
  return out;
}
