// `Tidal: Select Model`: the embedded default, a local model folder, a .gguf file, or a
// recommended model (downloaded on request under a cancellable progress notification). The
// choice is validated, then applied by writing the `tidal.modelPath` setting.
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';

import { CATALOGUE, catalogueFacts, catalogueFolder, CatalogueModel, recommendedModel, selectModelFiles } from '../core/models/catalogue';
import { discardPartialDownload, downloadModel } from '../core/models/downloader';
import { DEFAULT_HUB_URL } from '../core/models/hubClient';
import { tidalErrorCode } from '../native/errors';
import { formatBytes, kvFormatOn } from '../core/models/modelShape';
import { catalogueDescription, catalogueModelPath, downloadState, MemoryRoom, partialBytes, progressMessage } from '../core/models/modelStore';
import { validateModel, ValidationResult } from '../core/models/validate';
import { bundledAddon, bundledReader, type ModelReader, type NativeAddon } from '../native/addon';

export interface ModelPickerOptions {
  // Free memory of the GPU the engine runs on, when known (bytes). Default: where tidal.backend
  // is auto or cuda and the addon finds a usable CUDA device, that device's memory (the
  // engine unloads the current model before it loads the next, so all of it is the room).
  gpuFreeBytes?: () => Promise<number | undefined>;
  // Reads the picked model (the engine's inspectModel). Default: the addon beside the
  // extension; where there is none, models are applied with a warning and checked on load.
  reader?: ModelReader;
}

interface PickItem extends vscode.QuickPickItem {
  action?: 'embedded' | 'folder' | 'gguf' | 'catalogue';
  model?: CatalogueModel;
}

/** The memory of the CUDA device the engine would run on, or undefined where it runs elsewhere. */
function cudaDeviceBytes(reader: ModelReader | undefined): number | undefined {
  const backend = vscode.workspace.getConfiguration('tidal').get<string>('backend', 'auto');
  if (backend !== 'auto' && backend !== 'cuda') return undefined;
  // A reader passed in (tests) may be no addon at all; then nothing is probed.
  const addon = reader ?? bundledAddon().addon;
  const probe = addon && 'probeCuda' in addon ? (addon as NativeAddon).probeCuda() : undefined;
  return probe?.usable && probe.memoryTotalGiB > 0 ? probe.memoryTotalGiB * 2 ** 30 : undefined;
}

function gpuRoom(options: ModelPickerOptions): Promise<number | undefined> {
  return (options.gpuFreeBytes ?? (async () => cudaDeviceBytes(options.reader)))().catch(() => undefined);
}

function settings() {
  const config = vscode.workspace.getConfiguration('tidal');
  return {
    modelPath: config.get<string>('modelPath', ''),
    contextTokens: Math.max(0, config.get<number>('context.maxTokens', 0) ?? 0),
    hubUrl: (config.get<string>('models.hubUrl', DEFAULT_HUB_URL) || DEFAULT_HUB_URL).trim(),
    folder: (config.get<string>('models.folder', '') ?? '').trim(),
    kvCache: config.get<string>('engine.kvCache', 'bf16') === 'fp8' ? ('fp8' as const) : ('bf16' as const),
  };
}

function modelsFolder(context: vscode.ExtensionContext): string {
  return settings().folder || path.join(context.globalStorageUri.fsPath, 'models');
}

async function applyModel(modelPath: string, log: vscode.LogOutputChannel): Promise<string> {
  await vscode.workspace.getConfiguration('tidal').update('modelPath', modelPath, vscode.ConfigurationTarget.Global);
  log.info(modelPath ? `model set to ${modelPath}` : 'model set to the embedded default');
  return modelPath;
}

// Shows validation problems; resolves true when the model should be used.
async function confirmValid(label: string, result: ValidationResult, log: vscode.LogOutputChannel): Promise<boolean | 'again'> {
  for (const issue of result.issues) log[issue.severity === 'error' ? 'error' : 'warn'](`${label}: ${issue.message}`);
  const errors = result.issues.filter((i) => i.severity === 'error');
  if (errors.length > 0) {
    const choice = await vscode.window.showErrorMessage(`Tidal cannot use ${label}: ${errors[0].message}`, 'Pick Another Model', 'Show Log');
    if (choice === 'Show Log') log.show(true);
    return choice === 'Pick Another Model' ? 'again' : false;
  }
  const warnings = result.issues.filter((i) => i.severity === 'warning');
  if (warnings.length > 0) {
    const choice = await vscode.window.showWarningMessage(`${label}: ${warnings.map((w) => w.message).join(' ')}`, 'Use Anyway', 'Pick Another Model');
    if (choice === 'Pick Another Model') return 'again';
    return choice === 'Use Anyway';
  }
  return true;
}

