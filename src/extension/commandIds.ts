// The commands the extension registers, every one contributed in package.json (a unit test
// checks both ways). No `vscode` import, so the manifest test reads it in Node.
export const COMMAND_IDS = [
  'tidal.askAboutRepo',
  'tidal.openChat',
  'tidal.selectModel',
  'tidal.toggleInlineCompletions',
  'tidal.toggleInlineCompletionsForLanguage',
  'tidal.restartEngine',
  'tidal.showEngineLog',
  'tidal.showMenu',
  'tidal.setRemoteApiKey',
  'tidal.askAboutSelection',
  'tidal.explainSelection',
  'tidal.addSelectionToChat',
  'tidal.inlineEdit',
  'tidal.acceptHunk',
  'tidal.rejectHunk',
  'tidal.acceptAllHunks',
  'tidal.rejectAllHunks',
  'tidal.showProposedDiff',
  'tidal.continueAnswer',
] as const;
