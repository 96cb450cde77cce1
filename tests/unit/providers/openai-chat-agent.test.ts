import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DEFAULT_OPENAI_CHAT_AGENT_OPTIONS, OpenAiChatAgent, type OpenAiChatAgentOptions } from '../../../providers/openai/chat-agent.ts';
import { ProviderHttpError, SseParser, type SseEvent } from '../../../providers/openai/http.ts';
import { ProviderError, type AgentRequest } from '../../../providers/types.ts';
import { chatCompletionEvents, OpenAiTestServer } from '../../helpers/vendors/openai-server.ts';

const KEY = 'sk-test-0123456789abcdefXYZ';

async function drain<T>(iterable: AsyncIterable<T>): Promise<{ items: T[]; error: unknown }> {
  const items: T[] = [];
  try {
    for await (const item of iterable) items.push(item);
    return { items, error: undefined };
  } catch (error) {
    return { items, error };
  }
}

function ask(userText: string, signal = new AbortController().signal): AgentRequest {
  return { history: [], userText, signal };
}

describe('OpenAiChatAgent against a local OpenAI server', () => {
  let server: OpenAiTestServer;
  const agent = (options: Partial<OpenAiChatAgentOptions> = {}): OpenAiChatAgent =>
    new OpenAiChatAgent({ baseUrl: server.baseUrl, apiKey: KEY, ...options });

  beforeEach(async () => {
    server = await OpenAiTestServer.start();
  });
  afterEach(() => server.close());

  it('posts a streaming chat completion and yields the content deltas', { timeout: 5000 }, async () => {
    server.reply('chat', { kind: 'sse', events: chatCompletionEvents(['Hel', 'lo, ', 'wörld 👋.']) });
    const history = [
      { role: 'user' as const, text: 'Hi' },
      { role: 'assistant' as const, text: 'Hello, how can I help?' },
    ];
    const deltas: string[] = [];
    for await (const delta of agent({ model: 'gpt-test' }).respond({ history, userText: 'Say hello', signal: new AbortController().signal })) deltas.push(delta);

    assert.deepEqual(deltas, ['Hel', 'lo, ', 'wörld 👋.']);
    const [request] = server.requests;
    assert.equal(request.method, 'POST');
    assert.equal(request.path, '/v1/chat/completions');
    assert.equal(request.headers.authorization, `Bearer ${KEY}`);
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers.accept, 'text/event-stream');
    assert.deepEqual(request.json(), {
      model: 'gpt-test',
      stream: true,
      messages: [
        { role: 'system', content: DEFAULT_OPENAI_CHAT_AGENT_OPTIONS.systemPrompt },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello, how can I help?' },
        { role: 'user', content: 'Say hello' },
      ],
    });
  });

  it('sends no Authorization header without a key (local compatible servers) and accepts a trailing slash', { timeout: 5000 }, async () => {
    const { items } = await drain(agent({ apiKey: '', baseUrl: `${server.baseUrl}/`, systemPrompt: 'Be brief.' }).respond(ask('Hi')));
    assert.deepEqual(items, ['Hello', '!']);
    assert.equal(server.requests[0].headers.authorization, undefined);
    assert.deepEqual((server.requests[0].json().messages as unknown[])[0], { role: 'system', content: 'Be brief.' });
  });

  it('turns an error object in the stream into a ProviderError with the vendor message', { timeout: 5000 }, async () => {
    const events = chatCompletionEvents(['Hi']).slice(0, 2);
    events.push({ error: { message: 'The server had an error while processing your request.', type: 'server_error', code: null } });
    server.reply('chat', { kind: 'sse', events });
    const { items, error } = await drain(agent().respond(ask('Hi')));
    assert.deepEqual(items, ['Hi']);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.code, 'PROVIDER_ERR_VENDOR');
    assert.equal(error.retryable, true);
    assert.match(error.message, /The server had an error while processing your request/);
  });

  it('maps 401 to a non-retryable error that carries the vendor message but never the key', { timeout: 5000 }, async () => {
    const message = `Incorrect API key provided: ${KEY}. You can find your API key at https://platform.openai.com/account/api-keys.`;
    server.reply('chat', { kind: 'error', status: 401, message });
    const { error } = await drain(agent().respond(ask('Hi')));
    assert.ok(error instanceof ProviderError);
    assert.equal(error.code, 'PROVIDER_ERR_HTTP_401');
    assert.equal(error.status, 401);
    assert.equal(error.retryable, false);
    assert.match(error.message, /Incorrect API key provided/);
    assert.ok(!error.message.includes(KEY), error.message);
    assert.ok(!error.message.includes('0123456789abcdef'), error.message);
  });

  it('maps 429 to a retryable error that exposes Retry-After (seconds, and OpenAI retry-after-ms)', { timeout: 5000 }, async () => {
    server.reply(
      'chat',
      { kind: 'error', status: 429, message: 'Rate limit reached', headers: { 'retry-after': '2' } },
      { kind: 'error', status: 429, message: 'Rate limit reached', headers: { 'retry-after': '2', 'retry-after-ms': '1500' } },
    );
    const first = (await drain(agent().respond(ask('Hi')))).error;
    assert.ok(first instanceof ProviderHttpError);
    assert.equal(first.code, 'PROVIDER_ERR_HTTP_429');
    assert.equal(first.retryable, true);
    assert.equal(first.retryAfterMs, 2000);
    const second = (await drain(agent().respond(ask('Hi')))).error;
    assert.ok(second instanceof ProviderHttpError);
    assert.equal(second.retryAfterMs, 1500);
  });

  it('maps 500 (JSON) and 502 (an HTML proxy page) to retryable errors', { timeout: 5000 }, async () => {
    server.reply('chat', { kind: 'error', status: 500, message: 'internal' }, { kind: 'error', status: 502, body: '<html>Bad gateway</html>' });
    const internal = (await drain(agent().respond(ask('Hi')))).error;
    assert.ok(internal instanceof ProviderHttpError);
    assert.equal(internal.code, 'PROVIDER_ERR_HTTP_500');
    assert.equal(internal.retryable, true);
    assert.equal(internal.retryAfterMs, undefined);
    const gateway = (await drain(agent().respond(ask('Hi')))).error;
    assert.ok(gateway instanceof ProviderError);
    assert.equal(gateway.code, 'PROVIDER_ERR_HTTP_502');
    assert.match(gateway.message, /Bad gateway/);
  });

  it('times out (retryable) when the first byte does not come, and closes the request', { timeout: 5000 }, async () => {
    server.reply('chat', { kind: 'stall', headers: true });
    const started = performance.now();
    const { error } = await drain(agent({ firstTokenTimeoutMs: 100 }).respond(ask('Hi')));
    assert.ok(error instanceof ProviderError);
    assert.equal(error.code, 'PROVIDER_ERR_TIMEOUT');
    assert.equal(error.retryable, true);
    assert.ok(performance.now() - started < 2000);
    await server.requests[0].closedByClient;
  });

  it('times out when the stream goes quiet between chunks', { timeout: 5000 }, async () => {
    server.reply('chat', { kind: 'sse', events: chatCompletionEvents(['Hi']).slice(0, 2), then: 'hang' });
    const { items, error } = await drain(agent({ idleTimeoutMs: 100 }).respond(ask('Hi')));
    assert.deepEqual(items, ['Hi']);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.code, 'PROVIDER_ERR_TIMEOUT');
    await server.requests[0].closedByClient;
  });

  it('reports a connection dropped mid-stream as retryable', { timeout: 5000 }, async () => {
    server.reply('chat', { kind: 'sse', events: chatCompletionEvents(['Hi']).slice(0, 2), then: 'drop' });
    const { items, error } = await drain(agent().respond(ask('Hi')));
    assert.deepEqual(items, ['Hi']);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.code, 'PROVIDER_ERR_CONNECTION_LOST');
    assert.equal(error.retryable, true);
  });

  it('reports a stream that ends cleanly but without its end marker as truncated', { timeout: 5000 }, async () => {
    server.reply('chat', { kind: 'sse', events: chatCompletionEvents(['Hi']).slice(0, 2) });
    const { items, error } = await drain(agent().respond(ask('Hi')));
    assert.deepEqual(items, ['Hi']);
    assert.ok(error instanceof ProviderError);
    assert.equal(error.code, 'PROVIDER_ERR_TRUNCATED');
    assert.equal(error.retryable, true);
  });

  it('reports an unreachable server as a retryable network error', { timeout: 5000 }, async () => {
    const gone = await OpenAiTestServer.start();
    const baseUrl = gone.baseUrl;
    await gone.close();
    const { error } = await drain(agent({ baseUrl }).respond(ask('Hi')));
    assert.ok(error instanceof ProviderError);
    assert.equal(error.code, 'PROVIDER_ERR_NETWORK');
    assert.equal(error.retryable, true);
  });

  it('refuses a base URL that is not http(s) as a configuration error, not to be retried', { timeout: 5000 }, async () => {
    for (const baseUrl of ['ftp://127.0.0.1/v1', 'not a url']) {
      const { error } = await drain(agent({ baseUrl }).respond(ask('Hi')));
      assert.ok(error instanceof ProviderError, baseUrl);
      assert.equal(error.code, 'PROVIDER_ERR_CONFIG', baseUrl);
      assert.equal(error.retryable, false, baseUrl);
    }
    assert.equal(server.requests.length, 0);
  });

  it('ends quietly and promptly on abort mid-stream, and the server sees the request closed', { timeout: 5000 }, async () => {
    server.reply('chat', { kind: 'sse', events: chatCompletionEvents(['Hi', ' there']).slice(0, 3), then: 'hang' });
    const controller = new AbortController();
    const deltas: string[] = [];
    let abortedAt = 0;
    for await (const delta of agent().respond(ask('Hi', controller.signal))) {
      deltas.push(delta);
      if (deltas.length === 2) {
        abortedAt = performance.now();
        controller.abort();
      }
    }
    assert.deepEqual(deltas, ['Hi', ' there']);
    assert.ok(performance.now() - abortedAt < 500, 'iteration ended promptly');
    await server.requests[0].closedByClient;
  });

  it('closes the request when the consumer stops reading early', { timeout: 5000 }, async () => {
    server.reply('chat', { kind: 'sse', events: chatCompletionEvents(['Hi', ' there']).slice(0, 3), then: 'hang' });
    for await (const delta of agent().respond(ask('Hi'))) {
      assert.equal(delta, 'Hi');
      break;
    }
    await server.requests[0].closedByClient;
  });

  it('ends quietly on abort before the first byte', { timeout: 5000 }, async () => {
    server.reply('chat', { kind: 'stall' });
    const controller = new AbortController();
    const answer = drain(agent().respond(ask('Hi', controller.signal)));
    const [request] = await server.receivedRequests(1);
    controller.abort();
    assert.deepEqual(await answer, { items: [], error: undefined });
    await request.closedByClient;
  });
});

