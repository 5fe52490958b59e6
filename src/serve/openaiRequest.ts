// OpenAI-style request bodies (/v1/completions, /v1/chat/completions) checked and turned
// into the engine's GenerateParams. Anything we cannot honour is refused with a message that
// names the field, never silently ignored.
import { buildFimPrompt, FimFormat, promptText } from '../core/prompt/fimPrompt';
import type {
  AttentionOptions,
  ChatMessageParam,
  CompletionGenerateParams,
  ContextFileParam,
  GenerateParams,
  RepositoryFields,
  SamplingOptions,
} from '../core/protocol/protocol';

export class BadRequestError extends Error {
  constructor(
    message: string,
    readonly param?: string,
  ) {
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

export interface RequestLimits {
  maxTokens: number; // the largest max_tokens this server accepts (--max-tokens)
}

const MAX_STOP_SEQUENCES = 4;
const MAX_STOP_LENGTH = 256;

// Every field a body may carry. A field set to null counts as absent; any other field is
// refused by name, so a client never gets an answer computed without an option it asked for.
const COMMON_FIELDS = [
  'model',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'top_k',
  'seed',
  'stop',
  'stream',
  'stream_options',
  'user',
  'attention',
  'n',
  'logprobs',
  'top_logprobs',
  'frequency_penalty',
  'presence_penalty',
  'logit_bias',
  'response_format',
  'tools',
  'tool_choice',
  'functions',
  'function_call',
  'parallel_tool_calls',
  'metadata',
  'store',
  'service_tier',
];
const COMPLETION_FIELDS = new Set([...COMMON_FIELDS, 'prompt', 'suffix', 'echo', 'best_of']);
// `repository` (Tidal extra): {"name"?, "files": [{"path", "content"}]} put before the
// conversation as the engine puts a workspace's files, so a chat shares its cached prefix with
// the completions over the same files.
const CHAT_FIELDS = new Set([...COMMON_FIELDS, 'messages', 'repository']);
const REPOSITORY_FIELDS = new Set(['name', 'files']);
const MAX_REPOSITORY_FILES = 100_000;
const ATTENTION_FIELDS = new Set([
  'mode',
  'tokenBudget',
  'denseLayers',
  'selectionLayers',
  'selectionPolicy',
  'correctionInterval',
  'sparseFirstStep',
  'sparsePrefill',
]);
// What an OpenAI client library puts back into the history with an assistant message.
const EMPTY_MESSAGE_FIELDS = new Set(['refusal', 'tool_calls', 'function_call', 'audio', 'annotations']);

function isAbsent(value: unknown): boolean {
  return value === undefined || value === null;
}

function isEmpty(value: unknown): boolean {
  if (isAbsent(value)) return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && Object.keys(value as object).length === 0;
}

function refuseUnknownFields(body: Body, known: ReadonlySet<string>, where: string): void {
  for (const [name, value] of Object.entries(body)) {
    if (!known.has(name) && !isAbsent(value)) {
      throw new BadRequestError(
        `\`${where}${name}\` is not supported by this server; remove it. Fields it serves: ${[...known].join(', ')}.`,
        `${where}${name}`,
      );
    }
  }
}

function optionalNumber(body: Body, name: string, min: number, max: number, integer = false, note = ''): number | undefined {
  const value = body[name];
  if (isAbsent(value)) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new BadRequestError(`\`${name}\` must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]${note}, not ${JSON.stringify(value)}.`, name);
  }
  return value;
}

function optionalBoolean(body: Body, name: string, where = ''): boolean | undefined {
  const value = body[name];
  if (isAbsent(value)) return undefined;
  if (typeof value !== 'boolean') throw new BadRequestError(`\`${where}${name}\` must be true or false.`, `${where}${name}`);
  return value as boolean;
}

function stopSequences(body: Body): string[] {
  const value = body.stop;
  if (isAbsent(value)) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (
    !Array.isArray(list) ||
    list.length > MAX_STOP_SEQUENCES ||
    list.some((item) => typeof item !== 'string' || item.length === 0 || item.length > MAX_STOP_LENGTH)
  ) {
    throw new BadRequestError(
      `\`stop\` must be a non-empty string or a list of at most ${MAX_STOP_SEQUENCES} such strings (${MAX_STOP_LENGTH} characters at most).`,
      'stop',
    );
  }
  return list as string[];
}

// Options this server cannot honour, refused unless set to their no-op value.
function refuseUnsupportedOptions(body: Body): void {
  const refuse = (name: string, what: string) => {
    throw new BadRequestError(`\`${name}\` ${what} is not supported by this server; remove it.`, name);
  };
  if (!isAbsent(body.n) && body.n !== 1) refuse('n', '(more than one choice)');
  if (!isAbsent(body.logprobs) && body.logprobs !== false) refuse('logprobs', '(token log-probabilities)');
  if (!isAbsent(body.top_logprobs) && body.top_logprobs !== 0) refuse('top_logprobs', '(token log-probabilities)');
  for (const name of ['frequency_penalty', 'presence_penalty']) {
    const value = body[name];
    if (!isAbsent(value) && typeof value !== 'number') throw new BadRequestError(`\`${name}\` must be a number.`, name);
    if (!isAbsent(value) && value !== 0) refuse(name, 'other than 0');
  }
  if (!isEmpty(body.logit_bias)) refuse('logit_bias', '(token biases)');
  const format = body.response_format;
  if (!isAbsent(format) && (typeof format !== 'object' || (format as Body).type !== 'text')) refuse('response_format', 'other than {"type": "text"}');
  for (const name of ['tools', 'functions']) if (!isEmpty(body[name])) refuse(name, '(tool and function calls)');
  for (const name of ['tool_choice', 'function_call'])
    if (!isAbsent(body[name]) && body[name] !== 'none' && body[name] !== 'auto') refuse(name, '(tool and function calls)');
}

function samplingOf(body: Body): SamplingOptions {
  const sampling: SamplingOptions = {};
  const temperature = optionalNumber(body, 'temperature', 0, 2);
  if (temperature !== undefined) sampling.temperature = temperature;
  const topP = body.top_p;
  if (!isAbsent(topP)) {
    if (typeof topP !== 'number' || !(topP > 0 && topP <= 1))
      throw new BadRequestError(`\`top_p\` must be a number in (0, 1] (1 keeps every token), not ${JSON.stringify(topP)}.`, 'top_p');
    sampling.topP = topP;
  }
  const topK = optionalNumber(body, 'top_k', 0, 1 << 30, true, ' (0 keeps every token)');
  if (topK !== undefined && topK > 0) sampling.topK = topK;
  const seed = optionalNumber(body, 'seed', 0, Number.MAX_SAFE_INTEGER, true);
  if (seed !== undefined) sampling.seed = seed;
  return sampling;
}

function attentionOf(body: Body): AttentionOptions | undefined {
  const attention = body.attention;
  if (isAbsent(attention)) return undefined;
  if (typeof attention !== 'object' || Array.isArray(attention)) {
    throw new BadRequestError('`attention` (Tidal extra) must be an object such as {"mode": "tidal", "tokenBudget": 2048}.', 'attention');
  }
  refuseUnknownFields(attention as Body, ATTENTION_FIELDS, 'attention.');
  return attention as AttentionOptions; // the engine checks each field's value and says what is wrong
}

// Fields shared by both endpoints: sampling, length, streaming, Tidal's attention extras.
function commonFields(
  body: Body,
  requestId: string,
  limits: RequestLimits,
): Omit<ParsedRequest, 'params'> & { maxTokens?: number; sampling: SamplingOptions; attention?: AttentionOptions; client: string } {
  refuseUnsupportedOptions(body);
  const limit = ` (this server's --max-tokens)`;
  const maxTokens =
    optionalNumber(body, 'max_completion_tokens', 1, limits.maxTokens, true, limit) ?? optionalNumber(body, 'max_tokens', 1, limits.maxTokens, true, limit);
  const streamOptions = body.stream_options;
  if (!isAbsent(streamOptions) && (typeof streamOptions !== 'object' || Array.isArray(streamOptions))) {
    throw new BadRequestError('`stream_options` must be an object.', 'stream_options');
  }
  if (streamOptions) refuseUnknownFields(streamOptions as Body, new Set(['include_usage']), 'stream_options.');
  const includeUsage = streamOptions ? (optionalBoolean(streamOptions as Body, 'include_usage', 'stream_options.') ?? false) : false;
  return {
    maxTokens,
    sampling: samplingOf(body),
    attention: attentionOf(body),
    client: clientOf(body, requestId),
    stop: stopSequences(body),
    stream: optionalBoolean(body, 'stream') ?? false,
    includeUsage,
  };
}

// OpenAI's `user` (a stable id of the end user): the completions of one user supersede each
// other (the newest wins), so several editors can share one server. Requests without a user
// are each their own client and never cancel one another.
function clientOf(body: Body, requestId: string): string {
  const user = body.user;
  if (isAbsent(user)) return `request:${requestId}`;
  if (typeof user !== 'string' || user.length > 256) throw new BadRequestError('`user` must be a string of at most 256 characters.', 'user');
  return `user:${user}`;
}

function promptTextOf(value: unknown, name: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.length === 1 && typeof value[0] === 'string') return value[0];
  throw new BadRequestError(`\`${name}\` must be a string (token-id prompts and batches of prompts are not supported).`, name);
}

