/**
 * The agent as an OpenAI chat completion, streamed (`POST {baseUrl}/chat/completions` with
 * `stream: true`): the reply arrives as server-sent events whose `choices[0].delta.content` are
 * yielded as they come, until `data: [DONE]`. Works against any OpenAI-compatible server
 * (vLLM, llama.cpp, Ollama, ...) through `baseUrl`; `apiKey` is optional for those.
 */
import type { Agent, AgentMessage, AgentRequest } from '../types.ts';
import { openHttpStream, parseVendorJson, sseEvents, truncatedError, vendorError, type HttpStream } from './http.ts';

export interface OpenAiChatAgentOptions {
  baseUrl: string;
  /** Empty: no Authorization header. */
  apiKey: string;
  model: string;
  systemPrompt: string;
  /** Until the first chunk of the answer (connect, queueing, time to first token). */
  firstTokenTimeoutMs: number;
  /** Between two chunks once the answer streams. */
  idleTimeoutMs: number;
}

export const DEFAULT_OPENAI_CHAT_AGENT_OPTIONS: OpenAiChatAgentOptions = {
  baseUrl: 'https://api.openai.com/v1',
  apiKey: '',
  model: 'gpt-4o-mini',
  systemPrompt:
    'You are a helpful voice assistant. Everything you write is spoken aloud: answer in one to three short, ' +
    'plain sentences, with no lists, markdown, code, links or emoji. Ask a short question when unsure.',
  firstTokenTimeoutMs: 10_000,
  idleTimeoutMs: 10_000,
};

interface ChatCompletionChunk {
  error?: unknown;
  choices?: { delta?: { content?: unknown }; finish_reason?: unknown }[];
}

export class OpenAiChatAgent implements Agent {
  readonly name = 'openai-chat';
  readonly #options: OpenAiChatAgentOptions;

  constructor(options: Partial<OpenAiChatAgentOptions> = {}) {
    this.#options = { ...DEFAULT_OPENAI_CHAT_AGENT_OPTIONS, ...options };
  }

  /** Yields the content deltas; ends quietly when `request.signal` aborts. */
  async *respond(request: AgentRequest): AsyncGenerator<string> {
    const { baseUrl, apiKey, model, systemPrompt, firstTokenTimeoutMs, idleTimeoutMs } = this.#options;
    let stream: HttpStream | undefined;
    try {
      stream = await openHttpStream({
        provider: this.name,
        url: `${baseUrl.replace(/\/+$/, '')}/chat/completions`,
        apiKey,
        body: JSON.stringify({ model, stream: true, messages: chatMessages(systemPrompt, request.history, request.userText) }),
        accept: 'text/event-stream',
        signal: request.signal,
        firstByteTimeoutMs: firstTokenTimeoutMs,
        idleTimeoutMs,
      });
      let finished = false;
      for await (const event of sseEvents(stream.chunks())) {
        if (event.data === '[DONE]') {
          finished = true;
          break;
        }
        const chunk = parseVendorJson(this.name, event.data) as ChatCompletionChunk;
        if (chunk.error !== undefined) throw vendorError(this.name, chunk.error, apiKey);
        const choice = chunk.choices?.[0];
        // Compatible servers that omit [DONE] still say why the answer stopped.
        if (choice?.finish_reason) finished = true;
        const content = choice?.delta?.content;
        if (typeof content === 'string' && content !== '') yield content;
      }
      if (!finished) throw truncatedError(this.name);
    } catch (error) {
      if (request.signal.aborted) return;
      throw error;
    } finally {
      stream?.close();
    }
  }
}

function chatMessages(systemPrompt: string, history: readonly AgentMessage[], userText: string): { role: string; content: string }[] {
  const messages = systemPrompt ? [{ role: 'system', content: systemPrompt }] : [];
  for (const { role, text } of history) messages.push({ role, content: text });
  messages.push({ role: 'user', content: userText });
  return messages;
}
