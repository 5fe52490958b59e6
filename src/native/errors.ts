// One error type for the engine and everything built on it. The native addon rejects with Error
// objects whose `code` is one of the engine's codes (EngineErrorCode: ERR_TIDAL_MODEL, _REQUEST,
// _OUT_OF_MEMORY, _CANCELLED, _ENGINE); the TypeScript layers throw TidalError with the same
// codes, plus the few that only exist above the engine. Callers decide by `code`, never by the
// message, which is written for the user and says what they can do next.
/** The codes the native engine itself rejects with. */
export type EngineErrorCode = 'ERR_TIDAL_MODEL' | 'ERR_TIDAL_REQUEST' | 'ERR_TIDAL_OUT_OF_MEMORY' | 'ERR_TIDAL_CANCELLED' | 'ERR_TIDAL_ENGINE';

export type TidalErrorCode =
  | EngineErrorCode
  /** The native addon is missing or did not load (see AddonLoadError's `kind`). */
  | 'ERR_TIDAL_NO_ENGINE'
  /** The engine host is not running now (starting, restarting, or it stopped mid-request). */
  | 'ERR_TIDAL_NOT_READY'
  /** Cannot succeed until the user changes something: no model, a model that cannot chat. */
  | 'ERR_TIDAL_CONFIGURATION'
  /** The model hub could not be reached or answered with an error (`status`: its HTTP status). */
  | 'ERR_TIDAL_HUB'
  /** A downloaded file is not what the hub's listing says (size or hash); it was removed. */
  | 'ERR_TIDAL_CHECKSUM'
  /** A command-line tool (tidal serve, tidal eval) was called with arguments it cannot use. */
  | 'ERR_TIDAL_USAGE';

export class TidalError extends Error {
  /** The HTTP status of a service's answer behind the error (ERR_TIDAL_HUB), when there was one. */
  readonly status?: number;

  constructor(
    readonly code: TidalErrorCode,
    message: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, options);
    this.name = 'TidalError';
    if (options?.status !== undefined) this.status = options.status;
  }
}

/**
 * The ERR_TIDAL_* code of `error`: its own `code`, or that of a JSON-RPC error's `data` (the
 * engine host sends the engine's code there); undefined for anything else.
 */
export function tidalErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const isTidal = (code: unknown): code is string => typeof code === 'string' && code.startsWith('ERR_TIDAL_');
  const code = (error as { code?: unknown }).code;
  if (isTidal(code)) return code;
  const data = (error as { data?: unknown }).data;
  const dataCode = typeof data === 'object' && data !== null ? (data as { code?: unknown }).code : undefined;
  return isTidal(dataCode) ? dataCode : undefined;
}
