// Where the local engine runs, as pure decisions (unit-tested without VS Code). The native engine
// ships only in the package for the platforms it is built for (NATIVE_ENGINE_TARGETS); every
// other platform gets the universal package, whose engine is the WebAssembly build (CPU backend,
// slower than native code). Without either (a broken install, a build that does not load) the
// extension works through the remote backend. From the platform and what became of loading the addon, this decides what the
// extension says and offers: the status bar's text and tooltip, the engine's message, and a
// notification shown once while a local backend is selected.
import type { AddonProblemKind } from '../native/addon';
import type { BackendSetting } from '../core/protocol/protocol';

/** The platforms whose package carries the native engine, as `vsce package --target` names them. */
export const NATIVE_ENGINE_TARGETS: readonly string[] = ['linux-x64', 'win32-x64', 'linux-arm64'];

/** The platform as `vsce package --target` names it: `darwin-arm64`, `win32-x64`, `linux-x64`. */
export function platformName(platform: string, arch: string): string {
  return `${platform}-${arch}`;
}

/** What loading the native addon gave: nothing wrong, or why there is no local engine. */
export type AddonLoadResult = { loaded: true } | { loaded: false; kind: AddonProblemKind; message: string };

/** The buttons of the notification. */
export type LocalEngineNoticeAction = 'Use Remote Server' | 'Open Settings' | "Don't Show Again";

export const LOCAL_ENGINE_NOTICE_ACTIONS: readonly LocalEngineNoticeAction[] = ['Use Remote Server', 'Open Settings', "Don't Show Again"];

/** What globalState remembers about the notification: `dismissed` after Don't Show Again. */
export const LOCAL_ENGINE_NOTICE_KEY = 'tidal.noLocalEngineNotice';

/** The settings the remote backend needs; Open Settings shows them. */
export const REMOTE_SETTINGS_QUERY = 'tidal.remote';

export type LocalEngineOffer =
  | { local: true; platform: string }
  | {
      local: false;
      platform: string;
      /** A package with the native engine exists for this platform (it was removed or broke). */
      nativePackage: boolean;
      /** One line: "no local engine on darwin-arm64". */
      headline: string;
      /** Why there is none, in a sentence or two. */
      reason: string;
      /** The status bar's text while a local backend is selected. */
      statusText: string;
      /** The status bar's tooltip (Markdown, with links to the settings). */
      tooltip: string;
      /** What a request to the local backend fails with, and what the chat header shows. */
      modelMessage: string;
      /** The notification's text. */
      noticeMessage: string;
    };

const REMOTE_HOW =
  'Completions and chat work through a remote server: set `tidal.backend` to `remote` and `tidal.remoteUrl` to an ' +
  'OpenAI-compatible server (`tidal serve` on a machine with the engine, vLLM, SGLang).';

const settingsLink = (query: string) => `command:workbench.action.openSettings?${encodeURIComponent(JSON.stringify([query]))}`;

/** What the extension offers on `platform` (platformName) given the addon's load result. */
export function localEngineOffer(platform: string, addon: AddonLoadResult): LocalEngineOffer {
  if (addon.loaded) return { local: true, platform };
  const nativePackage = NATIVE_ENGINE_TARGETS.includes(platform);
  const headline = `no local engine on ${platform}`;
  let reason: string;
  if (addon.kind === 'unloadable') reason = `The native engine could not be loaded. ${addon.message}`;
  else if (nativePackage) reason = `The native engine is missing from this installation; reinstall the extension (its ${platform} package carries the engine).`;
  else
    reason =
      `The native engine is built for ${NATIVE_ENGINE_TARGETS.join(', ')} only; this package has no native engine for ${platform}, ` +
      'and its WebAssembly engine (dist/native-wasm), which runs everywhere else, is missing: reinstall the extension.';
  const tooltip =
    `**Tidal Code** — ${headline}\n\n${reason}\n\n${REMOTE_HOW}\n\n` +
    `[Open the remote server settings](${settingsLink(REMOTE_SETTINGS_QUERY)}) · [Open the backend setting](${settingsLink('tidal.backend')})`;
  return {
    local: false,
    platform,
    nativePackage,
    headline,
    reason,
    statusText: `$(circle-slash) Tidal: ${headline}`,
    tooltip,
    modelMessage: `Tidal has ${headline}. Set tidal.backend to remote (and tidal.remoteUrl to your server) to use a remote server.`,
    noticeMessage: `Tidal: ${headline}. ${reason} Completions and chat can use a remote server instead (tidal.backend: remote, tidal.remoteUrl).`,
  };
}

/**
 * Whether to show the notification now: there is no local engine, a local backend is selected
 * (auto, cpu, cuda), it was not shown in this window yet, and the user did not dismiss it for good.
 */
export function shouldShowLocalEngineNotice(offer: LocalEngineOffer, backend: BackendSetting, memory: string | undefined, shownInThisWindow: boolean): boolean {
  return !offer.local && backend !== 'remote' && memory !== 'dismissed' && !shownInThisWindow;
}

/** The tooltip line the remote backend's status bar item adds while there is no local engine. */
export function remoteTooltipNote(offer: LocalEngineOffer): string | undefined {
  return offer.local ? undefined : `There is ${offer.headline}; requests go to the remote server.`;
}

/** The addon's load result as the engine client reported it: only `unavailable` says it failed. */
export function addonLoadResultOf(status: { state: string; problem?: { kind: AddonProblemKind; message: string } }): AddonLoadResult {
  if (status.state !== 'unavailable') return { loaded: true };
  return { loaded: false, kind: status.problem?.kind ?? 'unloadable', message: status.problem?.message ?? '' };
}
