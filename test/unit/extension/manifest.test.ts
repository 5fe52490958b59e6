// The manifest (package.json) as VS Code reads it: keybindings run commands that exist (ours,
// or the few of VS Code's we bind) and have `when` clauses that parse; the extension runs on
// the workspace side (where the files and the GPU are); every tidal.* setting says what it does.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { COMMAND_IDS } from '../../../src/extension/commandIds';

interface Keybinding {
  command: string;
  key: string;
  mac?: string;
  win?: string;
  linux?: string;
  when?: string;
}

const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as {
  extensionKind?: string[];
  contributes: {
    commands: { command: string; title: string }[];
    keybindings?: Keybinding[];
    configuration: { properties: Record<string, { description?: string; markdownDescription?: string; type?: string; default?: unknown }> };
  };
};

/** VS Code's own commands that the manifest binds keys to (they had none of their own). */
const VSCODE_COMMANDS = new Set(['editor.action.inlineSuggest.trigger', 'editor.action.inlineSuggest.acceptNextLine']);

const MODIFIERS = new Set(['ctrl', 'shift', 'alt', 'cmd', 'meta', 'win']);
const KEY_NAMES = /^([a-z0-9]|f([1-9]|1[0-9])|[`\-=[\]\\;',./]|up|down|left|right|home|end|pageup|pagedown|tab|enter|escape|space|backspace|delete|insert)$/;

/** Whether `chord` is one or two presses of modifiers and one key, as VS Code writes them. */
export function isKeyChord(chord: string): boolean {
  const presses = chord.split(' ');
  if (presses.length === 0 || presses.length > 2) return false;
  return presses.every((press) => {
    // The key itself may be '+' only as the last part; none of ours is.
    const parts = press.split('+');
    const key = parts.pop()!;
    const seen = new Set<string>();
    for (const modifier of parts) {
      if (!MODIFIERS.has(modifier) || seen.has(modifier)) return false;
      seen.add(modifier);
    }
    return KEY_NAMES.test(key);
  });
}

/**
 * A small parser of VS Code's `when` grammar (or, and, not, parentheses, ==, !=, =~, in, and
 * the context keys): throws on an unbalanced or dangling expression. Returns the context keys used.
 */
export function parseWhen(expression: string): string[] {
  const tokens = expression.match(/\s*(&&|\|\||!=|==|=~|[!()]|'[^']*'|\/(?:\\.|[^/])+\/[a-z]*|[\w.:\-]+|\S)/g)?.map((t) => t.trim()) ?? [];
  let at = 0;
  const keys: string[] = [];
  const peek = () => tokens[at];
  const take = (expected?: string) => {
    const token = tokens[at++];
    if (token === undefined || (expected !== undefined && token !== expected)) throw new Error(`when clause "${expression}": expected ${expected ?? 'more'} at token ${at}, got ${token}`);
    return token;
  };
  const operand = (): void => {
    if (peek() === '!') {
      take('!');
      operand();
      return;
    }
    if (peek() === '(') {
      take('(');
      or();
      take(')');
      return;
    }
    const key = take();
    if (!/^[\w.:\-]+$/.test(key)) throw new Error(`when clause "${expression}": "${key}" is not a context key`);
    keys.push(key);
    if (['==', '!=', '=~', 'in'].includes(peek() ?? '')) {
      take();
      const value = take();
      if (/^[&|()!]/.test(value)) throw new Error(`when clause "${expression}": comparison without a value`);
    }
  };
  const and = () => {
    operand();
    while (peek() === '&&') {
      take('&&');
      operand();
    }
  };
  const or = () => {
    and();
    while (peek() === '||') {
      take('||');
      and();
    }
  };
  or();
  if (at !== tokens.length) throw new Error(`when clause "${expression}": unexpected "${tokens[at]}"`);
  return keys;
}

test('the when-clause check rejects what VS Code would not parse', () => {
  assert.deepEqual(parseWhen('editorTextFocus && !editorReadonly'), ['editorTextFocus', 'editorReadonly']);
  assert.deepEqual(parseWhen("(a || b.c) && resourceLangId == 'python'"), ['a', 'b.c', 'resourceLangId']);
  for (const bad of ['a &&', '&& a', '(a || b', 'a b', '!', 'a == ', 'a || || b', 'a)']) assert.throws(() => parseWhen(bad), Error, bad);
  assert.equal(isKeyChord('ctrl+shift+alt+t'), true);
  assert.equal(isKeyChord('alt+\\'), true);
  assert.equal(isKeyChord('ctrl+k ctrl+t'), true);
  for (const bad of ['ctrl+', 'ctl+t', 'ctrl+ctrl+t', 'alt+\\\\', 'ctrl+k ctrl+t x', '']) assert.equal(isKeyChord(bad), false, bad);
});

test('keybindings: each runs a contributed and registered command (or one of VS Code\'s), with valid keys and when clauses', () => {
  const keybindings = manifest.contributes.keybindings ?? [];
  assert.ok(keybindings.length >= 4, 'keybindings for the manual trigger, accept next line, chat and ask');
  const contributed = new Set(manifest.contributes.commands.map((command) => command.command));
  const registered = new Set<string>(COMMAND_IDS);
  for (const binding of keybindings) {
    if (!VSCODE_COMMANDS.has(binding.command)) {
      assert.ok(contributed.has(binding.command), `${binding.command} is bound but not in contributes.commands`);
      assert.ok(registered.has(binding.command), `${binding.command} is bound but not registered (COMMAND_IDS)`);
    }
    for (const key of [binding.key, binding.mac, binding.win, binding.linux]) if (key !== undefined) assert.ok(isKeyChord(key), `"${key}" is not a key VS Code reads`);
    if (binding.when !== undefined) {
      const keys = parseWhen(binding.when);
      for (const key of keys.filter((k) => k.startsWith('config.'))) {
        assert.ok(manifest.contributes.configuration.properties[key.slice('config.'.length)], `${binding.when} reads a setting that does not exist: ${key}`);
      }
    }
  }
  // One binding per (key, platform): two of ours on one key would shadow each other.
  for (const platform of ['mac', 'win', 'linux'] as const) {
    const keys = keybindings.map((b) => b[platform] ?? b.key);
    assert.equal(new Set(keys).size, keys.length, `two keybindings share a key on ${platform}: ${keys.join(', ')}`);
  }
  // Keys VS Code binds by default for inline suggestions are left alone.
  const vscodeDefaults = ['alt+]', 'alt+[', 'ctrl+right', 'cmd+right', 'tab', 'escape'];
  for (const binding of keybindings) for (const key of [binding.key, binding.mac]) assert.ok(!vscodeDefaults.includes(key ?? ''), `${key} is VS Code's`);
});

