// Where a completion ends. Applied to the text streamed so far after every chunk: once a rule
// fires the caller stops the generation (the engine request is cancelled), so the model does
// not spend decode steps on text that would be thrown away.
//
// Single-line: the rest of the current line, up to the first newline.
// Multi-line, on complete lines after the first:
//   - a line indented less than the cursor's line leaves the block: it is not kept;
//   - when the cursor line opens a block, the first line back at the block's indentation ends
//     it: kept when it closes the block ('}', ')', ']', 'end', ...) unless that closer already
//     follows the cursor, otherwise not kept;
//   - a bracket closed that was opened before the cursor ends the completion after its line
//     (or before it, when the same closer already follows the cursor);
//   - a blank line followed by a line at or left of the cursor line's indentation, with all
//     brackets balanced, ends a block of statements;
//   - at most `maxLines` lines.
import { CompletionMode, indentationOf, indentWidth } from './completionMode';

export interface StopContext {
  mode: CompletionMode;
  /** Text of the cursor's line before the cursor. */
  linePrefix: string;
  /** Document text after the cursor (at least the next few lines). */
  suffix: string;
  maxLines: number;
  tabSize?: number;
}

export interface StopResult {
  text: string;
  /** True when a rule ended the completion: nothing generated later can change `text`. */
  done: boolean;
}

const BLOCK_OPENER = /(?:[{([:]|=>|\bthen|\bdo)\s*$/;
const BLOCK_CLOSER = /^\s*(?:[)\]}]|end\b|fi\b|done\b|esac\b)/;
const OPENERS = '([{';
const CLOSERS = ')]}';

export function applyStopRules(generated: string, context: StopContext, finished: boolean): StopResult {
  if (context.mode === 'single-line') {
    const newline = generated.indexOf('\n');
    if (newline >= 0) return { text: generated.slice(0, newline).replace(/\r$/, ''), done: true };
    return { text: generated, done: finished };
  }
  return multiLine(generated, context, finished);
}

function multiLine(generated: string, context: StopContext, finished: boolean): StopResult {
  const tabSize = context.tabSize ?? 4;
  const lines = generated.split('\n');
  // The last piece is still being written unless the generation finished.
  const complete = finished ? lines.length : lines.length - 1;
  const baseIndent = indentWidth(indentationOf(context.linePrefix), tabSize);
  const opensBlock = BLOCK_OPENER.test(context.linePrefix);
  const followingCloser = firstNonBlankLine(context.suffix)?.trim()[0];
  const keep = (count: number): StopResult => ({ text: trimTrailingBlankLines(lines.slice(0, count).join('\n')), done: true });

  let depth = 0;
  let sawBody = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    const isComplete = i < complete;
    const blank = line.trim().length === 0;
    if (i > 0 && !blank) {
      const indent = indentWidth(indentationOf(line), tabSize);
      // A dedent below the cursor's line is known as soon as the line has any text.
      if (indent < baseIndent) return keep(i);
      if (!isComplete) break;
      if (opensBlock && sawBody && indent <= baseIndent) {
        if (BLOCK_CLOSER.test(line) && line.trim()[0] !== followingCloser) return keep(i + 1);
        return keep(i);
      }
      if (indent > baseIndent) sawBody = true;
      if (i >= context.maxLines) return keep(i);
    }
    if (!isComplete) break;
    if (blank && i > 0 && depth === 0) {
      const next = lines.slice(i + 1, complete).find((candidate) => candidate.trim().length > 0);
      if (next !== undefined && indentWidth(indentationOf(next), tabSize) <= baseIndent && !(opensBlock && !sawBody)) return keep(i);
    }
    const { end, dippedBelow } = bracketDepth(line, depth);
    if (dippedBelow) {
      // This line closes a bracket opened before the cursor: the block ends here.
      const closer = line.trim()[0];
      if (i > 0 && CLOSERS.includes(closer) && closer === followingCloser && line.trim().length === 1) return keep(i);
      return keep(i + 1);
    }
    depth = end;
  }
  if (finished) return { text: trimTrailingBlankLines(generated), done: true };
  return { text: trimTrailingBlankLines(lines.slice(0, complete).join('\n')), done: false };
}

// Bracket depth after a line, starting from `start`; string literals and // comments skipped.
function bracketDepth(line: string, start: number): { end: number; dippedBelow: boolean } {
  let depth = start;
  let dippedBelow = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote !== undefined) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === '"' || ch === "'" || ch === '`') quote = ch;
    else if (ch === '/' && line[i + 1] === '/') break;
    else if (OPENERS.includes(ch)) depth++;
    else if (CLOSERS.includes(ch)) {
      depth--;
      if (depth < 0) dippedBelow = true;
    }
  }
  return { end: depth, dippedBelow };
}

function firstNonBlankLine(text: string): string | undefined {
  return text.split('\n').find((line) => line.trim().length > 0);
}

function trimTrailingBlankLines(text: string): string {
  return text.replace(/(?:\r?\n[ \t]*)+$/, '');
}
