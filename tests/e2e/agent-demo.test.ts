// The voice agent on the demo page in real Chromium against a real server (stt_tts, local
// providers): the fake microphone asks "what time is it" (spoken by flite), the page shows what the
// server recognised and the agent's answer with the time, lists the turn, and the answer's audio
// arrives in the browser.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { EMBEDDED_AUTH_ENV } from '../helpers/auth.ts';
import { launchChromium, type ChromiumSession } from '../helpers/chromium.ts';
import { fliteSpeech } from '../helpers/flite-speech.ts';
import type { ConversationTurn } from '../../server/session-types.ts';
import type { ClientMessage } from '../../signaling/protocol.ts';

const QUESTION = 'what time is it';
const SAMPLE_RATE = 16000;
// Chromium starts the file with the capture, before media connects, and loops it. Silence before
// the question lets the session come up; silence after it lets the answer finish before the
// question comes round again (which would interrupt it).
const LEAD_SILENCE_MS = 1500;
const TRAIL_SILENCE_MS = 8000;

/** Inbound audio of the page's peer connection, summed over its inbound-rtp audio streams. */
interface InboundAudio {
  packetsReceived: number;
  totalAudioEnergy: number;
  totalSamplesReceived: number;
}

/** What the page's client emitted, in order, with the inbound audio at each `speech` event. */
type Recorded =
  | { kind: 'transcript'; role: 'user' | 'agent'; text: string; final: boolean }
  | { kind: 'speech'; event: string; inbound?: InboundAudio }
  | { kind: 'turn'; turn: ConversationTurn };

type RecorderWindow = Window & {
  voiceClient?: { mode: string | null; turns: ConversationTurn[] };
  recorded: Recorded[];
  inboundAudio(): Promise<InboundAudio>;
};

// Runs before the demo's script: listens on the client the moment the demo assigns
// `window.voiceClient`, so no event can come before the listeners. A string, because it runs in the
// page as is (no transpiler helpers).
const RECORDER = `(() => {
  let client;
  window.recorded = [];
  window.inboundAudio = async () => {
    const audio = { packetsReceived: 0, totalAudioEnergy: 0, totalSamplesReceived: 0 };
    if (!client) return audio;
    const report = await client.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
      audio.packetsReceived += s.packetsReceived ?? 0;
      audio.totalAudioEnergy += s.totalAudioEnergy ?? 0;
      audio.totalSamplesReceived += s.totalSamplesReceived ?? 0;
    });
    return audio;
  };
  Object.defineProperty(window, 'voiceClient', {
    configurable: true,
    get: () => client,
    set: (value) => {
      client = value;
      value.on('transcript', (t) => window.recorded.push({ kind: 'transcript', role: t.role, text: t.text, final: t.final }));
      value.on('turn', (turn) => window.recorded.push({ kind: 'turn', turn }));
      value.on('speech', (event) => {
        const entry = { kind: 'speech', event };
        window.recorded.push(entry);
        window.inboundAudio().then((audio) => (entry.inbound = audio), () => undefined);
      });
    },
  });
})();`;

/** A 16 kHz mono 16-bit PCM WAV file of `samples` with silence before and after. */
function wavFile(samples: Int16Array, leadMs: number, trailMs: number): Buffer {
  const lead = (leadMs / 1000) * SAMPLE_RATE;
  const total = lead + samples.length + (trailMs / 1000) * SAMPLE_RATE;
  const wav = Buffer.alloc(44 + total * 2);
  wav.write('RIFF', 0, 'ascii');
  wav.writeUInt32LE(36 + total * 2, 4);
  wav.write('WAVEfmt ', 8, 'ascii');
  wav.writeUInt32LE(16, 16); // fmt chunk size
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(SAMPLE_RATE, 24);
  wav.writeUInt32LE(SAMPLE_RATE * 2, 28); // byte rate
  wav.writeUInt16LE(2, 32); // block align
  wav.writeUInt16LE(16, 34); // bits per sample
  wav.write('data', 36, 'ascii');
  wav.writeUInt32LE(total * 2, 40);
  samples.forEach((sample, i) => wav.writeInt16LE(sample, 44 + (lead + i) * 2));
  return wav;
}

