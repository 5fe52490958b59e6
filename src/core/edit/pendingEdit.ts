// A proposed edit under review, without the `vscode` module: the document already holds the
// proposal, and each hunk knows where its proposed lines sit now and which original lines they
// replaced. Accepting a hunk forgets it; rejecting one gives the edit that puts its original
// lines back. Every change to the document (ours or the user's typing) moves the hunks through
// `documentChanged`, so the positions stay true whatever order hunks are decided in.
import { diffLines, splitLines } from './lineDiff';

export interface PendingHunk {
  id: number;
  /** First line of the proposed lines in the document now (0-based). */
  start: number;
  /** How many document lines the hunk covers now (the proposal's, or more after typing in it). */
  count: number;
  /** The original lines (with line breaks) a rejection puts back. */
  original: string[];
  /** The proposed lines as first shown (for the hover; the document has the current ones). */
  proposed: string[];
}

/** Replace document lines [startLine, endLine) with `text` (which ends with a line break unless it is the document's end). */
export interface LineEdit {
  startLine: number;
  endLine: number;
  text: string;
}

/**
 * A change to the document as VS Code reports it, in lines: the range [startLine..endLine]
 * (endCharacter on endLine) before the change, and how many line breaks the new text has.
 */
export interface LineChange {
  startLine: number;
  endLine: number;
  endCharacter: number;
  insertedLineBreaks: number;
}

export class PendingEdit {
  private hunkList: PendingHunk[];

  /** The review of turning `originalText` into `proposedText`, once the document holds the proposal. */
  constructor(originalText: string, proposedText: string) {
    this.hunkList = diffLines(splitLines(originalText), splitLines(proposedText)).map((hunk, id) => ({
      id,
      start: hunk.proposedStart,
      count: hunk.proposed.length,
      original: hunk.original,
      proposed: hunk.proposed,
    }));
  }

  get hunks(): readonly PendingHunk[] {
    return this.hunkList;
  }

  get done(): boolean {
    return this.hunkList.length === 0;
  }

  hunk(id: number): PendingHunk | undefined {
    return this.hunkList.find((hunk) => hunk.id === id);
  }

  /** The hunk whose lines hold `line` (a pure deletion holds the line it sits before). */
  hunkAt(line: number): PendingHunk | undefined {
    return this.hunkList.find((hunk) => line >= hunk.start && line < hunk.start + Math.max(1, hunk.count));
  }

  /** Keeps the hunk's proposed lines: nothing to change in the document. */
  accept(id: number): void {
    this.hunkList = this.hunkList.filter((hunk) => hunk.id !== id);
  }

  /** Forgets the hunk and returns the edit that restores its original lines (apply it next). */
  reject(id: number): LineEdit | undefined {
    const hunk = this.hunk(id);
    if (!hunk) return undefined;
    this.hunkList = this.hunkList.filter((other) => other.id !== id);
    return { startLine: hunk.start, endLine: hunk.start + hunk.count, text: hunk.original.join('') };
  }

  /**
   * Moves the hunks for a change to the document. A hunk after the change shifts by the lines it
   * added; a hunk the change touches grows to cover it (rejecting it then replaces the typing too).
   */
  documentChanged(change: LineChange): void {
    const delta = change.insertedLineBreaks - (change.endLine - change.startLine);
    for (const hunk of this.hunkList) {
      const end = hunk.start + hunk.count;
      // Wholly before the hunk: above its first line, or ending at the very start of it.
      const before = change.endLine < hunk.start || (change.endLine === hunk.start && change.endCharacter === 0 && change.startLine < hunk.start);
      if (before) {
        hunk.start += delta;
        continue;
      }
      const after = hunk.count === 0 ? change.startLine >= hunk.start : change.startLine >= end;
      if (after) continue;
      const start = Math.min(hunk.start, change.startLine);
      const newEnd = Math.max(end, change.endLine + 1) + delta;
      hunk.start = start;
      hunk.count = Math.max(0, newEnd - start);
    }
  }

  /** The document with every pending hunk rejected: what "Reject All" leaves (for the diff view). */
  originalOf(documentText: string): string {
    const lines = splitLines(documentText);
    const out: string[] = [];
    let at = 0;
    for (const hunk of [...this.hunkList].sort((a, b) => a.start - b.start)) {
      out.push(...lines.slice(at, hunk.start), ...hunk.original);
      at = hunk.start + hunk.count;
    }
    out.push(...lines.slice(at));
    return out.join('');
  }
}
