// A failing cloud provider in a chain: the turn is still answered by the next provider (local), and the
// switch is announced (media pool event -> log and metric). With no provider left, the client is told.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { encodePackets } from '../helpers/audio.ts';
import { fliteSpeech } from '../helpers/flite-speech.ts';
import { OpenAiTestServer } from '../helpers/vendors/openai-server.ts';
import type { ServerMessage } from '../../signaling/protocol.ts';
import type { ProviderFallbackInfo } from '../../media/worker/worker-protocol.ts';

type TurnMessage = Extract<ServerMessage, { type: 'turn' }>;

describe('provider fallback (cloud agent failing -> local agent)', () => {
  let vendor: OpenAiTestServer;
  let question: Uint8Array[];
  before(async () => {
    vendor = await OpenAiTestServer.start();
    question = encodePackets(await fliteSpeech('what time is it', 200));
  });
  after(async () => {
    await vendor?.close();
  });

  describe('chain openai,local', () => {
    let server: RunningServer;
    before(async () => {
      server = await startServer({
        VOICE_DEFAULT_MODE: 'stt_tts',
        MEDIA_WORKERS: '1',
        AGENT_PROVIDERS: 'openai,local',
        OPENAI_API_KEY: 'sk-test-not-a-real-key',
        OPENAI_BASE_URL: vendor.baseUrl,
      });
    });
    after(async () => {
      await server?.close();
    });

    it('answers from the local agent when the cloud agent returns 500, and reports the fallback', async () => {
      vendor.replyAlways('chat', { kind: 'error', status: 500, message: 'the model is overloaded' });
      const fallbacks: ProviderFallbackInfo[] = [];
      server.media.on('providerfallback', (info) => fallbacks.push(info));
      const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
      try {
        const turn = client.next<TurnMessage>((m) => m.type === 'turn', 30_000);
        await client.speak(question);
        const answered = (await turn).turn;
        assert.match(answered.agentText ?? '', /\d{1,2}(:\d{2})?|o'clock/i, `answer "${answered.agentText}"`);
        assert.ok(answered.agentAudioMs > 500);
        assert.ok(vendor.requests.some((r) => r.path.startsWith('/v1/chat/completions')), 'the cloud agent was tried first');
        assert.equal(fallbacks.length, 1, JSON.stringify(fallbacks));
        assert.equal(fallbacks[0].kind, 'agent');
        assert.equal(fallbacks[0].to, 'rule-agent');
        assert.equal(fallbacks[0].reason, 'PROVIDER_ERR_HTTP_500');
        assert.equal(client.messages.filter((m) => m.type === 'error').length, 0, 'the user sees no error');
        const sent = vendor.requests.find((r) => r.path.startsWith('/v1/chat/completions'));
        assert.equal(sent?.headers.authorization, 'Bearer sk-test-not-a-real-key');
      } finally {
        await client.close();
      }
    });
  });

  describe('chain openai only', () => {
    let server: RunningServer;
    before(async () => {
      server = await startServer({
        VOICE_DEFAULT_MODE: 'stt_tts',
        MEDIA_WORKERS: '1',
        AGENT_PROVIDERS: 'openai',
        OPENAI_API_KEY: 'sk-test-not-a-real-key',
        OPENAI_BASE_URL: vendor.baseUrl,
      });
    });
    after(async () => {
      await server?.close();
    });

    it('tells the client PROVIDER_ERR_AGENT when no agent is left, and keeps listening', async () => {
      vendor.replyAlways('chat', { kind: 'error', status: 401, message: 'invalid api key' });
      const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
      try {
        const error = client.next((m) => m.type === 'error', 30_000);
        await client.speak(question);
        const message = await error;
        assert.ok(message.type === 'error');
        assert.equal(message.code, 'PROVIDER_ERR_AGENT');
        assert.ok(!message.message.includes('sk-test'), 'no key in the message');
        await client.waitFor((m) => m.type === 'state' && m.state === 'listening' && m.previous === 'processing', 10_000);
        assert.equal(server.sessions.get(client.sessionId)?.closed, false);
      } finally {
        await client.close();
      }
    });
  });
});
