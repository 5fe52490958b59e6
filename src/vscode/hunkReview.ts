// Review of a proposed edit inside the editor: the proposal is written into the document at
// once, its inserted lines get the diff editor's green, the lines it removed show at the end
// of the hunk's first line and in its hover, and CodeLenses over each hunk accept it (keep) or
// reject it (the original lines come back exactly). "Show Diff" opens VS Code's diff of what
// Reject All would leave against the document now. The bookkeeping is pendingEdit.ts.
import * as vscode from 'vscode';

import { splitLines } from '../core/edit/lineDiff';
import { PendingEdit, type LineEdit, type PendingHunk } from '../core/edit/pendingEdit';

const ORIGINAL_SCHEME = 'tidal-original';

/** What a review shows, for the integration tests. */
export interface ReviewSnapshot {
  hunks: { id: number; start: number; count: number; original: string; proposed: string }[];
  insertedLines: number[];
  removedMarkers: number[];
}

interface Review {
  document: vscode.TextDocument;
  pending: PendingEdit;
  shown: { insertedLines: number[]; removedMarkers: number[] };
}

export class HunkReview implements vscode.Disposable {
  private readonly reviews = new Map<string, Review>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly lensesChanged = new vscode.EventEmitter<void>();
  private readonly originalChanged = new vscode.EventEmitter<vscode.Uri>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly inserted = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    backgroundColor: new vscode.ThemeColor('diffEditor.insertedLineBackground'),
    overviewRulerColor: new vscode.ThemeColor('editorOverviewRuler.addedForeground'),
    overviewRulerLane: vscode.OverviewRulerLane.Left,
  });
  private readonly removed = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    borderColor: new vscode.ThemeColor('diffEditor.removedTextBorder'),
    after: { color: new vscode.ThemeColor('editorError.foreground'), margin: '0 0 0 2em', fontStyle: 'italic' },
    overviewRulerColor: new vscode.ThemeColor('editorOverviewRuler.deletedForeground'),
    overviewRulerLane: vscode.OverviewRulerLane.Left,
  });

  constructor() {
    this.disposables.push(
      this.inserted,
      this.removed,
      this.lensesChanged,
      this.originalChanged,
      vscode.languages.registerCodeLensProvider(
        { pattern: '**' },
        { onDidChangeCodeLenses: this.lensesChanged.event, provideCodeLenses: (document) => this.lenses(document) },
      ),
      vscode.languages.registerCodeLensProvider(
        { scheme: 'untitled' },
        { onDidChangeCodeLenses: this.lensesChanged.event, provideCodeLenses: (document) => this.lenses(document) },
      ),
      vscode.workspace.registerTextDocumentContentProvider(ORIGINAL_SCHEME, {
        onDidChange: this.originalChanged.event,
        provideTextDocumentContent: (uri) => {
          const review = this.reviews.get(decodeURIComponent(uri.query));
          return review ? review.pending.originalOf(review.document.getText()) : '';
        },
      }),
      vscode.workspace.onDidChangeTextDocument((event) => {
        const review = this.reviews.get(event.document.uri.toString());
        if (!review || event.contentChanges.length === 0) return;
        // Later changes first, so each one's range is still in the coordinates it was given in.
        const changes = [...event.contentChanges].sort((a, b) => b.range.start.compareTo(a.range.start));
        for (const change of changes) {
          review.pending.documentChanged({
            startLine: change.range.start.line,
            endLine: change.range.end.line,
            endCharacter: change.range.end.character,
            insertedLineBreaks: change.text.split('\n').length - 1,
          });
        }
        this.show(review);
      }),
      vscode.workspace.onDidCloseTextDocument((document) => this.end(document.uri.toString())),
      vscode.window.onDidChangeVisibleTextEditors(() => {
        for (const review of this.reviews.values()) this.show(review);
      }),
      vscode.commands.registerCommand('tidal.acceptHunk', (uri?: vscode.Uri | string, id?: number) => this.decide(uri, id, 'accept')),
      vscode.commands.registerCommand('tidal.rejectHunk', (uri?: vscode.Uri | string, id?: number) => this.decide(uri, id, 'reject')),
      vscode.commands.registerCommand('tidal.acceptAllHunks', (uri?: vscode.Uri | string) => this.decideAll(uri, 'accept')),
      vscode.commands.registerCommand('tidal.rejectAllHunks', (uri?: vscode.Uri | string) => this.decideAll(uri, 'reject')),
      vscode.commands.registerCommand('tidal.showProposedDiff', (uri?: vscode.Uri | string) => this.showDiff(uri)),
    );
  }

  /**
   * Writes `proposedText` into `document` and starts reviewing it, replacing a review already
   * running there (its undecided hunks are kept). Resolves false when nothing would change.
   */
  start(document: vscode.TextDocument, proposedText: string): Promise<boolean> {
    return this.serial(async () => {
      this.end(document.uri.toString());
      const original = document.getText();
      const eol = document.eol === vscode.EndOfLine.CRLF ? '\r\n' : '\n';
      const proposal = proposedText.replace(/\r?\n/g, eol);
      const pending = new PendingEdit(original, proposal);
      if (pending.done) return false;
      // One edit from the first changed line to the last, so one Undo takes the proposal back.
      const first = pending.hunks[0];
      const last = pending.hunks.at(-1)!;
      // The lines before the first hunk and after the last are the same in both texts.
      const originalLines = splitLines(original);
      const proposalLines = splitLines(proposal);
      const tailLines = proposalLines.length - (last.start + last.count);
      const edit: LineEdit = {
        startLine: first.start,
        endLine: originalLines.length - tailLines,
        text: proposalLines.slice(first.start, last.start + last.count).join(''),
      };
      if (!(await this.apply(document, edit))) return false;
      if (document.getText() !== proposal) {
        void vscode.window.showWarningMessage('Tidal: the document changed while the proposal was written into it; review it with Undo.');
        return false;
      }
      const review: Review = { document, pending, shown: { insertedLines: [], removedMarkers: [] } };
      this.reviews.set(document.uri.toString(), review);
      this.show(review);
      return true;
    });
  }

  /** The review of `uri` as shown, or undefined when none is running there. */
  snapshot(uri: vscode.Uri): ReviewSnapshot | undefined {
    const review = this.reviews.get(uri.toString());
    if (!review) return undefined;
    return {
      hunks: review.pending.hunks.map((hunk) => ({
        id: hunk.id,
        start: hunk.start,
        count: hunk.count,
        original: hunk.original.join(''),
        proposed: hunk.proposed.join(''),
      })),
      insertedLines: [...review.shown.insertedLines],
      removedMarkers: [...review.shown.removedMarkers],
    };
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private reviewFor(uri: vscode.Uri | string | undefined): Review | undefined {
    const key = uri === undefined ? vscode.window.activeTextEditor?.document.uri.toString() : uri.toString();
    return key === undefined ? undefined : this.reviews.get(key);
  }

  private decide(uri: vscode.Uri | string | undefined, id: number | undefined, verdict: 'accept' | 'reject'): Promise<boolean> {
    return this.serial(async () => {
      const review = this.reviewFor(uri);
      if (!review) return false;
      // From the keyboard: the hunk under the cursor.
      const editor = vscode.window.activeTextEditor;
      const hunk: PendingHunk | undefined =
        id !== undefined ? review.pending.hunk(id) : editor?.document === review.document ? review.pending.hunkAt(editor.selection.active.line) : undefined;
      if (!hunk) return false;
      if (verdict === 'accept') review.pending.accept(hunk.id);
      else {
        const edit = review.pending.reject(hunk.id);
        if (edit) await this.apply(review.document, edit);
      }
      this.show(review);
      return true;
    });
  }

  private decideAll(uri: vscode.Uri | string | undefined, verdict: 'accept' | 'reject'): Promise<boolean> {
    return this.serial(async () => {
      const review = this.reviewFor(uri);
      if (!review) return false;
      if (verdict === 'reject') {
        // Last first: an edit then never moves a hunk still to be restored.
        const ids = [...review.pending.hunks].sort((a, b) => b.start - a.start).map((hunk) => hunk.id);
        const edits = ids.map((id) => review.pending.reject(id)!);
        const workspaceEdit = new vscode.WorkspaceEdit();
        for (const edit of edits) workspaceEdit.replace(review.document.uri, this.rangeOf(review.document, edit), edit.text);
        await vscode.workspace.applyEdit(workspaceEdit);
      } else {
        for (const hunk of [...review.pending.hunks]) review.pending.accept(hunk.id);
      }
      this.show(review);
      return true;
    });
  }

  private async showDiff(uri: vscode.Uri | string | undefined): Promise<void> {
    const review = this.reviewFor(uri);
    if (!review) return;
    const key = review.document.uri.toString();
    const original = vscode.Uri.from({ scheme: ORIGINAL_SCHEME, path: review.document.uri.path, query: encodeURIComponent(key) });
    const name = review.document.uri.path.split('/').pop() ?? 'file';
    await vscode.commands.executeCommand('vscode.diff', original, review.document.uri, `${name}: before ↔ proposed (Tidal)`);
  }

  private rangeOf(document: vscode.TextDocument, edit: LineEdit): vscode.Range {
    return document.validateRange(new vscode.Range(edit.startLine, 0, edit.endLine, 0));
  }

  private async apply(document: vscode.TextDocument, edit: LineEdit): Promise<boolean> {
    const workspaceEdit = new vscode.WorkspaceEdit();
    workspaceEdit.replace(document.uri, this.rangeOf(document, edit), edit.text);
    return vscode.workspace.applyEdit(workspaceEdit);
  }

  /** Decorations, CodeLenses and the diff view's left side for the review as it is now. */
  private show(review: Review): void {
    const key = review.document.uri.toString();
    if (review.pending.done) {
      this.end(key);
      return;
    }
    const lastLine = Math.max(0, review.document.lineCount - 1);
    const insertedLines: number[] = [];
    const inserted: vscode.DecorationOptions[] = [];
    const removed: vscode.DecorationOptions[] = [];
    const removedMarkers: number[] = [];
    for (const hunk of review.pending.hunks) {
      const hover = this.hover(hunk);
      for (let line = hunk.start; line < hunk.start + hunk.count && line <= lastLine; line += 1) {
        insertedLines.push(line);
        inserted.push({ range: new vscode.Range(line, 0, line, 0), hoverMessage: hover });
      }
      if (hunk.original.length > 0) {
        const line = Math.min(hunk.start, lastLine);
        const firstRemoved = hunk.original.find((text) => text.trim() !== '')?.trim() ?? '';
        const summary = `− ${hunk.original.length} line${hunk.original.length === 1 ? '' : 's'} removed${firstRemoved ? `: ${firstRemoved.length > 60 ? `${firstRemoved.slice(0, 60)}…` : firstRemoved}` : ''}`;
        removedMarkers.push(line);
        removed.push({ range: new vscode.Range(line, 0, line, 0), hoverMessage: hover, renderOptions: { after: { contentText: summary } } });
      }
    }
    review.shown = { insertedLines, removedMarkers };
    for (const editor of vscode.window.visibleTextEditors) {
      if (editor.document !== review.document) continue;
      editor.setDecorations(this.inserted, inserted);
      editor.setDecorations(this.removed, removed);
    }
    this.lensesChanged.fire();
    this.originalChanged.fire(vscode.Uri.from({ scheme: ORIGINAL_SCHEME, path: review.document.uri.path, query: encodeURIComponent(key) }));
  }

  private hover(hunk: PendingHunk): vscode.MarkdownString {
    const hover = new vscode.MarkdownString();
    if (hunk.original.length === 0) hover.appendMarkdown('**Tidal:** lines added (Reject removes them)');
    else {
      hover.appendMarkdown(`**Tidal:** replaces ${hunk.original.length} line${hunk.original.length === 1 ? '' : 's'} (Reject puts them back):`);
      hover.appendCodeblock(hunk.original.join('').replace(/\r?\n$/, ''), 'text');
    }
    return hover;
  }

  private lenses(document: vscode.TextDocument): vscode.CodeLens[] {
    const review = this.reviews.get(document.uri.toString());
    if (!review || review.document !== document) return [];
    const lastLine = Math.max(0, document.lineCount - 1);
    const lenses: vscode.CodeLens[] = [];
    const uri = document.uri;
    review.pending.hunks.forEach((hunk, index) => {
      const range = new vscode.Range(Math.min(hunk.start, lastLine), 0, Math.min(hunk.start, lastLine), 0);
      if (index === 0) {
        const count = review.pending.hunks.length;
        lenses.push(
          new vscode.CodeLens(range, { title: `$(check-all) Accept All (${count})`, command: 'tidal.acceptAllHunks', arguments: [uri] }),
          new vscode.CodeLens(range, { title: '$(discard) Reject All', command: 'tidal.rejectAllHunks', arguments: [uri] }),
          new vscode.CodeLens(range, { title: '$(diff) Show Diff', command: 'tidal.showProposedDiff', arguments: [uri] }),
        );
      }
      lenses.push(
        new vscode.CodeLens(range, { title: '$(check) Accept', command: 'tidal.acceptHunk', arguments: [uri, hunk.id] }),
        new vscode.CodeLens(range, {
          title: `$(close) Reject (−${hunk.original.length} +${hunk.proposed.length})`,
          command: 'tidal.rejectHunk',
          arguments: [uri, hunk.id],
        }),
      );
    });
    return lenses;
  }

  private end(key: string): void {
    const review = this.reviews.get(key);
    if (!review) return;
    this.reviews.delete(key);
    for (const editor of vscode.window.visibleTextEditors) {
      if (editor.document !== review.document) continue;
      editor.setDecorations(this.inserted, []);
      editor.setDecorations(this.removed, []);
    }
    this.lensesChanged.fire();
  }

  dispose(): void {
    for (const key of [...this.reviews.keys()]) this.end(key);
    for (const disposable of this.disposables) disposable.dispose();
  }
}