// A message's content: a string, or a list of {"type": "text", "text": string} parts.
function contentOf(value: unknown, path: string): string {
  if (isAbsent(value)) return '';
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) throw new BadRequestError(`\`${path}\` must be a string or a list of {"type": "text", "text": "..."} parts.`, path);
  return value
    .map((part, index) => {
      const at = `${path}[${index}]`;
      if (typeof part !== 'object' || part === null || Array.isArray(part))
        throw new BadRequestError(`\`${at}\` must be an object {"type": "text", "text": "..."}.`, at);
      const { type, text } = part as Body;
      if (type !== 'text') throw new BadRequestError(`\`${at}.type\` must be "text" (this server reads text only), not ${JSON.stringify(type)}.`, `${at}.type`);
      if (typeof text !== 'string') throw new BadRequestError(`\`${at}.text\` must be a string.`, `${at}.text`);
      return text;
    })
    .join('');
}

// A prompt written as our repository stream — [<repo_name>name\n](<file_sep>path\ncontent\n)*
// <file_sep>current-path\nprefix — is split back into its files, so the FIM prompt is built
// exactly as the local engine builds it (repository first, then the FIM sentinels) and the
// repository files keep their cached tokens. Anything else stays one prefix.
export function splitRepoPrompt(
  format: FimFormat | undefined,
  prompt: string,
): Pick<CompletionGenerateParams, 'prefix' | 'repoName' | 'repositoryContext' | 'filePath'> {
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
  const repositoryContext: ContextFileParam[] = [];
  for (const segment of segments) {
    const end = segment.indexOf('\n');
    if (end < 0 || !segment.endsWith('\n')) return whole;
    repositoryContext.push({ path: segment.slice(0, end), content: segment.slice(end + 1, -1) });
  }
  const split = { repoName, repositoryContext, filePath: current.slice(0, currentEnd), prefix: current.slice(currentEnd + 1) };
  // Accept the split only if the prompt builder gives back the very text that came in.
  const withContext = promptText(buildFimPrompt(format, { ...split, prefix: '', suffix: '' }));
  const sentinels = promptText(buildFimPrompt(format, { prefix: '', suffix: '' }));
  const rebuilt = withContext.endsWith(sentinels) ? withContext.slice(0, withContext.length - sentinels.length) + split.prefix : undefined;
  return rebuilt === prompt ? split : whole;
}

