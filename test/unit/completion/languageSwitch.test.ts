// The per-language switch of inline completions (tidal.inlineCompletions.languages): a named
// language wins over "*", "*" over the built-in default (on); toggling writes the language's
// own entry and keeps the others.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { completionsOnFor, DEFAULT_LANGUAGE_SWITCH, isLanguageSwitch, toggleLanguage } from '../../../src/core/completion/languageSwitch';
import { readSettings } from '../../../src/vscode/settings';

const randomId = () => `lang${Math.random().toString(36).slice(2, 8)}`;

test('a named language wins over "*"; without "*" an unnamed language is on', () => {
  for (let round = 0; round < 20; round++) {
    const named = randomId();
    const other = randomId();
    const star = Math.random() < 0.5;
    const own = Math.random() < 0.5;
    const languages = { '*': star, [named]: own };
    assert.equal(completionsOnFor(languages, named), own);
    assert.equal(completionsOnFor(languages, other), star);
    assert.equal(completionsOnFor({ [named]: own }, other), true);
  }
  // The default: code on, prose off.
  assert.equal(completionsOnFor(DEFAULT_LANGUAGE_SWITCH, 'python'), true);
  assert.equal(completionsOnFor(DEFAULT_LANGUAGE_SWITCH, 'markdown'), false);
  assert.equal(completionsOnFor(DEFAULT_LANGUAGE_SWITCH, 'plaintext'), false);
  // Names of Object.prototype are languages like any other, not inherited values.
  assert.equal(completionsOnFor({ '*': false }, 'toString'), false);
  assert.equal(completionsOnFor({ '*': true }, 'constructor'), true);
});

test('toggling flips the language as it is now and leaves the other entries', () => {
  for (let round = 0; round < 20; round++) {
    const language = randomId();
    const others = Object.fromEntries(Array.from({ length: 3 }, () => [randomId(), Math.random() < 0.5]));
    const star = Math.random() < 0.5;
    const languages = { '*': star, ...others };
    const once = toggleLanguage(languages, language);
    assert.equal(completionsOnFor(once, language), !star);
    assert.deepEqual({ ...once, [language]: undefined }, { ...languages, [language]: undefined });
    const twice = toggleLanguage(once, language);
    assert.equal(completionsOnFor(twice, language), star);
  }
  assert.deepEqual(toggleLanguage(DEFAULT_LANGUAGE_SWITCH, 'markdown'), { '*': true, markdown: true, plaintext: false });
});

test('the setting is read only when every value is true or false; otherwise the default, named in the problems', () => {
  assert.equal(isLanguageSwitch({ '*': true, go: false }), true);
  assert.equal(isLanguageSwitch({}), true);
  for (const bad of [[], null, 'python', 3, { go: 'off' }, { '*': 1 }]) {
    assert.equal(isLanguageSwitch(bad), false, JSON.stringify(bad));
    const { settings, problems } = readSettings((key) => (key === 'inlineCompletions.languages' ? bad : undefined));
    if (bad === null) continue; // null reads as unset
    assert.deepEqual(settings.inlineCompletions.languages, DEFAULT_LANGUAGE_SWITCH);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^tidal\.inlineCompletions\.languages:/);
  }
  const chosen = { '*': false, rust: true };
  assert.deepEqual(readSettings((key) => (key === 'inlineCompletions.languages' ? chosen : undefined)).settings.inlineCompletions.languages, chosen);
});