describe('SseParser', () => {
  const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
  const parseIn = (text: string, size: number): SseEvent[] => {
    const parser = new SseParser();
    const all = bytes(text);
    const events: SseEvent[] = [];
    for (let i = 0; i < all.length; i += size) events.push(...parser.push(all.subarray(i, i + size)));
    return [...events, ...parser.end()];
  };

  it('parses events whatever the chunking: CRLF, CR, comments, event names, multi-line data, split UTF-8', { timeout: 5000 }, () => {
    const stream = ': keep-alive\r\ndata: {"a":"é👋"}\r\n\r\nevent: transcript.text.done\rdata:one\rdata:  two\r\rdata: [DONE]\n\n';
    const expected: SseEvent[] = [
      { event: 'message', data: '{"a":"é👋"}' },
      { event: 'transcript.text.done', data: 'one\n two' },
      { event: 'message', data: '[DONE]' },
    ];
    for (const size of [1, 2, 3, 5, 7, stream.length]) assert.deepEqual(parseIn(stream, size), expected, `chunks of ${size} bytes`);
  });

  it('delivers a last event that lacks its blank line when the stream ends', { timeout: 5000 }, () => {
    assert.deepEqual(parseIn('data: last', 4), [{ event: 'message', data: 'last' }]);
    assert.deepEqual(parseIn('data: a\n\n\n\n', 4), [{ event: 'message', data: 'a' }]);
  });
});
