// Downloads the files of a hub model into a models folder, safely:
//   - every file is received as <staging>/<path>.part, resumed with a Range request after a
//     dropped connection or a cancelled download;
//   - a finished file is checked against the hub's size and sha256 (LFS) or git blob sha1,
//     and renamed to its name only when it matches; a mismatch deletes the part file;
//   - the staging folder becomes the model folder by one rename once every file is there,
//     so the model folder exists only complete and verified.
import { createHash, Hash } from 'node:crypto';
import { appendFileSync, createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import * as path from 'node:path';

import { downloadCancelled, fileUrl, hubError, hubGet, HubFile, HubLocation, listRepoFiles } from './hubClient';
import { TidalError, tidalErrorCode } from '../../native/errors';

export interface DownloadProgress {
  file: string; // the file being received
  receivedBytes: number; // of all files, including resumed parts
  totalBytes: number;
  bytesPerSecond: number; // smoothed over the last seconds; 0 until known
  etaSeconds: number | undefined;
}

export interface DownloadOptions {
  location: HubLocation;
  destination: string; // the model folder to create
  // Which hub files to fetch (default: all of them): a filter, or a choice made from the whole
  // listing (which may throw to refuse the repository).
  include?: (file: HubFile) => boolean;
  select?: (files: HubFile[]) => HubFile[];
  signal?: AbortSignal;
  onProgress?: (progress: DownloadProgress) => void;
  // Attempts per file after a dropped connection (each resumes); default 3.
  retries?: number;
  // Injected clock for the speed estimate (tests); default Date.now.
  now?: () => number;
}

/** A downloaded file that is not what the listing says: ERR_TIDAL_CHECKSUM. */
const checksumError = (message: string) => new TidalError('ERR_TIDAL_CHECKSUM', message);

// The staging folder beside the destination; parts left there are resumed next time.
export const stagingFolder = (destination: string) => `${destination}.download`;

function gitBlobHash(size: number): Hash {
  return createHash('sha1').update(`blob ${size}\0`);
}

async function hashExisting(file: string, hashes: Hash[], signal?: AbortSignal): Promise<void> {
  for await (const chunk of createReadStream(file)) {
    if (signal?.aborted) throw downloadCancelled();
    for (const h of hashes) h.update(chunk as Buffer);
  }
}

// Smoothed speed: bytes over a sliding window of recent samples.
class SpeedMeter {
  private samples: { at: number; bytes: number }[] = [];
  constructor(
    private readonly now: () => number,
    private readonly windowMs = 5000,
  ) {}
  add(totalBytes: number): number {
    const at = this.now();
    this.samples.push({ at, bytes: totalBytes });
    while (this.samples.length > 2 && at - this.samples[0].at > this.windowMs) this.samples.shift();
    const first = this.samples[0];
    const seconds = (at - first.at) / 1000;
    return seconds > 0 ? (totalBytes - first.bytes) / seconds : 0;
  }
}

// Receives one file into `part`, appending from its current length. Resolves when the body
// ended; a body that ends before its length is a dropped connection (ERR_TIDAL_HUB, retried).
async function receive(
  location: HubLocation,
  file: HubFile,
  part: string,
  hashes: Hash[],
  signal: AbortSignal | undefined,
  onBytes: (bytes: number) => void,
): Promise<void> {
  let offset = existsSync(part) ? statSync(part).size : 0;
  if (offset > file.size) {
    rmSync(part, { force: true });
    offset = 0;
  }
  if (offset === file.size) {
    appendFileSync(part, Buffer.alloc(0)); // an empty file, or one received before
    return;
  }
  const { response } = await hubGet(fileUrl(location, file.path), {
    signal,
    headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
  });
  const append = offset > 0;
  if (append && response.statusCode !== 206) {
    // The server ignored the range: this file starts over.
    response.resume();
    throw new RestartFromZero();
  }
  if (append) {
    const range = /^bytes (\d+)-/.exec(String(response.headers['content-range'] ?? ''));
    if (!range || Number(range[1]) !== offset) {
      response.resume();
      throw hubError(`The hub resumed ${file.path} at the wrong place; the download starts that file over next time.`);
    }
  }
  const out = createWriteStream(part, { flags: append ? 'a' : 'w' });
  let received = offset;
  let onAbort = () => {};
  try {
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        reject(error);
        response.destroy();
      };
      onAbort = () => fail(downloadCancelled());
      response.on('data', (chunk: Buffer) => {
        if (received + chunk.length > file.size)
          return fail(checksumError(`${file.path} is larger than the ${file.size} bytes the hub listed; it was removed.`));
        received += chunk.length;
        for (const h of hashes) h.update(chunk);
        onBytes(chunk.length);
        if (!out.write(chunk)) {
          response.pause();
          out.once('drain', () => response.resume());
        }
      });
      response.on('aborted', () => fail(hubError(`The connection dropped while receiving ${file.path}.`)));
      response.on('error', (error: NodeJS.ErrnoException) =>
        fail(
          signal?.aborted || error.name === 'AbortError'
            ? downloadCancelled()
            : hubError(`The connection dropped while receiving ${file.path}: ${error.message}.`),
        ),
      );
      response.on('end', () => {
        if (received < file.size) fail(hubError(`The connection dropped while receiving ${file.path} (${received} of ${file.size} bytes).`));
        else if (!settled) {
          settled = true;
          resolve();
        }
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await new Promise<void>((resolve) => out.end(resolve));
  }
}

class RestartFromZero extends Error {}

// Receives and verifies one file into staging/<path>; the part file stays on a dropped
// connection or a cancel, and goes on a checksum or size mismatch.
async function fetchFile(options: DownloadOptions, file: HubFile, staging: string, onBytes: (bytes: number) => void): Promise<void> {
  const target = path.join(staging, ...file.path.split('/'));
  if (existsSync(target) && statSync(target).size === file.size) {
    onBytes(file.size);
    return; // verified in an earlier run
  }
  mkdirSync(path.dirname(target), { recursive: true });
  const part = `${target}.part`;
  const attempts = (options.retries ?? 3) + 1;
  for (let attempt = 1; ; attempt++) {
    const sha256 = file.sha256 ? createHash('sha256') : undefined;
    const sha1 = !file.sha256 && file.gitBlobSha1 ? gitBlobHash(file.size) : undefined;
    const hashes = [sha256, sha1].filter((h): h is Hash => h !== undefined);
    let counted = 0;
    const count = (bytes: number) => {
      counted += bytes;
      onBytes(bytes);
    };
    try {
      if (existsSync(part) && statSync(part).size > file.size) rmSync(part, { force: true }); // not this file
      if (existsSync(part)) {
        const existing = statSync(part).size;
        if (existing > 0) {
          await hashExisting(part, hashes, options.signal);
          count(existing);
        }
      }
      await receive(options.location, file, part, hashes, options.signal, count);
    } catch (error) {
      onBytes(-counted);
      if (error instanceof RestartFromZero) {
        rmSync(part, { force: true });
        if (attempt < attempts) continue;
        throw hubError(`The hub does not resume ${file.path}; try again.`);
      }
      const code = tidalErrorCode(error);
      if (code === 'ERR_TIDAL_CHECKSUM') rmSync(part, { force: true });
      if (code === 'ERR_TIDAL_CANCELLED' || code === 'ERR_TIDAL_CHECKSUM' || attempt >= attempts) throw error;
      if (code !== 'ERR_TIDAL_HUB') throw error;
      if ((error as TidalError).status !== undefined) throw error; // HTTP errors are not retried
      continue;
    }
    const size = statSync(part).size;
    if (size !== file.size) {
      rmSync(part, { force: true });
      throw checksumError(`${file.path} has ${size} bytes, not the ${file.size} the hub listed; it was removed. Try the download again.`);
    }
    if (sha256 && sha256.digest('hex') !== file.sha256) {
      rmSync(part, { force: true });
      throw checksumError(
        `${file.path} does not match the sha256 the hub lists (a corrupt transfer or a changed file); it was removed. Try the download again.`,
      );
    }
    if (sha1 && sha1.digest('hex') !== file.gitBlobSha1) {
      rmSync(part, { force: true });
      throw checksumError(`${file.path} does not match the checksum the hub lists; it was removed. Try the download again.`);
    }
    renameSync(part, target);
    return;
  }
}

// Downloads the selected files of a repository into options.destination; resolves with the
// destination once it exists complete. An existing destination is left alone and returned.
export async function downloadModel(options: DownloadOptions): Promise<string> {
  const { destination } = options;
  if (existsSync(destination)) return destination;
  const listed = await listRepoFiles(options.location, options.signal);
  const files = options.select ? options.select(listed) : listed.filter(options.include ?? (() => true));
  if (files.length === 0) throw hubError(`${options.location.repo} lists none of the files a model needs on ${options.location.hubUrl}.`);
  const staging = stagingFolder(destination);
  mkdirSync(staging, { recursive: true });

  const totalBytes = files.reduce((sum, f) => sum + f.size, 0);
  const meter = new SpeedMeter(options.now ?? Date.now);
  let receivedBytes = 0;
  let current = files[0].path;
  const report = () => {
    if (!options.onProgress) return;
    const bytesPerSecond = meter.add(receivedBytes);
    const etaSeconds = bytesPerSecond > 0 ? (totalBytes - receivedBytes) / bytesPerSecond : undefined;
    options.onProgress({ file: current, receivedBytes, totalBytes, bytesPerSecond, etaSeconds });
  };
  for (const file of files) {
    if (options.signal?.aborted) throw downloadCancelled();
    current = file.path;
    await fetchFile(options, file, staging, (bytes) => {
      receivedBytes += bytes;
      report();
    });
  }
  renameSync(staging, destination);
  return destination;
}

// Removes what an unfinished download left (its staging folder).
export function discardPartialDownload(destination: string): void {
  rmSync(stagingFolder(destination), { recursive: true, force: true });
}
