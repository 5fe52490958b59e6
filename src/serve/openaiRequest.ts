// OpenAI-style request bodies (/v1/completions, /v1/chat/completions) checked and turned
// into the engine's GenerateParams. Anything we cannot honour is refused with a message that
// names the field, never silently ignored.
import { buildFimPrompt, FimFormat, promptText } from '../engine/fimPrompt';
import type { AttentionOptions, ChatMessageParam, ContextFileParam, GenerateParams, SamplingOptions } from '../engine/protocol';

export class BadRequestError extends Error {
  constructor(message: string, readonly param?: string) {
    super(message);
  }
}

export interface ParsedRequest {
  params: GenerateParams;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

type Body = Record<string, unknown>;

const MAX_STOP_SEQUENCES = 4;
const MAX_STOP_LENGTH = 256;

function optionalNumber(body: Body, name: string, min: number, max: number, integer = false): number | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new BadRequestError(`\`${name}\` must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}].`, name);
  }
  return value;
}

function optionalBoolean(body: Body, name: string): boolean | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new BadRequestError(`\`${name}\` must be true or false.`, name);
  return value;
}

function stopSequences(body: Body): string[] {
  const value = body.stop;
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length > MAX_STOP_SEQUENCES || list.some((item) => typeof item !== 'string' || item.length === 0 || item.length > MAX_STOP_LENGTH)) {
    throw new BadRequestError(`\`stop\` must be a non-empty string or a list of at most ${MAX_STOP_SEQUENCES} such strings (${MAX_STOP_LENGTH} characters at most).`, 'stop');
  }
  return list as string[];
}

// Fields shared by both endpoints: sampling, length, streaming, Tidal's attention extras.
function commonFields(body: Body): Omit<ParsedRequest, 'params'> & { maxTokens?: number; sampling: SamplingOptions; attention?: AttentionOptions; client?: string } {
  if (body.n !== undefined && body.n !== null && body.n !== 1) throw new BadRequestError('Only `n` = 1 is supported.', 'n');
  const maxTokens = optionalNumber(body, 'max_completion_tokens', 1, 1 << 20, true) ?? optionalNumber(body, 'max_tokens', 1, 1 << 20, true);
  const sampling: SamplingOptions = {};
  const temperature = optionalNumber(body, 'temperature', 0, 2);
  if (temperature !== undefined) sampling.temperature = temperature;
  const topP = optionalNumber(body, 'top_p', 0, 1);
  if (topP !== undefined) sampling.topP = topP;
  const topK = optionalNumber(body, 'top_k', -1, 1 << 20, true);
  if (topK !== undefined && topK > 0) sampling.topK = topK;
  const seed = optionalNumber(body, 'seed', 0, Number.MAX_SAFE_INTEGER, true);
  if (seed !== undefined) sampling.seed = seed;
  if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== false) {
    throw new BadRequestError('`logprobs` is not supported by this server.', 'logprobs');
  }
  const streamOptions = body.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && (typeof streamOptions !== 'object' || Array.isArray(streamOptions))) {
    throw new BadRequestError('`stream_options` must be an object.', 'stream_options');
  }
  const includeUsage = streamOptions ? optionalBoolean(streamOptions as Body, 'include_usage') ?? false : false;
  let attention: AttentionOptions | undefined;
  if (body.attention !== undefined && body.attention !== null) {
    if (typeof body.attention !== 'object' || Array.isArray(body.attention)) {
      throw new BadRequestError('`attention` (Tidal extra) must be an object such as {"mode": "tidal", "tokenBudget": 2048}.', 'attention');
    }
    attention = body.attention as AttentionOptions; // the engine checks each field and says what is wrong
  }
  return { maxTokens, sampling, attention, client: clientOf(body), stop: stopSequences(body), stream: optionalBoolean(body, 'stream') ?? false, includeUsage };
}

// OpenAI's `user` (a stable id of the end user): completions supersede each other per user,
// so several editors can share one server without cancelling each other's requests.
function clientOf(body: Body): string | undefined {
  const user = body.user;
  if (user === undefined || user === null) return undefined;
  if (typeof user !== 'string' || user.length > 256) throw new BadRequestError('`user` must be a string of at most 256 characters.', 'user');
  return user;
}

function textOf(value: unknown, name: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.length === 1 && typeof value[0] === 'string') return value[0];
  if (Array.isArray(value) && value.every((item) => typeof item === 'object' && item !== null && (item as Body).type === 'text')) {
    return value.map((item) => String((item as Body).text ?? '')).join('');
  }
  throw new BadRequestError(`\`${name}\` must be a string (token-id prompts and batches of prompts are not supported).`, name);
}