export function parseCompletionRequest(body: Body, requestId: string, fimFormat: FimFormat | undefined, limits: RequestLimits): ParsedRequest {
  refuseUnknownFields(body, COMPLETION_FIELDS, '');
  if (isAbsent(body.prompt)) throw new BadRequestError('`prompt` is required.', 'prompt');
  const prompt = promptTextOf(body.prompt, 'prompt');
  if (!isAbsent(body.echo) && body.echo !== false) throw new BadRequestError('`echo` is not supported by this server; remove it.', 'echo');
  if (!isAbsent(body.best_of) && body.best_of !== 1) throw new BadRequestError('Only `best_of` = 1 is supported.', 'best_of');
  const common = commonFields(body, requestId, limits);
  const shared = { requestId, maxTokens: common.maxTokens, sampling: common.sampling, attention: common.attention };
  let params: GenerateParams;
  if (!isAbsent(body.suffix)) {
    // Fill in the middle through the model's own FIM format.
    const suffix = promptTextOf(body.suffix, 'suffix');
    params = { ...shared, kind: 'completion', ...splitRepoPrompt(fimFormat, prompt), suffix, client: common.client };
  } else {
    if (prompt.length === 0) throw new BadRequestError('`prompt` must not be empty.', 'prompt');
    params = { ...shared, kind: 'raw', prompt };
  }
  return { params, stop: common.stop, stream: common.stream, includeUsage: common.includeUsage };
}

