// The cross-file completion task of `tidal-eval`: a repository-shaped prompt whose last file
// must call a function defined in another file far before it, the case whole-repository
// context is for. The helper's file is planted at a file boundary at a given depth of a window
// of the code stream; the last file describes, in a comment, what the helper does (the words
// of its doc comment) and stops where the call begins. The completion is right when it names
// the helper and opens its call: nothing in the last file says the name, so the model has to
// find the file that does, depth x context tokens back.
// The completion is judged as text (scoring.ts, scoreCompletionText): the answer ` name(` ends
// inside what the tokenizer makes one token of a real call (`(ledger`).
import { Mt19937_64, uniformBelow } from './mersenneTwister';
import { CodeStream, EvalInputError, PromptTokenizer, SYLLABLES, windowWithPieces } from './passkey';

export interface CrossFileCase {
  helperPath: string; // e.g. `src/kazo/rimuTable.ts`
  helperText: string; // the helper's whole file
  queryPath: string;
  queryText: string; // the last file, up to the call
  answer: string; // the helper's name and `(`
  name: string;
  what: string; // "<verb> <noun> <form>": what the helper does (distractors do something else)
}

// The first 16 of the passkey names' syllables.
const NAME_SYLLABLES = SYLLABLES.slice(0, 16);
const VERBS = ['convert', 'pack', 'encode', 'fold', 'rotate', 'merge', 'scale', 'split'];
const NOUNS = ['ledger', 'sprocket', 'harbor', 'lantern', 'meadow', 'quiver', 'saddle', 'tundra', 'violet', 'walnut', 'ember', 'falcon'];
const FORMS = ['checksum', 'summary', 'index', 'signature', 'outline', 'digest'];

const pick = <T>(rng: Mt19937_64, list: readonly T[]): T => list[uniformBelow(rng, list.length)];
const capitalized = (word: string) => word[0].toUpperCase() + word.slice(1);

function syllableWord(rng: Mt19937_64, count: number): string {
  let word = '';
  for (let i = 0; i < count; i++) word += pick(rng, NAME_SYLLABLES);
  return word;
}

/**
 * A helper with a made-up name (`<syllables><Syllables>`, never a real word) whose doc comment
 * says "<verb>s a <noun> into its <form>", and a last file that asks for exactly that.
 */
export function randomCrossFileCase(rng: Mt19937_64): CrossFileCase {
  const folder = syllableWord(rng, 2);
  const name = syllableWord(rng, 2) + capitalized(syllableWord(rng, 2));
  const verb = pick(rng, VERBS);
  const noun = pick(rng, NOUNS);
  const form = pick(rng, FORMS);
  const factor = 3 + uniformBelow(rng, 97);
  const helperPath = `src/${folder}/${name}.ts`;
  const helperText =
    `/** ${capitalized(verb)}s a ${noun} into its ${form}. */\n` +
    `export function ${name}(${noun}: readonly number[]): number {\n` +
    `  let ${form} = ${factor};\n` +
    `  for (const value of ${noun}) ${form} = (${form} * ${factor} + value) % 65521;\n` +
    `  return ${form};\n` +
    `}\n`;
  const queryPath = `src/app/${pick(rng, NOUNS)}Report.ts`;
  const queryText = `export function report(${noun}: readonly number[]): string {\n` + `  // ${verb} the ${noun} into its ${form}\n` + `  const ${form} =`;
  return { helperPath, helperText, queryPath, queryText, answer: ` ${name}(`, name, what: `${verb} ${noun} ${form}` };
}

// `count` other helpers, each with its own name and doing something else (another verb, noun
// or form), planted with the real one so that the call must match the description, not just
// pick the one made-up name in the prompt.
export function crossFileDistractors(rng: Mt19937_64, task: CrossFileCase, count: number): CrossFileCase[] {
  const out: CrossFileCase[] = [];
  const names = new Set([task.name]);
  const whats = new Set([task.what]);
  while (out.length < count) {
    const other = randomCrossFileCase(rng);
    if (names.has(other.name) || whats.has(other.what) || other.helperPath === task.helperPath) continue;
    names.add(other.name);
    whats.add(other.what);
    out.push(other);
  }
  return out;
}

export interface CrossFilePrompt {
  prompt: number[];
  answer: number[];
  helperPosition: number; // index of the helper file's separator token in prompt
}

/**
 * A prompt of exactly `length` tokens counting the answer: a window of `stream` from a random
 * token, the helper's file inserted at the first file boundary at or after `depth` (0..1) of the
 * window (or the last one before it; the window's end when it has none), then the last file.
 * Distractors' helper files go to file boundaries at random depths.
 * Throws EvalInputError when the stream is too short.
 */
export function buildCrossFilePrompt(
  tokenizer: PromptTokenizer,
  stream: CodeStream,
  length: number,
  depth: number,
  task: CrossFileCase,
  rng: Mt19937_64,
  distractors: readonly CrossFileCase[] = [],
): CrossFilePrompt {
  const separator = tokenizer.tokenId('<|file_sep|>');
  if (separator === undefined) throw new EvalInputError('the tokenizer has no <|file_sep|> token, which the eval prompts need');
  const fileOf = (c: CrossFileCase) => [separator, ...tokenizer.encode(`${c.helperPath}\n${c.helperText}`)];
  const planted = [{ depth, ids: fileOf(task) }];
  for (const d of distractors) planted.push({ depth: uniformBelow(rng, 1000001) / 1e6, ids: fileOf(d) });
  const query = [separator, ...tokenizer.encode(`${task.queryPath}\n${task.queryText}`)];
  const answer = tokenizer.encode(task.answer);
  const plantedTokens = planted.reduce((sum, p) => sum + p.ids.length, 0);
  const contextLength = length - plantedTokens - query.length - answer.length;
  if (contextLength < 1 || contextLength >= stream.ids.length) {
    throw new EvalInputError(
      `a ${length}-token cross-file prompt needs more code than the corpus's ${stream.ids.length} tokens; add folders to --corpus or use shorter --contexts`,
    );
  }
  const start = uniformBelow(rng, stream.ids.length - contextLength);
  const boundaryAt = (atDepth: number) => {
    const target = Math.trunc(atDepth * contextLength);
    for (let i = target; i < contextLength; i++) if (stream.ids[start + i] === separator) return i;
    for (let i = Math.min(target, contextLength - 1); i >= 0; i--) if (stream.ids[start + i] === separator) return i;
    return contextLength;
  };
  const pieces = planted.map((p) => ({ at: boundaryAt(p.depth), ids: p.ids }));
  const { prompt, firstPiecePosition } = windowWithPieces(stream, start, contextLength, pieces, query);
  return { prompt, answer, helperPosition: firstPiecePosition };
}