// A prompt written as our repository stream — [<repo_name>name\n](<file_sep>path\ncontent\n)*
// <file_sep>current-path\nprefix — is split back into its files, so the FIM prompt is built
// exactly as the local engine builds it (repository first, then the FIM sentinels) and the
// repository files keep their cached tokens. Anything else stays one prefix.
export function splitRepoPrompt(format: FimFormat | undefined, prompt: string): Pick<GenerateParams, 'prefix' | 'repoName' | 'repoContext' | 'filePath'> {
  const whole = { prefix: prompt };
  const separator = format?.fileSeparator;
  if (format === undefined || separator === undefined) return whole;
  let rest = prompt;
  let repoName: string | undefined;
  if (format.repoName !== undefined && rest.startsWith(format.repoName)) {
    const end = rest.indexOf('\n');
    if (end < 0) return whole;
    repoName = rest.slice(format.repoName.length, end);
    rest = rest.slice(end + 1);
  }
  if (!rest.startsWith(separator)) return whole;
  const segments = rest.slice(separator.length).split(separator);
  const current = segments.pop() as string;
  const currentEnd = current.indexOf('\n');
  if (currentEnd < 0) return whole;
  const repoContext: ContextFileParam[] = [];
  for (const segment of segments) {
    const end = segment.indexOf('\n');
    if (end < 0 || !segment.endsWith('\n')) return whole;
    repoContext.push({ path: segment.slice(0, end), content: segment.slice(end + 1, -1) });
  }
  const split = { repoName, repoContext, filePath: current.slice(0, currentEnd), prefix: current.slice(currentEnd + 1) };
  // Accept the split only if the prompt builder gives back the very text that came in.
  const withContext = promptText(buildFimPrompt(format, { ...split, prefix: '', suffix: '' }));
  const sentinels = promptText(buildFimPrompt(format, { prefix: '', suffix: '' }));
  const rebuilt = withContext.endsWith(sentinels) ? withContext.slice(0, withContext.length - sentinels.length) + split.prefix : undefined;
  return rebuilt === prompt ? split : whole;
}

export function parseCompletionRequest(body: Body, requestId: string, fimFormat: FimFormat | undefined): ParsedRequest {
  if (body.prompt === undefined) throw new BadRequestError('`prompt` is required.', 'prompt');
  const prompt = textOf(body.prompt, 'prompt');
  if (body.echo === true) throw new BadRequestError('`echo` is not supported by this server.', 'echo');
  if (body.best_of !== undefined && body.best_of !== null && body.best_of !== 1) throw new BadRequestError('Only `best_of` = 1 is supported.', 'best_of');
  const common = commonFields(body);
  let params: GenerateParams;
  if (body.suffix !== undefined && body.suffix !== null) {
    // Fill in the middle through the model's own FIM format.
    const suffix = textOf(body.suffix, 'suffix');
    params = { requestId, kind: 'completion', ...splitRepoPrompt(fimFormat, prompt), suffix };
  } else {
    if (prompt.length === 0) throw new BadRequestError('`prompt` must not be empty.', 'prompt');
    params = { requestId, kind: 'raw', prompt };
  }
  params.maxTokens = common.maxTokens;
  params.sampling = common.sampling;
  params.attention = common.attention;
  if (common.client !== undefined) params.client = common.client;
  return { params, stop: common.stop, stream: common.stream, includeUsage: common.includeUsage };
}

const ROLES = new Set(['system', 'user', 'assistant', 'developer']);

export function parseChatRequest(body: Body, requestId: string): ParsedRequest {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new BadRequestError('`messages` must be a non-empty list of {"role", "content"} objects.', 'messages');
  }
  const parsed: ChatMessageParam[] = messages.map((message, index) => {
    if (typeof message !== 'object' || message === null) throw new BadRequestError(`\`messages[${index}]\` must be an object.`, 'messages');
    const { role, content } = message as Body;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new BadRequestError(`\`messages[${index}].role\` must be "system", "user" or "assistant".`, 'messages');
    }
    return { role: role === 'developer' ? 'system' : (role as ChatMessageParam['role']), content: content === null ? '' : textOf(content, `messages[${index}].content`) };
  });
  const common = commonFields(body);
  const params: GenerateParams = { requestId, kind: 'chat', messages: parsed, maxTokens: common.maxTokens, sampling: common.sampling, attention: common.attention };
  if (common.client !== undefined) params.client = common.client;
  return { params, stop: common.stop, stream: common.stream, includeUsage: common.includeUsage };
}
