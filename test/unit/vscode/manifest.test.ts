// The manifest (package.json) as VS Code reads it: keybindings, menus, the walkthrough and
// command links run commands that exist (ours, or the few of VS Code's we use) and have `when`
// clauses that parse; the extension runs on the workspace side (where the files and the GPU
// are); every tidal.* setting says what it does, Model, Backend and Completions come first.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

import { COMMAND_IDS } from '../../../src/vscode/commandIds';

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
    configuration: ConfigurationSection[];
    menus?: Record<string, { command: string; when?: string }[]>;
    walkthroughs?: Walkthrough[];
  };
};

interface SettingSchema {
  description?: string;
  markdownDescription?: string;
  type?: string;
  default?: unknown;
  order?: number;
  enumDescriptions?: string[];
}

interface ConfigurationSection {
  id?: string;
  title: string;
  order?: number;
  properties: Record<string, SettingSchema>;
}

interface Walkthrough {
  id: string;
  title: string;
  description: string;
  steps: { id: string; title: string; description: string; media: { markdown?: string; image?: string; altText?: string }; completionEvents?: string[] }[];
}

/** Every setting of every configuration section. */
const settingsSchema: Record<string, SettingSchema> = Object.assign({}, ...manifest.contributes.configuration.map((section) => section.properties));

/** VS Code's own commands that the manifest binds keys to (they had none of their own) or links to. */
const VSCODE_COMMANDS = new Set(['editor.action.inlineSuggest.trigger', 'editor.action.inlineSuggest.acceptNextLine', 'workbench.action.openSettings']);

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
    if (token === undefined || (expected !== undefined && token !== expected))
      throw new Error(`when clause "${expression}": expected ${expected ?? 'more'} at token ${at}, got ${token}`);
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

