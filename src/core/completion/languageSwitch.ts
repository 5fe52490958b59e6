// Per-language switch of inline completions (tidal.inlineCompletions.languages), shaped like
// Copilot's `github.copilot.enable`: an object from VS Code language ids to true/false, with
// "*" for every language not named. Pure, so it is unit-tested without VS Code.

export type LanguageSwitch = Readonly<Record<string, boolean>>;

/** The default: every language on, but prose (Markdown, plain text) off. */
export const DEFAULT_LANGUAGE_SWITCH: LanguageSwitch = { '*': true, markdown: false, plaintext: false };

/** Whether `value` is a valid setting: an object whose every value is true or false. */
export function isLanguageSwitch(value: unknown): value is LanguageSwitch {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((on) => typeof on === 'boolean');
}

/** Whether completions are on in `languageId`: its own entry, else "*", else on. */
export function completionsOnFor(languages: LanguageSwitch, languageId: string): boolean {
  if (Object.prototype.hasOwnProperty.call(languages, languageId)) return languages[languageId];
  if (Object.prototype.hasOwnProperty.call(languages, '*')) return languages['*'];
  return true;
}

/** The setting with `languageId` turned the other way (an entry of its own, other entries kept). */
export function toggleLanguage(languages: LanguageSwitch, languageId: string): Record<string, boolean> {
  return { ...languages, [languageId]: !completionsOnFor(languages, languageId) };
}