async function validateAndApply(
  modelPath: string,
  label: string,
  log: vscode.LogOutputChannel,
  options: ModelPickerOptions,
): Promise<string | undefined | 'again'> {
  const { contextTokens, kvCache } = settings();
  const gpuFreeBytes = await gpuRoom(options);
  // The native addon, else the WebAssembly build: models are checked on every platform.
  const bundled = options.reader ? { addon: options.reader, error: undefined } : await bundledReader();
  let result: ValidationResult;
  try {
    result = validateModel(modelPath, { contextTokens, freeMemoryBytes: os.freemem(), gpuFreeBytes, kvCache }, bundled.addon, bundled.error?.message);
  } catch (error) {
    result = { ok: false, issues: [{ severity: 'error', message: (error as Error).message }] };
  }
  if (result.summary) {
    const s = result.summary;
    log.info(
      `${label}: ${s.architecture} ${s.dtype}, ${s.parameters} parameters, needs about ${formatBytes(s.memory.totalBytes)} at ${s.memory.contextTokens} tokens`,
    );
  }
  const verdict = await confirmValid(label, result, log);
  if (verdict === 'again') return 'again';
  return verdict ? applyModel(modelPath, log) : undefined;
}

async function download(context: vscode.ExtensionContext, model: CatalogueModel, log: vscode.LogOutputChannel): Promise<string | undefined> {
  const { hubUrl } = settings();
  const destination = catalogueFolder(modelsFolder(context), model);
  const facts = catalogueFacts(model, settings().contextTokens);
  let hubHost = hubUrl;
  try {
    hubHost = new URL(hubUrl).host;
  } catch {
    // reported by the download itself
  }
  const state = downloadState(modelsFolder(context), model);
  if (state === 'downloaded') return catalogueModelPath(modelsFolder(context), model);
  if (state === 'absent') {
    const go = await vscode.window.showInformationMessage(
      `Download ${model.label} (about ${formatBytes(facts.downloadBytes)}) from ${hubHost} into ${destination}?`,
      { modal: true },
      'Download',
    );
    if (go !== 'Download') return undefined;
  }
  log.info(`downloading ${model.repo} from ${hubUrl} into ${destination}`);
  try {
    return await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Tidal: downloading ${model.label}`, cancellable: true },
      async (progress, token) => {
        const controller = new AbortController();
        const subscription = token.onCancellationRequested(() => controller.abort());
        let reported = 0;
        let lastUpdate = 0;
        let lastFile = '';
        try {
          await downloadModel({
            location: { hubUrl, repo: model.repo },
            destination,
            select: (files) => selectModelFiles(model, files),
            signal: controller.signal,
            onProgress: (p) => {
              const now = Date.now();
              const percent = p.totalBytes > 0 ? (100 * p.receivedBytes) / p.totalBytes : 0;
              if (now - lastUpdate < 250 && p.file === lastFile && p.receivedBytes < p.totalBytes) return;
              lastUpdate = now;
              lastFile = p.file;
              progress.report({ message: progressMessage(p), increment: percent - reported });
              reported = percent;
            },
          });
          return catalogueModelPath(modelsFolder(context), model);
        } finally {
          subscription.dispose();
        }
      },
    );
  } catch (error) {
    const code = tidalErrorCode(error);
    if (code === 'ERR_TIDAL_CANCELLED') {
      log.info(`download of ${model.repo} cancelled; partial files kept`);
      const choice = await vscode.window.showInformationMessage(
        `Download of ${model.label} paused. Pick it again to resume where it stopped.`,
        'Discard Partial Download',
      );
      if (choice === 'Discard Partial Download') discardPartialDownload(destination);
      return undefined;
    }
    const message = (error as Error).message;
    log.error(`download of ${model.repo} failed: ${message}`);
    const actions = code === 'ERR_TIDAL_HUB' || code === 'ERR_TIDAL_CHECKSUM' ? ['Retry', 'Open Hub Setting'] : ['Retry'];
    const choice = await vscode.window.showErrorMessage(`Tidal could not download ${model.label}: ${message}`, ...actions);
    if (choice === 'Retry') return download(context, model, log);
    if (choice === 'Open Hub Setting') await vscode.commands.executeCommand('workbench.action.openSettings', 'tidal.models.hubUrl');
    return undefined;
  }
}

function buildItems(context: vscode.ExtensionContext, gpuFreeBytes: number | undefined): PickItem[] {
  const { modelPath, contextTokens, hubUrl, kvCache } = settings();
  // Where the engine would run: the GPU's free memory and a KV cache there as
  // tidal.engine.kvCache says (bf16 or FP8), else the machine's free memory and an f32 one.
  const room: MemoryRoom = gpuFreeBytes !== undefined ? { freeBytes: gpuFreeBytes, where: 'GPU' } : { freeBytes: os.freemem(), where: 'memory' };
  const kvFormat = kvFormatOn(room.where === 'GPU', kvCache);
  const recommended = recommendedModel(contextTokens, room.freeBytes, kvFormat);
  const folder = modelsFolder(context);
  const current = (p: string) => (p === modelPath ? '$(check) ' : '');
  const items: PickItem[] = [
    {
      label: `${current('')}$(package) Embedded demo model`,
      description: 'tidal-code-mini: ships with the extension, for trying it out; its answers are not useful',
      action: 'embedded',
    },
    { label: '$(folder-opened) Local model folder…', description: 'Hugging Face layout: config.json, *.safetensors, tokenizer.json', action: 'folder' },
    { label: '$(file-binary) GGUF file…', description: 'llama or qwen2 .gguf (F16, BF16, Q8_0, Q4_K, Q6_K, …)', action: 'gguf' },
  ];
  let host = hubUrl;
  try {
    host = new URL(hubUrl).host;
  } catch {
    // shown as typed
  }
  items.push({ label: `Recommended (from ${host})`, kind: vscode.QuickPickItemKind.Separator });
  for (const model of CATALOGUE) {
    const state = downloadState(folder, model);
    const facts = catalogueFacts(model, contextTokens, kvFormat);
    items.push({
      label: `${current(catalogueModelPath(folder, model))}${state === 'downloaded' ? '$(pass-filled)' : '$(cloud-download)'} ${model.label}`,
      description: catalogueDescription(model, facts, state, state === 'partial' ? partialBytes(folder, model) : 0, {
        ...room,
        recommended: model === recommended,
        withFp8: kvFormat === 'bf16' ? catalogueFacts(model, contextTokens, 'fp8').memory : undefined,
      }),
      detail: `${model.repo}${model.weights === 'bf16' ? ' (bf16 safetensors)' : ` (${model.weights} GGUF)`}: ${model.description}`,
      action: 'catalogue',
      model,
    });
  }
  return items;
}

// The `tidal.selectModel` behaviour; resolves with the new tidal.modelPath ('' for the
// embedded model) or undefined when nothing changed.
export async function selectModel(
  context: vscode.ExtensionContext,
  log: vscode.LogOutputChannel,
  options: ModelPickerOptions = {},
): Promise<string | undefined> {
  const gpuFreeBytes = await gpuRoom(options);
  for (;;) {
    const picked = await vscode.window.showQuickPick(buildItems(context, gpuFreeBytes), {
      title: 'Tidal: Select Model',
      placeHolder: 'The model for completions and chat',
      matchOnDescription: true,
      matchOnDetail: true,
      ignoreFocusOut: true,
    });
    if (!picked) return undefined;
    let outcome: string | undefined | 'again';
    switch (picked.action) {
      case 'embedded':
        return applyModel('', log);
      case 'folder': {
        const uris = await vscode.window.showOpenDialog({
          title: 'Tidal: Select Model Folder',
          openLabel: 'Use This Model',
          canSelectFolders: true,
          canSelectFiles: false,
        });
        if (!uris?.length) continue;
        outcome = await validateAndApply(uris[0].fsPath, path.basename(uris[0].fsPath), log, options);
        break;
      }
      case 'gguf': {
        const uris = await vscode.window.showOpenDialog({
          title: 'Tidal: Select GGUF File',
          openLabel: 'Use This Model',
          canSelectFiles: true,
          canSelectFolders: false,
          filters: { 'GGUF models': ['gguf'] },
        });
        if (!uris?.length) continue;
        outcome = await validateAndApply(uris[0].fsPath, path.basename(uris[0].fsPath), log, options);
        break;
      }
      case 'catalogue': {
        const model = picked.model!;
        const folder = await download(context, model, log);
        if (!folder) return undefined;
        outcome = await validateAndApply(folder, model.label, log, options);
        break;
      }
      default:
        return undefined;
    }
    if (outcome !== 'again') return outcome;
  }
}

// Registers `tidal.selectModel`. Push the result onto context.subscriptions.
export function registerModelPicker(context: vscode.ExtensionContext, log: vscode.LogOutputChannel, options: ModelPickerOptions = {}): vscode.Disposable[] {
  return [vscode.commands.registerCommand('tidal.selectModel', () => selectModel(context, log, options))];
}
