// Renders a conversation into prompt text with the model's own chat template
// (tokenizer_config.json `chat_template`, a Jinja template).
import { Template } from '@huggingface/jinja';

import type { TokenizerConfig } from './tokenizer';
import { tokenContent } from './tokenizer';

export type ChatRole = 'system' | 'user' | 'assistant';
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export class ChatTemplateError extends Error {
  readonly code = 'ERR_TIDAL_REQUEST';
}

// The template to use: a plain string, or the entry named 'default' of a list of named templates.
export function findChatTemplate(config: TokenizerConfig): string | undefined {
  const template = config.chat_template;
  if (typeof template === 'string') return template;
  if (Array.isArray(template)) return template.find((entry) => entry.name === 'default')?.template ?? template[0]?.template;
  return undefined;
}

const compiled = new Map<string, Template>();

export function renderChat(
  config: TokenizerConfig,
  messages: ChatMessage[],
  options: { addGenerationPrompt?: boolean; modelName?: string } = {},
): string {
  const source = findChatTemplate(config);
  if (source === undefined) {
    throw new ChatTemplateError(
      `The model${options.modelName ? ` ${options.modelName}` : ''} has no chat template in tokenizer_config.json, ` +
        'so it cannot be used for chat. Pick an instruction-tuned (chat) model, or use it for completions only.',
    );
  }
  let template = compiled.get(source);
  if (template === undefined) {
    try {
      template = new Template(source);
    } catch (error) {
      throw new ChatTemplateError(`The model's chat template could not be parsed: ${(error as Error).message}`);
    }
    compiled.set(source, template);
  }
  try {
    return template.render({
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: tokenContent(config.bos_token) ?? '',
      eos_token: tokenContent(config.eos_token) ?? '',
      pad_token: tokenContent(config.pad_token) ?? '',
    });
  } catch (error) {
    throw new ChatTemplateError(`The model's chat template failed on this conversation: ${(error as Error).message}`);
  }
}

/** Drops a leading BOS that the chat template wrote, for prompts that already start with one. */
export function withoutLeadingBos(text: string, bosToken: string | undefined): string {
  return bosToken && text.startsWith(bosToken) ? text.slice(bosToken.length) : text;
}
