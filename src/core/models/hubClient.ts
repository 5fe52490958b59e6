// A Hugging Face-compatible hub over plain Node http/https: the file list of a model
// repository (GET <hub>/api/models/<repo>/tree/<revision>?recursive=true, entries of
// {type, path, size, oid, lfs?: {oid (sha256), size}}) and file downloads (GET
// <hub>/<repo>/resolve/<revision>/<path>, usually redirected to a content server).
import * as http from 'node:http';
import * as https from 'node:https';

import { TidalError } from '../../native/errors';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

/** A hub failure: ERR_TIDAL_HUB, with the HTTP status when the hub answered. */
export function hubError(message: string, status?: number): TidalError {
  return new TidalError('ERR_TIDAL_HUB', message, { status });
}

export function downloadCancelled(): TidalError {
  return new TidalError('ERR_TIDAL_CANCELLED', 'The download was cancelled; the files received so far are kept and the next download resumes from them.');
}

export interface HubFile {
  path: string;
  size: number;
  sha256?: string; // LFS files: the sha256 of the content
  gitBlobSha1?: string; // other files: the git blob id (sha1 of "blob <size>\0" + content)
}

export interface HubLocation {
  hubUrl: string;
  repo: string; // "owner/name"
  revision?: string; // default "main"
}

const MAX_REDIRECTS = 5;
const REPO_PATTERN = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

export function hubBase(hubUrl: string): URL {
  let url: URL;
  try {
    url = new URL(hubUrl);
  } catch {
    throw hubError(`The hub URL '${hubUrl}' is not a URL. Set tidal.models.hubUrl to an http(s) address such as ${DEFAULT_HUB_URL}.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw hubError(`The hub URL '${hubUrl}' is not http or https. Set tidal.models.hubUrl to an address such as ${DEFAULT_HUB_URL}.`);
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

function checkRepo(repo: string): void {
  if (!REPO_PATTERN.test(repo) || repo.includes('..')) throw hubError(`'${repo}' is not a model repository id (owner/name).`);
}

const encodePath = (p: string) => p.split('/').map(encodeURIComponent).join('/');

export function treeUrl(location: HubLocation): URL {
  checkRepo(location.repo);
  const revision = encodeURIComponent(location.revision ?? 'main');
  return new URL(`api/models/${location.repo}/tree/${revision}?recursive=true`, hubBase(location.hubUrl));
}

export function fileUrl(location: HubLocation, filePath: string): URL {
  checkRepo(location.repo);
  const revision = encodeURIComponent(location.revision ?? 'main');
  return new URL(`${location.repo}/resolve/${revision}/${encodePath(filePath)}`, hubBase(location.hubUrl));
}

function describeNetworkError(url: URL, error: NodeJS.ErrnoException): string {
  const hub = `${url.protocol}//${url.host}`;
  switch (error.code) {
    case 'ECONNREFUSED':
      return `Could not connect to ${hub} (connection refused). Check tidal.models.hubUrl, or whether the hub is up.`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `Could not resolve ${url.hostname}. Check your network connection and tidal.models.hubUrl.`;
    case 'ETIMEDOUT':
      return `${hub} did not answer in time. Check your network connection and try again.`;
    default:
      return `The connection to ${hub} failed: ${error.message}. Try again; a download resumes where it stopped.`;
  }
}

export interface HubResponse {
  response: http.IncomingMessage;
  url: URL; // after redirects
}

// GET with redirects followed; resolves once the final response's headers arrive. Errors:
// ERR_TIDAL_HUB (network, status >= 400), ERR_TIDAL_CANCELLED.
export function hubGet(url: URL, options: { signal?: AbortSignal; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HubResponse> {
  const { signal } = options;
  const get = (current: URL, redirects: number): Promise<HubResponse> =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(downloadCancelled());
      const client = current.protocol === 'https:' ? https : http;
      const request = client.get(current, { headers: { 'user-agent': 'tidal-code', ...options.headers }, signal });
      request.setTimeout(options.timeoutMs ?? 30_000, () => request.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (signal?.aborted || error.name === 'AbortError') reject(downloadCancelled());
        else reject(hubError(describeNetworkError(current, error)));
      });
      request.on('response', (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 300 && status < 400 && response.headers.location) {
          response.resume();
          if (redirects >= MAX_REDIRECTS) return reject(hubError(`${url.href} redirected more than ${MAX_REDIRECTS} times.`));
          const next = new URL(response.headers.location, current);
          if (next.protocol !== 'http:' && next.protocol !== 'https:') return reject(hubError(`${url.href} redirected to a non-http address.`));
          get(next, redirects + 1).then(resolve, reject);
          return;
        }
        if (status >= 400) {
          response.resume();
          const what =
            status === 401 || status === 403
              ? 'needs a login or accepted license (gated or private repository): download it in a browser and select its folder instead'
              : status === 404
                ? 'was not found: check the repository name and tidal.models.hubUrl'
                : `failed with HTTP ${status}: try again later`;
          return reject(hubError(`${url.href} ${what}.`, status));
        }
        resolve({ response, url: current });
      });
    });
  return get(url, 0);
}