test('every contributed command is registered, and every registered one is contributed', () => {
  const contributed = manifest.contributes.commands.map((command) => command.command).sort();
  assert.deepEqual(contributed, [...COMMAND_IDS].sort());
  for (const command of manifest.contributes.commands) assert.ok(command.title.trim().length > 0, `${command.command} has no title`);
});

test('the extension runs on the workspace side, where the engine and the GPU are', () => {
  assert.deepEqual(manifest.extensionKind, ['workspace']);
});

test('every setting is under tidal.*, has a type and a description, and its default has that type', () => {
  const properties = Object.entries(manifest.contributes.configuration.properties);
  assert.ok(properties.length > 10);
  for (const [name, property] of properties) {
    assert.match(name, /^tidal\.[a-zA-Z]+(\.[a-zA-Z]+)*$/);
    const description = property.markdownDescription ?? property.description ?? '';
    assert.ok(description.trim().length >= 20, `${name} has no description`);
    assert.ok(property.type, `${name} has no type`);
    const actual = Array.isArray(property.default) ? 'array' : Number.isInteger(property.default) ? 'integer' : typeof property.default;
    const allowed = property.type === 'number' ? ['number', 'integer'] : [property.type];
    assert.ok(allowed.includes(actual as string), `${name}: default ${JSON.stringify(property.default)} is not a ${property.type}`);
  }
});