test("keybindings: each runs a contributed and registered command (or one of VS Code's), with valid keys and when clauses", () => {
  const keybindings = manifest.contributes.keybindings ?? [];
  assert.ok(keybindings.length >= 4, 'keybindings for the manual trigger, accept next line, chat and ask');
  const contributed = new Set(manifest.contributes.commands.map((command) => command.command));
  const registered = new Set<string>(COMMAND_IDS);
  for (const binding of keybindings) {
    if (!VSCODE_COMMANDS.has(binding.command)) {
      assert.ok(contributed.has(binding.command), `${binding.command} is bound but not in contributes.commands`);
      assert.ok(registered.has(binding.command), `${binding.command} is bound but not registered (COMMAND_IDS)`);
    }
    for (const key of [binding.key, binding.mac, binding.win, binding.linux])
      if (key !== undefined) assert.ok(isKeyChord(key), `"${key}" is not a key VS Code reads`);
    if (binding.when !== undefined) {
      const keys = parseWhen(binding.when);
      for (const key of keys.filter((k) => k.startsWith('config.'))) {
        assert.ok(settingsSchema[key.slice('config.'.length)], `${binding.when} reads a setting that does not exist: ${key}`);
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
  const properties = Object.entries(settingsSchema);
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

/** The command ids in `command:` links of a markdown text (with or without arguments). */
function commandLinks(markdown: string): string[] {
  return [...markdown.matchAll(/\]\(command:([\w.-]+)/g)].map((match) => match[1]);
}

test("every command the manifest uses (keybindings, menus, walkthrough, links in settings) is declared with a title, or is VS Code's", () => {
  const declared = new Map(manifest.contributes.commands.map((command) => [command.command, command.title]));
  const used: { command: string; where: string }[] = [];
  for (const binding of manifest.contributes.keybindings ?? []) used.push({ command: binding.command, where: 'keybindings' });
  for (const [menu, items] of Object.entries(manifest.contributes.menus ?? {})) {
    for (const item of items) {
      used.push({ command: item.command, where: `menus.${menu}` });
      if (item.when !== undefined) parseWhen(item.when);
    }
  }
  for (const walkthrough of manifest.contributes.walkthroughs ?? []) {
    for (const step of walkthrough.steps) {
      for (const command of commandLinks(step.description)) used.push({ command, where: `walkthrough step ${step.id}` });
      for (const event of step.completionEvents ?? []) {
        if (event.startsWith('onCommand:')) used.push({ command: event.slice('onCommand:'.length), where: `walkthrough step ${step.id} completion` });
      }
    }
  }
  for (const [name, schema] of Object.entries(settingsSchema)) {
    for (const command of commandLinks(`${schema.markdownDescription ?? ''} ${(schema.enumDescriptions ?? []).join(' ')}`))
      used.push({ command, where: `setting ${name}` });
  }
  assert.ok(
    used.some((use) => use.where.startsWith('walkthrough')),
    'the walkthrough links no command',
  );
  assert.ok(
    used.some((use) => use.where.startsWith('setting')),
    'no setting links a command',
  );
  for (const { command, where } of used) {
    if (VSCODE_COMMANDS.has(command)) continue;
    assert.ok(command.startsWith('tidal.'), `${where} uses ${command}, which is neither ours nor a known VS Code command`);
    assert.ok(declared.get(command)?.trim(), `${where} uses ${command}, which contributes.commands does not declare with a title`);
  }
  // Commands palette entries hidden or narrowed by menus.commandPalette must still be declared.
  for (const item of manifest.contributes.menus?.commandPalette ?? []) assert.ok(declared.has(item.command), item.command);
});

test('settings: Model, Backend and Completions come first; the attention research knobs are in "Advanced: attention"', () => {
  const sections = manifest.contributes.configuration;
  assert.ok(Array.isArray(sections) && sections.length >= 2, 'configuration is a list of sections');
  const [main] = [...sections].sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
  assert.equal(main.title, 'Tidal Code', "the first section carries the extension's name, so its settings show at the top level");
  const byOrder = Object.entries(main.properties)
    .sort(([, a], [, b]) => (a.order ?? Infinity) - (b.order ?? Infinity))
    .map(([name]) => name);
  assert.deepEqual(byOrder.slice(0, 3), ['tidal.modelPath', 'tidal.backend', 'tidal.inlineCompletions.enabled']);
  for (const section of sections) {
    const orders = Object.values(section.properties).map((schema) => schema.order);
    assert.ok(
      orders.every((order) => Number.isInteger(order)),
      `every setting of "${section.title}" has an order`,
    );
    assert.equal(new Set(orders).size, orders.length, `two settings of "${section.title}" share an order`);
  }
  const attention = sections.find((section) => section.title === 'Advanced: attention');
  assert.ok(attention, 'an "Advanced: attention" section');
  assert.deepEqual(
    Object.keys(attention.properties).sort(),
    Object.keys(settingsSchema)
      .filter((name) => name.startsWith('tidal.attention.'))
      .sort(),
  );
  assert.ok(!Object.keys(main.properties).some((name) => name.startsWith('tidal.attention.')));
  // A setting in two sections would be registered twice.
  const all = sections.flatMap((section) => Object.keys(section.properties));
  assert.equal(new Set(all).size, all.length);
  assert.match(settingsSchema['tidal.modelPath'].markdownDescription ?? '', /\(command:tidal\.selectModel\)/);
});

test('the walkthrough covers choosing a model, GPU or CPU and what is in context, with media that ships', () => {
  const walkthroughs = manifest.contributes.walkthroughs ?? [];
  assert.equal(walkthroughs.length, 1);
  const [walkthrough] = walkthroughs;
  const ignore = readFileSync('.vscodeignore', 'utf8');
  assert.match(ignore, /^!media\/\*\*$/m, 'media/ goes into the VSIX');
  const text = walkthrough.steps.map((step) => `${step.description}\n${step.media.markdown ? readFileSync(step.media.markdown, 'utf8') : ''}`);
  for (const step of walkthrough.steps) {
    assert.ok(step.media.markdown ?? step.media.image, `${step.id} has no media`);
    if (step.media.markdown) assert.ok(existsSync(step.media.markdown), `${step.media.markdown} is missing`);
    assert.ok(step.title.trim() && step.description.trim(), step.id);
  }
  assert.ok(
    text.some((t) => t.includes('(command:tidal.selectModel)') && /demo/i.test(t)),
    'a step offers Select Model and says the embedded model is a demo',
  );
  assert.ok(
    text.some((t) => t.includes('tidal.backend') && /\bcpu\b/i.test(t) && /\bgpu\b/i.test(t)),
    'a step explains tidal.backend, GPU or CPU',
  );
  assert.ok(
    text.some((t) => t.includes('tidal.context.maxTokens') && /\(command:/.test(t)),
    'a step explains the context budget and links where to see it',
  );
});
