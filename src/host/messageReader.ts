// Reads JSON-RPC messages framed as `Content-Length: N\r\n\r\n<N bytes of JSON>`, strictly.
// vscode-jsonrpc's own reader reports a broken header and then goes on reading from wherever it
// stopped, and waits without end for the body of a message that claims terabytes. The engine
// host cannot find the next message after either, so this reader stops at the first framing
// error and reports it (the host exits, and the extension restarts it).
import type { Readable } from 'node:stream';
import { AbstractMessageReader, type DataCallback, type Disposable, type Message } from 'vscode-jsonrpc';

/** The longest header block accepted; real ones are under 100 bytes. */
const MAX_HEADER_BYTES = 8 * 1024;
/** The largest message accepted: far above any request the extension sends. */
export const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

const HEADER_END = Buffer.from('\r\n\r\n', 'ascii');

export class StrictMessageReader extends AbstractMessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private bodyLength: number | undefined;
  private failed = false;

  constructor(private readonly stream: Readable) {
    super();
  }

  listen(callback: DataCallback): Disposable {
    const onData = (chunk: Buffer) => this.onData(chunk, callback);
    const onError = (error: Error) => this.fireError(error);
    const onEnd = () => this.fireClose();
    this.stream.on('data', onData);
    this.stream.on('error', onError);
    this.stream.on('end', onEnd);
    this.stream.on('close', onEnd);
    return {
      dispose: () => {
        this.stream.off('data', onData);
        this.stream.off('error', onError);
        this.stream.off('end', onEnd);
        this.stream.off('close', onEnd);
      },
    };
  }

  private onData(chunk: Buffer, callback: DataCallback): void {
    if (this.failed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    try {
      for (;;) {
        if (this.bodyLength === undefined) {
          const headers = this.takeHeaders();
          if (headers === undefined) return;
          this.bodyLength = contentLengthOf(headers);
        }
        if (this.buffered < this.bodyLength) return;
        const body = this.take(this.bodyLength);
        this.bodyLength = undefined;
        let message: unknown;
        try {
          message = JSON.parse(body.toString('utf8'));
        } catch (error) {
          throw new Error(`a message body is not JSON (${(error as Error).message})`);
        }
        callback(message as Message);
      }
    } catch (error) {
      this.failed = true;
      this.chunks = [];
      this.buffered = 0;
      this.fireError(error);
    }
  }

  // The header block, once all of it is here (without the blank line that ends it).
  private takeHeaders(): string | undefined {
    const pending = this.take(this.buffered);
    const end = pending.indexOf(HEADER_END);
    if (end < 0) {
      if (pending.length > MAX_HEADER_BYTES) throw new Error(`no end of the message header within ${MAX_HEADER_BYTES} bytes`);
      this.putBack(pending);
      return undefined;
    }
    this.putBack(pending.subarray(end + HEADER_END.length));
    return pending.subarray(0, end).toString('ascii');
  }

  private take(bytes: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    this.putBack(all.subarray(bytes));
    return all.subarray(0, bytes);
  }

  private putBack(rest: Buffer): void {
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
  }
}

/** The body length a header block declares; anything but one plain, bounded Content-Length throws. */
function contentLengthOf(headers: string): number {
  let length: number | undefined;
  for (const line of headers.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`a message header line is not "Name: value": ${JSON.stringify(line.slice(0, 80))}`);
    if (line.slice(0, colon).trim().toLowerCase() !== 'content-length') continue;
    const value = line.slice(colon + 1).trim();
    if (!/^\d+$/.test(value)) throw new Error(`Content-Length is not a byte count: ${JSON.stringify(value.slice(0, 80))}`);
    length = Number(value);
  }
  if (length === undefined) throw new Error('a message header has no Content-Length');
  if (length > MAX_MESSAGE_BYTES) throw new Error(`Content-Length ${length.toPrecision(3)} is over the ${MAX_MESSAGE_BYTES}-byte limit of one message`);
  return length;
}
