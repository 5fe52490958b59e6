// Test helper: a Hugging Face-compatible hub on loopback. Serves the tree listing API and
// /resolve/ downloads (redirected to a /cdn/ path, with Range support) from files on disk,
// and can misbehave on purpose: drop the connection mid-file, ignore Range, advertise a
// wrong checksum, or serve more bytes than it lists.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FixtureFile {
  content: Buffer;
  lfs: boolean; // listed with lfs {oid: sha256, size}; otherwise with the git blob oid
}

export interface Faults {
  dropAfterBytes?: Map<string, number>; // path -> bytes sent before the socket is destroyed (once)
  stallAfterBytes?: Map<string, number>; // path -> bytes sent before the answer stalls (once)
  ignoreRange?: boolean;
  wrongSha256?: Set<string>;
  wrongBlobOid?: Set<string>;
  extraBytes?: Set<string>; // serves the file with 16 bytes too many
  missingFile?: Set<string>; // listed, but /resolve/ answers 404
  pageSize?: number; // tree listing entries per page (Link: rel="next")
}

export interface RecordedRequest {
  url: string;
  range?: string;
}

export class FixtureHub {
  readonly requests: RecordedRequest[] = [];
  faults: Faults = {};
  private server: http.Server;
  url = '';

  constructor(readonly repos: Map<string, Map<string, FixtureFile>>) {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  static filesFrom(sources: Record<string, string>, lfs: (name: string) => boolean): Map<string, FixtureFile> {
    return new Map(Object.entries(sources).map(([name, source]) => [name, { content: readFileSync(source), lfs: lfs(name) }]));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private listing(files: Map<string, FixtureFile>): unknown[] {
    return [...files].map(([name, file]) => {
      const sha256 = createHash('sha256').update(file.content).digest('hex');
      const blob = createHash('sha1').update(`blob ${file.content.length}\0`).update(file.content).digest('hex');
      const entry: Record<string, unknown> = { type: 'file', path: name, size: file.lfs ? 134 : file.content.length };
      entry.oid = this.faults.wrongBlobOid?.has(name) ? '0'.repeat(40) : blob;
      if (file.lfs) entry.lfs = { oid: this.faults.wrongSha256?.has(name) ? 'f'.repeat(64) : sha256, size: file.content.length, pointerSize: 134 };
      return entry;
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://hub');
    this.requests.push({ url: url.pathname, range: req.headers.range });
    const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(url.pathname);
    if (tree) {
      const files = this.repos.get(decodeURIComponent(tree[1]));
      if (!files) return this.notFound(res);
      const entries = [{ type: 'directory', path: 'extra', oid: '1'.repeat(40), size: 0 }, ...this.listing(files)];
      const size = this.faults.pageSize ?? entries.length;
      const start = Number(url.searchParams.get('cursor') ?? 0);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (start + size < entries.length) {
        const next = new URL(url.href);
        next.searchParams.set('cursor', String(start + size));
        headers.link = `<${next.pathname}${next.search}>; rel="next"`;
      }
      res.writeHead(200, headers);
      res.end(JSON.stringify(entries.slice(start, start + size)));
      return;
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (resolve) {
      const files = this.repos.get(resolve[1]);
      const name = decodeURIComponent(resolve[3]);
      if (!files?.has(name) || this.faults.missingFile?.has(name)) return this.notFound(res);
      res.writeHead(302, { location: `/cdn/${resolve[1]}/${resolve[3]}` });
      res.end();
      return;
    }
    const cdn = /^\/cdn\/([^/]+\/[^/]+)\/(.+)$/.exec(url.pathname);
    const file = cdn ? this.repos.get(cdn[1])?.get(decodeURIComponent(cdn[2])) : undefined;
    if (!cdn || !file) return this.notFound(res);
    const name = decodeURIComponent(cdn[2]);
    let body = file.content;
    if (this.faults.extraBytes?.has(name)) body = Buffer.concat([body, Buffer.alloc(16, 7)]);
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    let start = 0;
    if (range && !this.faults.ignoreRange) {
      start = Number(range[1]);
      res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
    } else {
      res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' });
    }
    const drop = this.faults.dropAfterBytes?.get(name);
    if (drop !== undefined && drop > start) {
      this.faults.dropAfterBytes!.delete(name);
      res.write(body.subarray(start, drop), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    const stall = this.faults.stallAfterBytes?.get(name);
    if (stall !== undefined && stall > start) {
      this.faults.stallAfterBytes!.delete(name);
      res.write(body.subarray(start, stall));
      return; // never ends; the client gives up or the server stops
    }
    res.end(body.subarray(start));
  }

  private notFound(res: http.ServerResponse): void {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"Repository not found"}');
  }
}
