// The models folder (downloaded catalogue models, one folder each) and the text the model
// picker shows for catalogue entries and download progress.
import { existsSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

import { CatalogueFacts, catalogueFolder, CatalogueModel } from './catalogue';
import type { DownloadProgress } from './downloader';
import { stagingFolder } from './downloader';
import { fitsIn, formatBytes, formatParameters, MemoryEstimate } from './modelShape';

export type DownloadState = 'downloaded' | 'partial' | 'absent';

export function downloadState(modelsFolder: string, model: CatalogueModel): DownloadState {
  const folder = catalogueFolder(modelsFolder, model);
  if (existsSync(folder)) return 'downloaded';
  return existsSync(stagingFolder(folder)) ? 'partial' : 'absent';
}

/**
 * The path to load a downloaded catalogue model from (tidal.modelPath): its folder, or for a
 * GGUF model the .gguf file in it (the folder itself when there is not exactly one: validation
 * then says what is wrong).
 */
export function catalogueModelPath(modelsFolder: string, model: CatalogueModel): string {
  const folder = catalogueFolder(modelsFolder, model);
  if (model.weights === 'bf16' || !existsSync(folder)) return folder;
  const ggufs = readdirSync(folder).filter((name) => name.toLowerCase().endsWith('.gguf'));
  return ggufs.length === 1 ? path.join(folder, ggufs[0]) : folder;
}

// Bytes already received for a partial download (verified files and part files).
export function partialBytes(modelsFolder: string, model: CatalogueModel): number {
  const walk = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((sum, entry) => {
      const full = path.join(dir, entry.name);
      return sum + (entry.isDirectory() ? walk(full) : statSync(full).size);
    }, 0);
  const staging = stagingFolder(catalogueFolder(modelsFolder, model));
  return existsSync(staging) ? walk(staging) : 0;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

// "model.safetensors: 1.2 GB of 3.1 GB, 25.0 MB/s, 2 min left"
export function progressMessage(p: DownloadProgress): string {
  let text = `${p.file}: ${formatBytes(p.receivedBytes)} of ${formatBytes(p.totalBytes)}`;
  if (p.bytesPerSecond > 0) text += `, ${formatBytes(p.bytesPerSecond)}/s`;
  if (p.etaSeconds !== undefined && p.receivedBytes < p.totalBytes) text += `, ${formatDuration(p.etaSeconds)} left`;
  return text;
}

// Where a model would run and how much memory is free there, for the picker's fit notes.
export interface MemoryRoom {
  freeBytes: number;
  where: 'GPU' | 'memory';
}

// The description line of a catalogue entry: parameters, download or on-disk state, memory
// (and, given the free memory where it would run, whether it fits and whether it is the one
// recommended for this machine; `withFp8`: the estimate with an FP8 KV cache, named when only
// that one fits).
export function catalogueDescription(
  model: CatalogueModel,
  facts: CatalogueFacts,
  state: DownloadState,
  partial = 0,
  room?: MemoryRoom & { recommended: boolean; withFp8?: MemoryEstimate },
): string {
  const size =
    state === 'downloaded'
      ? 'downloaded'
      : state === 'partial'
        ? `${formatBytes(partial)} of ${formatBytes(facts.downloadBytes)} downloaded, resumes`
        : `${formatBytes(facts.downloadBytes)} download`;
  const m = facts.memory;
  let text = `${formatParameters(facts.parameters)} · ${size} · needs ~${formatBytes(m.totalBytes)} at ${m.contextTokens} tokens`;
  if (!room) return text;
  text += ` (${m.kvFormat} KV cache)`;
  const free = room.where === 'GPU' ? `the ${formatBytes(room.freeBytes)} free on the GPU` : `the ${formatBytes(room.freeBytes)} of free memory`;
  text += fitsIn(m, room.freeBytes) ? ` · fits ${free}` : ` · more than ${free}`;
  if (!fitsIn(m, room.freeBytes) && room.withFp8 && fitsIn(room.withFp8, room.freeBytes))
    text += ` · fits with an FP8 KV cache (~${formatBytes(room.withFp8.totalBytes)}; tidal.engine.kvCache)`;
  return room.recommended ? `Recommended for this machine · ${text}` : text;
}
