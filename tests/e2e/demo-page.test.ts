// The demo page in real Chromium against a real server: the fake microphone plays the speech
// fixture, the server hears the utterance end and echoes it, the page lists the turn, and
// Disconnect ends the session on the server.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { launchChromium, type ChromiumSession } from '../helpers/chromium.ts';
import { SPEECH_WAV } from '../helpers/audio.ts';
import type { ConversationTurn } from '../../server/session-types.ts';

interface InboundAudio {
  packetsReceived: number;
  totalAudioEnergy: number;
  audioLevel: number;
}

/** What the test reads from `window.voiceClient`, the demo page's public handle. */
interface PageVoiceClient {
  turns: ConversationTurn[];
  getStats(): Promise<RTCStatsReport>;
}

/** Resolves once the server has no session and every worker confirmed its media released. */
function allSessionsReleased(server: RunningServer, timeoutMs: number): Promise<void> {
  const done = () => server.sessions.size === 0 && server.sessions.mediaClosing === 0;
  if (done()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!done()) return;
      cleanup();
      resolve();
    };
    // Media release is confirmed by the worker after 'sessionclosed'; re-check on its event too.
    const onMedia = (event: { ev: string }) => {
      if (event.ev === 'closed') setImmediate(check);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`sessions still open after ${timeoutMs} ms: size=${server.sessions.size}, mediaClosing=${server.sessions.mediaClosing}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      server.sessions.off('sessionclosed', check);
      server.media.off('session', onMedia);
    };
    server.sessions.on('sessionclosed', check);
    server.media.on('session', onMedia);
  });
}

/** Awaits one step; a failure (typically a Playwright timeout) names the step that did not happen. */
async function step<T>(what: string, action: Promise<T>): Promise<T> {
  try {
    return await action;
  } catch (error) {
    throw new Error(`${what}: ${(error as Error).message}`, { cause: error });
  }
}

describe('demo page in Chromium (echo mode)', () => {
  let server: RunningServer | undefined;
  let browser: ChromiumSession | undefined;

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('connects, echoes an utterance as a turn, receives audio and disconnects', { timeout: 30_000 }, async () => {
    // Started here, not in before(): a failing hook only cancels the test, and a missing browser
    // must count as a failure.
    const [launched, started] = await Promise.allSettled([launchChromium({ fakeAudioCapture: SPEECH_WAV }), startServer()]);
    if (launched.status === 'fulfilled') browser = launched.value;
    if (started.status === 'fulfilled') server = started.value;
    if (launched.status === 'rejected') throw launched.reason;
    if (started.status === 'rejected') throw started.reason;
    assert.ok(browser && server);
    const { page } = browser;
    try {
      await step('open the demo page', page.goto(server.url, { timeout: 10_000 }));
      await step('click Connect', page.click('#connect', { timeout: 5_000 }));
      await step(
        '#state becomes "listening"',
        page.waitForFunction(() => document.querySelector('#state')?.textContent === 'listening', null, { timeout: 10_000 }),
      );
      assert.equal(server.sessions.size, 1, 'one session on the server');

      // The page's meter shows the fake microphone's audio.
      await step(
        '#mic-level rises above 0',
        page.waitForFunction(() => Number(document.querySelector<HTMLMeterElement>('#mic-level')?.value) > 0, null, { timeout: 5_000 }),
      );

      // A turn is listed only after the server detected the end of an utterance and played it back.
      await step('the first turn is listed in #turns', page.locator('#turns > li').first().waitFor({ state: 'attached', timeout: 15_000 }));
      const turn = await page.evaluate(() => (window as unknown as { voiceClient: PageVoiceClient }).voiceClient.turns[0]);
      assert.ok(turn, 'voiceClient.turns has the turn that the page lists');
      assert.equal(turn.mode, 'echo');
      assert.equal(turn.interrupted, false);
      assert.ok(turn.userAudioMs >= server.config.echo.minSpeechMs, `utterance of ${turn.userAudioMs} ms`);
      assert.equal(turn.agentAudioMs, turn.userAudioMs, 'the whole utterance was echoed');
      assert.notEqual(turn.timings.firstPacketOutAt, null);
      const firstItem = await page.locator('#turns > li').first().textContent();
      assert.match(firstItem ?? '', /^#0: user \d+ ms, agent \d+ ms, latency \d+ ms$/);

      // The echoed audio reached the browser and was not silence.
      const inbound = await step('inbound-rtp audio with packets and energy', page.waitForFunction(
        async () => {
          const client = (window as unknown as { voiceClient: PageVoiceClient }).voiceClient;
          const report = await client.getStats();
          const inboundAudio: InboundAudio[] = [];
          report.forEach((s) => {
            if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
            inboundAudio.push({ packetsReceived: s.packetsReceived ?? 0, totalAudioEnergy: s.totalAudioEnergy ?? 0, audioLevel: s.audioLevel ?? 0 });
          });
          return inboundAudio.find((a) => a.packetsReceived > 0 && (a.audioLevel > 0 || a.totalAudioEnergy > 0)) ?? false;
        },
        null,
        { timeout: 5_000, polling: 100 },
      ));
      const audio = (await inbound.jsonValue()) as InboundAudio;
      assert.ok(audio.packetsReceived > 0 && (audio.audioLevel > 0 || audio.totalAudioEnergy > 0), `inbound audio: ${JSON.stringify(audio)}`);

      assert.equal(await page.textContent('#error'), '', 'the page shows no error');

      const released = allSessionsReleased(server, 5_000);
      released.catch(() => undefined); // awaited below; a failed click must not leave it unhandled
      await step('click Disconnect', page.click('#disconnect', { timeout: 5_000 }));
      await step('the server closes the session and releases its media', released);
      await step(
        '#state becomes "disconnected"',
        page.waitForFunction(() => document.querySelector('#state')?.textContent === 'disconnected', null, { timeout: 5_000 }),
      );
      assert.equal(await page.isEnabled('#connect'), true, 'Connect is enabled again');
      assert.equal(await page.textContent('#error'), '', 'the page shows no error after disconnecting');
    } catch (error) {
      console.error(`--- page log (${browser.log.length} lines) ---\n${browser.log.join('\n')}\n--- end of page log ---`);
      throw error;
    }
  });
});
