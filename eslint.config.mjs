// Lint for the TypeScript of src/. Its main job is to keep the layers apart. From the bottom up:
//
//   native/   the addon's types and loader          imports nothing of src/
//   webgpu/   the WebGPU device the addon's         imports native/
//             'webgpu' backend runs its kernels on
//   core/     protocol, prompts, tokenizer,         imports native/
//             context, completion, chat, models;
//             no editor, no child process
//   host/     the engine host process               imports core/, webgpu/, native/
//   serve/    `tidal serve` (HTTP)                  imports host/, core/, webgpu/, native/
//   eval/     `tidal eval`                          imports host/, core/, webgpu/, native/
//   vscode/   the extension: activate, providers,   imports everything below
//             views, commands, adapters
//
// A layer imports only the layers under it, and only vscode/ imports `vscode`. The chat panel's
// script (vscode/webview/) runs in a browser, and may import only core/ besides itself.
// `node scripts/check-cycles.mjs` finds the import cycles inside a layer.
import tseslint from 'typescript-eslint';

const layers = ['native', 'webgpu', 'core', 'host', 'serve', 'eval', 'vscode'];

/** A relative import of one of `folders` of src/ (seen from anywhere below src/). */
function importOf(folders) {
  return `^(\\.\\./)+(${folders.join('|')})(/|$)`;
}

/** The rule for a layer that may import `allowed` (and itself); `extra` adds more bans. */
function layerRule(layer, allowed, extra = {}) {
  const forbidden = layers.filter((other) => other !== layer && !allowed.includes(other));
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'vscode', message: 'Only src/vscode/ imports `vscode`; pass what the module needs in instead.' }, ...(extra.paths ?? [])],
          patterns: [
            {
              regex: importOf(forbidden),
              message: `src/${layer}/ may import only ${[...allowed.map((other) => `src/${other}/`), 'itself'].join(', ')} (layers: native < webgpu, core < host < serve, eval < vscode).`,
            },
            ...(extra.patterns ?? []),
          ],
        },
      ],
    },
  };
}

const noProcess = {
  paths: ['child_process', 'node:child_process'].map((name) => ({ name, message: 'src/core/ starts no process; the host and the extension do.' })),
};

export default tseslint.config(
  { ignores: ['dist/', 'out/', 'node_modules/', 'native/', 'kernels/', 'bench/', 'test/fixtures/', 'test/integration/', '.tools/'] },
  {
    files: ['src/**/*.ts', 'test/unit/**/*.ts', 'test/adversarial/**/*.ts'],
    languageOptions: { parser: tseslint.parser, ecmaVersion: 2022, sourceType: 'module' },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: { '@typescript-eslint/no-require-imports': 'error' },
  },
  layerRule('native', []),
  layerRule('webgpu', ['native']),
  layerRule('core', ['native'], noProcess),
  layerRule('host', ['core', 'webgpu', 'native']),
  layerRule('serve', ['host', 'core', 'webgpu', 'native']),
  layerRule('eval', ['host', 'core', 'webgpu', 'native']),
  // The composition root: imports every layer, and `vscode`.
  {
    files: ['src/vscode/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ regex: importOf(['serve', 'eval']), message: 'The extension does not import the command-line tools.' }] }] },
  },
  // The chat panel's script runs in the webview, a browser: no `vscode`, no Node, no extension code.
  {
    files: ['src/vscode/webview/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'vscode', message: 'The webview script runs in a browser; it talks to the extension through messages.' }],
          patterns: [
            { regex: '^node:', message: 'The webview script runs in a browser.' },
            { regex: '^\\.\\./(?!\\.\\./core/)', message: 'The webview script imports only core/ and its own folder.' },
          ],
        },
      ],
    },
  },
);