const ROLES = new Set(['system', 'user', 'assistant', 'developer']);

function repositoryOf(body: Body): Pick<RepositoryFields, 'repoName' | 'repositoryContext'> {
  const repository = body.repository;
  if (isAbsent(repository)) return {};
  const shape = '`repository` (Tidal extra) must be {"name"?: string, "files": [{"path": string, "content": string}, ...]}';
  if (typeof repository !== 'object' || Array.isArray(repository)) throw new BadRequestError(`${shape}.`, 'repository');
  refuseUnknownFields(repository as Body, REPOSITORY_FIELDS, 'repository.');
  const { name, files } = repository as Body;
  if (!isAbsent(name) && typeof name !== 'string') throw new BadRequestError(`${shape}; \`name\` is not a string.`, 'repository.name');
  if (!Array.isArray(files) || files.length > MAX_REPOSITORY_FILES) {
    throw new BadRequestError(`${shape}, with at most ${MAX_REPOSITORY_FILES} files.`, 'repository.files');
  }
  const repositoryContext: ContextFileParam[] = files.map((file, index) => {
    const at = `repository.files[${index}]`;
    if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new BadRequestError(`\`${at}\` must be {"path", "content"}.`, at);
    const { path, content, ...rest } = file as Body;
    if (typeof path !== 'string' || path.length === 0) throw new BadRequestError(`\`${at}.path\` must be a non-empty string.`, `${at}.path`);
    if (typeof content !== 'string') throw new BadRequestError(`\`${at}.content\` must be a string.`, `${at}.content`);
    const extra = Object.keys(rest).find((key) => !isAbsent(rest[key]));
    if (extra !== undefined) throw new BadRequestError(`\`${at}.${extra}\` is not supported by this server; remove it.`, `${at}.${extra}`);
    return { path, content };
  });
  return { repoName: typeof name === 'string' ? name : undefined, repositoryContext };
}

export function parseChatRequest(body: Body, requestId: string, limits: RequestLimits): ParsedRequest {
  refuseUnknownFields(body, CHAT_FIELDS, '');
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new BadRequestError('`messages` must be a non-empty list of {"role", "content"} objects.', 'messages');
  }
  const parsed: ChatMessageParam[] = messages.map((message, index) => {
    const at = `messages[${index}]`;
    if (typeof message !== 'object' || message === null || Array.isArray(message)) throw new BadRequestError(`\`${at}\` must be an object.`, at);
    const { role, content, ...rest } = message as Body;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new BadRequestError(`\`${at}.role\` must be "system", "developer", "user" or "assistant".`, `${at}.role`);
    }
    for (const [name, value] of Object.entries(rest)) {
      if (!(EMPTY_MESSAGE_FIELDS.has(name) ? isEmpty(value) : isAbsent(value))) {
        throw new BadRequestError(`\`${at}.${name}\` is not supported by this server; remove it.`, `${at}.${name}`);
      }
    }
    return { role: role === 'developer' ? 'system' : (role as ChatMessageParam['role']), content: contentOf(content, `${at}.content`) };
  });
  const common = commonFields(body, requestId, limits);
  const params: GenerateParams = {
    requestId,
    kind: 'chat',
    messages: parsed,
    ...repositoryOf(body),
    maxTokens: common.maxTokens,
    sampling: common.sampling,
    attention: common.attention,
  };
  return { params, stop: common.stop, stream: common.stream, includeUsage: common.includeUsage };
}
