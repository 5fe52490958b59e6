// Tells the user about the model as it changes state: once, that the embedded model is a demo
// (with Select Model); and every failed load as an error notification with the actions that fix
// it (Select Model, Open Setting, Use Embedded). The decisions live in modelNotices.ts; the
// failure itself is logged by the ModelController.
import * as vscode from 'vscode';

import type { ModelController } from './modelController';
import {
  DEMO_NOTICE_KEY,
  DEMO_NOTICE_MESSAGE,
  demoMemoryAfterLoad,
  modelProblemNotice,
  scopesHoldingModelPath,
  shouldShowDemoNotice,
  type DemoNoticeMemory,
  type ModelNoticeAction,
} from './modelNotices';

/** A notification as it was shown, and the button pressed (undefined: closed, or still open). */
export interface ShownNotice {
  severity: 'information' | 'warning' | 'error';
  message: string;
  actions: string[];
  answer?: string;
  answered: boolean;
}

const SCOPE_TARGET = {
  global: vscode.ConfigurationTarget.Global,
  workspace: vscode.ConfigurationTarget.Workspace,
  workspaceFolder: vscode.ConfigurationTarget.WorkspaceFolder,
} as const;

/** Clears tidal.modelPath in every scope that sets it, so the embedded model loads. */
export async function useEmbeddedModel(log: vscode.LogOutputChannel): Promise<void> {
  // Read for the first folder, the one a relative tidal.modelPath is resolved against.
  const config = vscode.workspace.getConfiguration('tidal', vscode.workspace.workspaceFolders?.[0]?.uri);
  for (const scope of scopesHoldingModelPath(config.inspect<string>('modelPath'))) {
    await config.update('modelPath', undefined, SCOPE_TARGET[scope]);
    log.info(`tidal.modelPath cleared (${scope} settings): using the embedded model`);
  }
}

export class ModelNotifications implements vscode.Disposable {
  private readonly shownNotices: ShownNotice[] = [];
  private demoShown = false;
  /** The error notification still open, by its text: the same failure again does not stack a second one. */
  private readonly openErrors = new Set<string>();
  private readonly subscription: vscode.Disposable;

  constructor(
    private readonly model: ModelController,
    private readonly globalState: vscode.Memento,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.subscription = model.onDidChange(() => this.onModelChange());
  }

  /** Every notification shown in this window, oldest first (for the integration tests). */
  get shown(): readonly ShownNotice[] {
    return this.shownNotices;
  }

  private config() {
    const config = vscode.workspace.getConfiguration('tidal');
    return { modelPath: config.get<string>('modelPath', '') ?? '', backend: config.get<string>('backend', 'auto') ?? 'auto' };
  }

  private onModelChange(): void {
    const state = this.model.state;
    const { modelPath, backend } = this.config();
    const memory = this.globalState.get<DemoNoticeMemory>(DEMO_NOTICE_KEY);
    const remembered = demoMemoryAfterLoad(state, memory);
    if (remembered !== memory) void this.globalState.update(DEMO_NOTICE_KEY, remembered);
    if (shouldShowDemoNotice(state, modelPath, remembered, this.demoShown)) {
      this.demoShown = true;
      void this.showDemoNotice();
      return;
    }
    const notice = modelProblemNotice(state, backend);
    if (notice && !this.openErrors.has(notice.message)) {
      this.openErrors.add(notice.message);
      void this.show('error', notice.message, notice.actions)
        .then((answer) => this.act(answer, notice.setting))
        .finally(() => this.openErrors.delete(notice.message));
    }
  }

  private async showDemoNotice(): Promise<void> {
    const answer = await this.show('information', DEMO_NOTICE_MESSAGE, ['Select Model', "Don't Show Again"]);
    if (answer === "Don't Show Again") await this.globalState.update(DEMO_NOTICE_KEY, 'dismissed');
    else await this.act(answer);
  }

  /** Shows a notification and records it in `shown` (also used for notices other than the model's). */
  async show<Action extends string>(severity: ShownNotice['severity'], message: string, actions: Action[]): Promise<Action | undefined> {
    const record: ShownNotice = { severity, message, actions, answered: false };
    this.shownNotices.push(record);
    const answer = await (severity === 'error'
      ? vscode.window.showErrorMessage(message, ...actions)
      : severity === 'warning'
        ? vscode.window.showWarningMessage(message, ...actions)
        : vscode.window.showInformationMessage(message, ...actions));
    record.answer = answer;
    record.answered = true;
    return answer;
  }

  private async act(answer: ModelNoticeAction | undefined, setting?: string): Promise<void> {
    switch (answer) {
      case 'Select Model':
        await vscode.commands.executeCommand('tidal.selectModel');
        return;
      case 'Open Setting':
        await vscode.commands.executeCommand('workbench.action.openSettings', setting ?? 'tidal.modelPath');
        return;
      case 'Use Embedded':
        await useEmbeddedModel(this.log);
        return;
      case 'Show Log':
        this.log.show(true);
        return;
      default:
        return;
    }
  }

  dispose(): void {
    this.subscription.dispose();
  }
}
