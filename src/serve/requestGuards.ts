// Who may talk to a local `tidal serve`: a web page the user happens to open must not be able
// to use it. Browsers name the page in `Origin` and the server in `Host`; a page that rebinds
// its own DNS name to 127.0.0.1 still sends its own name as Host. So a request is refused when
// its Host is not a name of this server, or it carries an Origin that was not allowed, or it
// posts something other than JSON (a page may post text/plain to any server without asking).
import type { IncomingMessage } from 'node:http';

export interface GuardOptions {
  host?: string; // the address the server listens on
  allowedHosts?: string[]; // more names this server answers to (--allow-host)
  allowedOrigins?: string[]; // web origins allowed to call it (--allow-origin)
}

export interface Refusal {
  status: 403 | 415;
  code: string;
  message: string;
}

const LOCAL_NAMES = ['localhost', '127.0.0.1', '[::1]'];
const WILDCARDS = new Set(['0.0.0.0', '::', '[::]']);

// The host name of a Host header, without its port, lower case; IPv6 in brackets.
export function hostNameOf(header: string): string {
  const value = header.trim().toLowerCase();
  if (value.startsWith('[')) return value.slice(0, value.indexOf(']') + 1);
  const colon = value.indexOf(':');
  return colon >= 0 && value.indexOf(':', colon + 1) < 0 ? value.slice(0, colon) : value;
}

// A configured name or address as hostNameOf gives it: a bare IPv6 address gets its brackets.
function hostNameOfSetting(name: string): string {
  return !name.startsWith('[') && name.split(':').length > 2 ? `[${name.toLowerCase()}]` : hostNameOf(name);
}

function bracketed(address: string): string {
  const plain = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  return plain.includes(':') ? `[${plain}]` : plain;
}

// An origin as browsers write it (scheme://host[:port], default port left out), or undefined.
export function normalizeOrigin(value: string): string | undefined {
  try {
    const origin = new URL(value).origin;
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}

export class RequestGuards {
  private readonly hosts: Set<string>;
  private readonly origins: Set<string>;

  constructor(options: GuardOptions) {
    this.hosts = new Set([...LOCAL_NAMES, ...(options.allowedHosts ?? [])].map(hostNameOfSetting));
    if (options.host !== undefined && !WILDCARDS.has(options.host)) this.hosts.add(hostNameOfSetting(options.host));
    this.origins = new Set((options.allowedOrigins ?? []).map((origin) => normalizeOrigin(origin) ?? origin));
  }

  /** The Origin of a request when it is allowed (its answers carry CORS headers), else undefined. */
  allowedOrigin(req: IncomingMessage): string | undefined {
    const origin = req.headers.origin;
    return origin !== undefined && this.origins.has(normalizeOrigin(origin) ?? origin) ? origin : undefined;
  }

  /** Why a request is refused before anything else is read, or undefined. */
  refusal(req: IncomingMessage): Refusal | undefined {
    const host = req.headers.host;
    // The address the client connected to is a name of this server too (a listener on 0.0.0.0
    // reached at a LAN address); a rebinding page cannot make the browser send an address.
    const local = req.socket.localAddress !== undefined ? bracketed(req.socket.localAddress.toLowerCase()) : undefined;
    if (host !== undefined && !this.hosts.has(hostNameOf(host)) && hostNameOf(host) !== local) {
      return {
        status: 403,
        code: 'host_not_allowed',
        message:
          `The Host header names \`${hostNameOf(host)}\`, which is not a name of this server, so the request was refused (a web page may rebind its own name to this machine). ` +
          `Call the server as localhost or 127.0.0.1, or start it with --allow-host ${hostNameOf(host)} if that name is yours.`,
      };
    }
    const origin = req.headers.origin;
    if (origin !== undefined && this.allowedOrigin(req) === undefined) {
      return {
        status: 403,
        code: 'origin_not_allowed',
        message: `Requests from the web page at ${origin} are refused: this server answers programs, and web pages only when allowed. Start the server with --allow-origin ${origin} to let that page call it.`,
      };
    }
    return undefined;
  }

  /** A POST whose body is not declared as JSON. */
  contentTypeRefusal(req: IncomingMessage): Refusal | undefined {
    const type = req.headers['content-type'];
    if (type !== undefined && type.split(';')[0].trim().toLowerCase() === 'application/json') return undefined;
    return {
      status: 415,
      code: 'unsupported_media_type',
      message: `Send the body as JSON with the header \`Content-Type: application/json\`${type === undefined ? ' (there was none)' : ` (not \`${type}\`)`}.`,
    };
  }
}