/** Awaits one step; a failure (typically a Playwright timeout) names the step that did not happen. */
async function step<T>(what: string, action: Promise<T>): Promise<T> {
  try {
    return await action;
  } catch (error) {
    throw new Error(`${what}: ${(error as Error).message}`, { cause: error });
  }
}

/** Waits until a line of #transcript for `role` is final and its text matches `pattern`; returns the text. */
async function finalTranscriptLine(page: Page, role: 'user' | 'agent', pattern: RegExp, timeoutMs: number): Promise<string> {
  const handle = await page.waitForFunction(
    ([r, source, flags]) => {
      const lines = document.querySelectorAll(`#transcript li[data-role="${r}"][data-final="true"] .text`);
      const match = Array.from(lines, (l) => l.textContent ?? '').find((text) => new RegExp(source, flags).test(text));
      return match ?? false;
    },
    [role, pattern.source, pattern.flags] as const,
    { timeout: timeoutMs, polling: 100 },
  );
  return (await handle.jsonValue()) as string;
}

describe('demo page in Chromium (voice agent, stt_tts)', () => {
  let server: RunningServer | undefined;
  let browser: ChromiumSession | undefined;
  let dir: string | undefined;

  after(async () => {
    await browser?.close();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers a spoken question: live transcript, the turn, and the answer heard', { timeout: 90_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'voice-e2e-agent-'));
    const wav = join(dir, 'what-time-is-it.wav');
    await writeFile(wav, wavFile(await fliteSpeech(QUESTION, 0), LEAD_SILENCE_MS, TRAIL_SILENCE_MS));
    // Started here, not in before(): a failing hook only cancels the test, and a missing browser
    // must count as a failure.
    const [launched, started] = await Promise.allSettled([
      launchChromium({ fakeAudioCapture: wav }),
      startServer({ VOICE_DEFAULT_MODE: 'stt_tts', ...EMBEDDED_AUTH_ENV }),
    ]);
    if (launched.status === 'fulfilled') browser = launched.value;
    if (started.status === 'fulfilled') server = started.value;
    if (launched.status === 'rejected') throw launched.reason;
    if (started.status === 'rejected') throw started.reason;
    assert.ok(browser && server);
    const { page } = browser;
    try {
      await page.addInitScript(RECORDER);
      const sent: ClientMessage[] = [];
      page.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(JSON.parse(String(f.payload)) as ClientMessage)));
      await step('open the demo page', page.goto(server.url, { timeout: 10_000 }));
      assert.equal(await page.inputValue('#mode'), 'stt_tts', 'the demo connects to the voice agent by default');
      await step('click Connect', page.click('#connect', { timeout: 5_000 }));
      await step(
        '#state becomes "listening"',
        page.waitForFunction(() => document.querySelector('#state')?.textContent === 'listening', null, { timeout: 10_000 }),
      );
      const { token, ...join } = sent.find((m) => m.type === 'join') as Extract<ClientMessage, { type: 'join' }>;
      assert.deepEqual(join, { type: 'join', mode: 'stt_tts' }, 'the page asks for the mode selected');
      assert.match(token ?? '', /^[\w-]+\.[\w-]+\.[\w-]+$/, 'with the dev token it fetched');
      assert.equal(await page.evaluate(() => (window as unknown as RecorderWindow).voiceClient?.mode), 'stt_tts', 'joined in stt_tts');

      // The live transcript: the user's words as recognised (pocketsphinx may get one wrong, so
      // only "time" is required), then the agent's answer with the time in digits.
      const userLine = await step('#transcript shows the question', finalTranscriptLine(page, 'user', /\btime\b/i, 30_000));
      const agentLine = await step('#transcript shows the answer with the time', finalTranscriptLine(page, 'agent', /\d/, 30_000));

      // The turn, as the client received it and as #turns lists it.
      await step('the turn is listed in #turns', page.locator('#turns > li').first().waitFor({ state: 'attached', timeout: 20_000 }));
      const recorded = await page.evaluate(() => (window as unknown as RecorderWindow).recorded);
      const turnAt = recorded.findIndex((r) => r.kind === 'turn');
      const turn = (recorded[turnAt] as Extract<Recorded, { kind: 'turn' }>).turn;
      assert.equal(turn.index, 0);
      assert.equal(turn.mode, 'stt_tts');
      assert.equal(turn.userText, userLine, 'the final user transcript is the turn\'s userText');
      assert.equal(turn.agentText, agentLine, 'the final agent transcript is the turn\'s agentText');
      assert.equal(turn.interrupted, false, `the answer was not interrupted: ${JSON.stringify(turn)}`);
      assert.equal(turn.heardText, turn.agentText, 'the whole answer was heard');
      assert.ok(turn.agentAudioMs > 0 && turn.heardAudioMs === turn.agentAudioMs, `answer audio ${turn.agentAudioMs} ms, heard ${turn.heardAudioMs} ms`);
      const item = await page.locator('#turns > li').first().textContent();
      assert.match(item ?? '', /^#0: user \d+ ms, agent \d+ ms, latency \d+ ms/);
      assert.ok(item?.endsWith(`“${turn.userText}” → “${turn.agentText}”`), `#turns shows the question and the answer: ${item}`);

      // The SDK's events, in protocol order: end of turn, the user's final words, the answer's
      // final text, then the turn.
      const endOfTurnAt = recorded.findIndex((r) => r.kind === 'speech' && r.event === 'end_of_turn');
      const userFinalAt = recorded.findIndex((r) => r.kind === 'transcript' && r.role === 'user' && r.final);
      const agentFinalAt = recorded.findIndex((r) => r.kind === 'transcript' && r.role === 'agent' && r.final);
      assert.ok(endOfTurnAt >= 0 && endOfTurnAt < userFinalAt && userFinalAt < agentFinalAt && agentFinalAt < turnAt, `event order: ${JSON.stringify(recorded)}`);
      assert.ok(!recorded.some((r) => r.kind === 'speech' && r.event === 'barge_in'), 'no barge-in');

      // The answer was heard: from the end of the user's turn on, the browser received about the
      // answer's length in packets, and they carried sound.
      const before = await step('inbound audio read at end_of_turn', page.waitForFunction(
        () => {
          const endOfTurn = (window as unknown as RecorderWindow).recorded.find((r) => r.kind === 'speech' && r.event === 'end_of_turn');
          return (endOfTurn?.kind === 'speech' && endOfTurn.inbound) || false;
        },
        null,
        { timeout: 5_000 },
      )).then((h) => h.jsonValue() as Promise<InboundAudio>);
      const expectedPackets = before.packetsReceived + Math.floor((turn.agentAudioMs / 20) * 0.9);
      const afterAnswer = await step(`inbound packets grow past ${expectedPackets} with energy`, page.waitForFunction(
        async ([min, energy]) => {
          const audio = await (window as unknown as RecorderWindow).inboundAudio();
          return audio.packetsReceived >= min && audio.totalAudioEnergy > energy ? audio : false;
        },
        [expectedPackets, before.totalAudioEnergy] as const,
        { timeout: 5_000, polling: 100 },
      )).then((h) => h.jsonValue() as Promise<InboundAudio>);
      assert.ok(afterAnswer.totalSamplesReceived > before.totalSamplesReceived, `samples: ${JSON.stringify({ before, afterAnswer })}`);
      console.log(`agent-demo: heard "${turn.userText}", answered "${turn.agentText}" (${turn.agentAudioMs} ms); inbound ${JSON.stringify({ before, afterAnswer })}; ` +
        `user partials ${recorded.filter((r) => r.kind === 'transcript' && r.role === 'user' && !r.final).length}`);

      assert.equal(await page.textContent('#error'), '', 'the page shows no error');
      await step('click Disconnect', page.click('#disconnect', { timeout: 5_000 }));
      await step(
        '#state becomes "disconnected"',
        page.waitForFunction(() => document.querySelector('#state')?.textContent === 'disconnected', null, { timeout: 5_000 }),
      );
    } catch (error) {
      console.error(`--- page log (${browser.log.length} lines) ---\n${browser.log.join('\n')}\n--- end of page log ---`);
      throw error;
    }
  });
});
