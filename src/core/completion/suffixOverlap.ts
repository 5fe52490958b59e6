// A completion must not repeat what already follows the cursor: VS Code inserts the ghost text
// at the cursor and keeps the rest of the document, so a completion ending in ')' before an
// existing ')' would leave two.

const PUNCTUATION_ONLY = /^[\s)\]}>"'`;,.:]+$/;
const MIN_WORD_OVERLAP = 3;

export function removeSuffixOverlap(completion: string, suffix: string): string {
  if (completion.length === 0) return completion;
  const newline = suffix.indexOf('\n');
  const lineSuffix = (newline >= 0 ? suffix.slice(0, newline) : suffix).replace(/\r$/, '');
  let text = completion;

  // Lines at the end of the completion that repeat the lines after the cursor's line.
  const ownLines = text.split('\n');
  if (ownLines.length > 1 && newline >= 0) {
    const following = suffix.slice(newline + 1).split('\n');
    while (following.length > 0 && following[0].trim().length === 0) following.shift();
    let repeated = 0;
    for (let count = Math.min(ownLines.length - 1, following.length); count >= 1; count--) {
      const tail = ownLines.slice(ownLines.length - count);
      if (tail.every((line, i) => line.trim().length > 0 && line.trim() === following[i].trim())) {
        repeated = count;
        break;
      }
    }
    if (repeated > 0)
      text = ownLines
        .slice(0, ownLines.length - repeated)
        .join('\n')
        .replace(/\s+$/, '');
  }

  // The end of the completion that the rest of the cursor's line begins with.
  const rest = lineSuffix.replace(/\s+$/, '');
  for (let k = Math.min(text.length, rest.length); k >= 1; k--) {
    const overlap = rest.slice(0, k);
    if (!text.endsWith(overlap)) continue;
    if (k === rest.length || k >= MIN_WORD_OVERLAP || PUNCTUATION_ONLY.test(overlap)) {
      text = text.slice(0, text.length - k);
      break;
    }
  }

  // Nothing new: the document already continues with exactly this text (up to a word
  // boundary: 'x' before 'x_total' is new text).
  const trimmed = text.trim();
  const following = suffix.trimStart();
  const own = text.trimStart();
  if (trimmed.length > 0 && following.startsWith(own)) {
    const next = following[own.length];
    if (next === undefined || !/\w/.test(next) || !/\w/.test(own[own.length - 1])) return '';
  }
  return trimmed.length === 0 ? '' : text;
}