async function readBody(response: http.IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response) {
    size += (chunk as Buffer).length;
    if (size > limit) throw hubError(`The hub's answer is larger than ${limit} bytes.`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// A hub file path we are willing to write below a models folder.
function isSafeRelativePath(p: string): boolean {
  return p.length > 0 && !p.startsWith('/') && !p.includes('\\') && p.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

// Parses a tree listing; entries that are not plain files with a safe path are skipped.
export function parseTreeListing(body: unknown): HubFile[] {
  if (!Array.isArray(body))
    throw hubError('The hub answered the file list with something other than a JSON array; is tidal.models.hubUrl a Hugging Face-compatible hub?');
  const files: HubFile[] = [];
  for (const entry of body as Record<string, unknown>[]) {
    if (!entry || entry.type !== 'file' || typeof entry.path !== 'string' || !isSafeRelativePath(entry.path)) continue;
    const lfs = entry.lfs as Record<string, unknown> | undefined;
    const size = typeof lfs?.size === 'number' ? lfs.size : entry.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) continue;
    const file: HubFile = { path: entry.path, size };
    const sha = lfs?.oid ?? lfs?.sha256;
    if (typeof sha === 'string' && /^[0-9a-f]{64}$/i.test(sha)) file.sha256 = sha.toLowerCase();
    else if (!lfs && typeof entry.oid === 'string' && /^[0-9a-f]{40}$/i.test(entry.oid)) file.gitBlobSha1 = entry.oid.toLowerCase();
    files.push(file);
  }
  return files;
}

// The next page of a paginated listing: Link: <url>; rel="next".
export function nextPageUrl(link: string | undefined, current: URL): URL | undefined {
  const match = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
  if (!match) return undefined;
  const next = new URL(match[1], current);
  return next.origin === current.origin ? next : undefined; // pages stay on the hub
}

const MAX_PAGES = 100;

export async function listRepoFiles(location: HubLocation, signal?: AbortSignal): Promise<HubFile[]> {
  const files: HubFile[] = [];
  let url: URL | undefined = treeUrl(location);
  for (let page = 0; url && page < MAX_PAGES; page++) {
    const { response, url: answered } = await hubGet(url, { signal, headers: { accept: 'application/json' } });
    const text = await readBody(response, 32 << 20);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw hubError(`The hub's file list for ${location.repo} is not JSON; is tidal.models.hubUrl a Hugging Face-compatible hub?`);
    }
    files.push(...parseTreeListing(body));
    const link = response.headers.link;
    url = nextPageUrl(Array.isArray(link) ? link.join(', ') : link, answered);
  }
  return files;
}
