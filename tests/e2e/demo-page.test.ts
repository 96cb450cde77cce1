// The demo page in real Chromium against a real server, in echo mode (chosen on the page): the fake
// microphone plays the speech fixture, the server hears the utterance end and echoes it, the page
// lists the turn, and Disconnect ends the session on the server. Then the same session through an
// ICE restart and lost WebSockets: the client resumes it, and the turn list stays whole.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Page, WebSocket as PageWebSocket } from 'playwright-core';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { EMBEDDED_AUTH_ENV } from '../helpers/auth.ts';
import { launchChromium, type ChromiumSession } from '../helpers/chromium.ts';
import { SPEECH_WAV } from '../helpers/audio.ts';
import type { ConversationTurn } from '../../server/session-types.ts';
import type { ClientMessage, ServerMessage } from '../../signaling/protocol.ts';

interface InboundAudio {
  packetsReceived: number;
  totalAudioEnergy: number;
  audioLevel: number;
}

/** What the test reads from `window.voiceClient`, the demo page's public handle. */
interface PageVoiceClient {
  turns: ConversationTurn[];
  sessionId: string | null;
  getStats(): Promise<RTCStatsReport>;
  on(event: string, listener: (info: unknown) => void): unknown;
  simulateNetworkDrop(options?: { offline?: PromiseLike<unknown>; loseMedia?: boolean }): void;
}

/** A client event seen by the page, with the browser's wall clock at that moment. */
interface ClientEvent {
  type: 'reconnecting' | 'reconnected' | 'resumed';
  at: number;
  info: unknown;
}

/** The page's window as the resume test drives it. */
type TestWindow = Window & {
  voiceClient: PageVoiceClient;
  clientEvents: ClientEvent[];
  networkBack?: () => void;
};

/** Every signaling message the page sent and received, per WebSocket, in order. */
class WireLog {
  readonly sockets: { ws: PageWebSocket; sent: ClientMessage[]; received: ServerMessage[] }[] = [];

  constructor(page: Page) {
    page.on('websocket', (ws: PageWebSocket) => {
      const socket = { ws, sent: [] as ClientMessage[], received: [] as ServerMessage[] };
      this.sockets.push(socket);
      const parse = (payload: string | Buffer): unknown => {
        try {
          return JSON.parse(String(payload));
        } catch {
          return null;
        }
      };
      ws.on('framesent', (f) => socket.sent.push(parse(f.payload) as ClientMessage));
      ws.on('framereceived', (f) => socket.received.push(parse(f.payload) as ServerMessage));
    });
  }

  sent<T extends ClientMessage['type']>(type: T): Extract<ClientMessage, { type: T }>[] {
    return this.sockets.flatMap((s) => s.sent.filter((m): m is Extract<ClientMessage, { type: T }> => m?.type === type));
  }

  received<T extends ServerMessage['type']>(type: T): Extract<ServerMessage, { type: T }>[] {
    return this.sockets.flatMap((s) => s.received.filter((m): m is Extract<ServerMessage, { type: T }> => m?.type === type));
  }
}

const iceUfrag = (sdp: string): string | undefined => /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1];

/** Sum of packetsReceived over the page's inbound audio streams. */
function inboundPackets(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const report = await (window as unknown as TestWindow).voiceClient.getStats();
    let packets = 0;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') packets += s.packetsReceived ?? 0;
    });
    return packets;
  });
}

/** Waits until the page has a turn whose speech started after `afterWallMs` (browser and server share the clock). */
async function turnStartedAfter(page: Page, afterWallMs: number, timeoutMs: number): Promise<ConversationTurn> {
  const handle = await page.waitForFunction(
    (after) => (window as unknown as TestWindow).voiceClient.turns.find((t) => t.timings.speechStartAt > after) ?? false,
    afterWallMs,
    { timeout: timeoutMs, polling: 100 },
  );
  return (await handle.jsonValue()) as ConversationTurn;
}

/** Waits for the first client event of `type` at or after `sinceWallMs` (browser and test share the clock). */
async function clientEvent(page: Page, type: ClientEvent['type'], sinceWallMs: number, timeoutMs: number): Promise<ClientEvent> {
  const handle = await page.waitForFunction(
    ([t, since]) => (window as unknown as TestWindow).clientEvents.find((e) => e.type === t && e.at >= since) ?? false,
    [type, sinceWallMs] as const,
    { timeout: timeoutMs, polling: 50 },
  );
  return (await handle.jsonValue()) as ClientEvent;
}

/** Resolves with the next turn the server records for `sessionId`. */
function serverTurn(server: RunningServer, sessionId: string, timeoutMs: number): Promise<ConversationTurn> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      server.sessions.off('turn', listener);
      reject(new Error(`no turn on the server within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (session: { id: string }, turn: ConversationTurn) => {
      if (session.id !== sessionId) return;
      clearTimeout(timer);
      server.sessions.off('turn', listener);
      resolve(turn);
    };
    server.sessions.on('turn', listener);
  });
}

/**
 * The page lists every turn once, in order (#0 .. #n-1), the same turns as `voiceClient.turns`, and
 * they are the server's history (which may be ahead by a turn still arriving).
 */
async function assertTurnListWhole(page: Page, server: RunningServer, sessionId: string, what: string): Promise<number> {
  const { listed, turnIds } = await page.evaluate(() => ({
    listed: Array.from(document.querySelectorAll('#turns > li'), (li) => li.textContent ?? ''),
    turnIds: (window as unknown as TestWindow).voiceClient.turns.map((t) => t.turnId),
  }));
  const indices = listed.map((text) => Number(/^#(\d+): /.exec(text)?.[1] ?? NaN));
  assert.deepEqual(indices, listed.map((_, i) => i), `${what}: #turns lists 0..n-1 once each: ${JSON.stringify(listed)}`);
  assert.equal(turnIds.length, listed.length, `${what}: the page lists exactly voiceClient.turns`);
  const history = server.sessions.get(sessionId)?.history ?? [];
  assert.ok(history.length >= turnIds.length, `${what}: server history ${history.length} < page ${turnIds.length}`);
  assert.deepEqual(turnIds, history.slice(0, turnIds.length).map((t) => t.turnId), `${what}: the page's turns are the server's`);
  return listed.length;
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
    const [launched, started] = await Promise.allSettled([launchChromium({ fakeAudioCapture: SPEECH_WAV }), startServer(EMBEDDED_AUTH_ENV)]);
    if (launched.status === 'fulfilled') browser = launched.value;
    if (started.status === 'fulfilled') server = started.value;
    if (launched.status === 'rejected') throw launched.reason;
    if (started.status === 'rejected') throw started.reason;
    assert.ok(browser && server);
    const { page } = browser;
    try {
      await step('open the demo page', page.goto(server.url, { timeout: 10_000 }));
      await step('select echo mode', page.selectOption('#mode', 'echo', { timeout: 5_000 }));
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
  let resumeServer: RunningServer | undefined;
  let resumeBrowser: ChromiumSession | undefined;
  after(async () => {
    await resumeBrowser?.close();
    await resumeServer?.close();
  });

  it('restarts ICE and resumes the session over new WebSockets, keeping every turn once', { timeout: 90_000 }, async () => {
    const [launched, started] = await Promise.allSettled([
      launchChromium({ fakeAudioCapture: SPEECH_WAV }),
      startServer({ ECHO_END_SILENCE_MS: '500', ...EMBEDDED_AUTH_ENV }),
    ]);
    if (launched.status === 'fulfilled') resumeBrowser = launched.value;
    if (started.status === 'fulfilled') resumeServer = started.value;
    if (launched.status === 'rejected') throw launched.reason;
    if (started.status === 'rejected') throw started.reason;
    const browser = resumeBrowser;
    const server = resumeServer;
    assert.ok(browser && server);
    const { page } = browser;
    const wire = new WireLog(page);
    let sessionsCreated = 0;
    server.sessions.on('sessioncreated', () => sessionsCreated++);
    const serverResumes: { success: boolean; cause: string }[] = [];
    server.sessions.on('reconnect', (_session, outcome) => serverResumes.push(outcome));
    try {
      await step('open the demo page', page.goto(server.url, { timeout: 10_000 }));
      await step('select echo mode', page.selectOption('#mode', 'echo', { timeout: 5_000 }));
      await step('click Connect', page.click('#connect', { timeout: 5_000 }));
      await step('window.voiceClient is set', page.waitForFunction(() => (window as unknown as TestWindow).voiceClient?.sessionId, null, { timeout: 10_000 }));
      await page.evaluate(() => {
        const w = window as unknown as TestWindow;
        w.clientEvents = [];
        for (const type of ['reconnecting', 'reconnected', 'resumed'] as const) {
          w.voiceClient.on(type, (info) => w.clientEvents.push({ type, at: Date.now(), info }));
        }
      });
      const sessionId = await page.evaluate(() => (window as unknown as TestWindow).voiceClient.sessionId);
      assert.ok(sessionId);
      const session = server.sessions.get(sessionId);
      assert.ok(session, 'the page\'s session is on the server');
      await step('the first turn is listed', page.locator('#turns > li').first().waitFor({ state: 'attached', timeout: 15_000 }));
      assert.equal(await page.textContent('#link'), 'ok');

      // (a) ICE restart while the socket stays up: a new offer with new ICE credentials, answered,
      // and audio keeps flowing both ways (the server hears a new utterance and echoes it).
      const offersBefore = wire.sent('offer');
      const answersBefore = wire.received('answer').length;
      const packetsBefore = await inboundPackets(page);
      const restartClicked = Date.now();
      await step('click Restart ICE', page.click('#restart-ice', { timeout: 5_000 }));
      const restarted = await step('the client reports the ICE restart recovered', clientEvent(page, 'reconnected', restartClicked, 10_000));
      assert.deepEqual((restarted.info as { causes: string[] }).causes, ['media']);
      const restartOffer = wire.sent('offer').at(-1);
      assert.ok(restartOffer && wire.sent('offer').length > offersBefore.length, 'a new offer was sent');
      assert.notEqual(iceUfrag(restartOffer.sdp), iceUfrag(offersBefore.at(-1)!.sdp), 'the offer carries new ICE credentials');
      assert.ok(wire.received('answer').length > answersBefore, 'the server answered the restart offer');
      const afterRestart = await step('a turn spoken after the restart', turnStartedAfter(page, restarted.at, 15_000));
      const expectedPackets = packetsBefore + Math.floor((afterRestart.agentAudioMs / 20) * 0.9);
      await step(`inbound packets grow past ${expectedPackets}`, page.waitForFunction(
        async (min) => {
          const report = await (window as unknown as TestWindow).voiceClient.getStats();
          let packets = 0;
          report.forEach((s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'audio') packets += s.packetsReceived ?? 0;
          });
          return packets >= min;
        },
        expectedPackets,
        { timeout: 5_000, polling: 100 },
      ));
      await step('#state returns to "listening"', page.waitForFunction(() => document.querySelector('#state')?.textContent === 'listening', null, { timeout: 10_000 }));
      assert.equal(await page.textContent('#link'), 'ok', 'an ICE restart alone is no resume');
      await assertTurnListWhole(page, server, sessionId, 'after the ICE restart');

      // (b) The WebSocket dies: the client resumes the same session on a new socket.
      const socketsBefore = wire.sockets.length;
      const dropClicked = Date.now();
      await step('click Simulate network drop', page.click('#simulate-drop', { timeout: 5_000 }));
      await step('#link shows "resumed"', page.waitForFunction(() => document.querySelector('#link')?.textContent === 'resumed', null, { timeout: 10_000 }));
      const dropped = await clientEvent(page, 'resumed', dropClicked, 1_000);
      assert.equal(wire.sockets.length, socketsBefore + 1, 'one new WebSocket');
      const oldSocket = wire.sockets[socketsBefore - 1]!.ws;
      if (!oldSocket.isClosed()) await step('the old WebSocket closes', oldSocket.waitForEvent('close', { timeout: 5_000 }));
      const firstMessage = wire.sockets[socketsBefore]!.sent.find((m) => m?.type !== 'ping');
      assert.equal(firstMessage?.type, 'resume', 'the new socket starts with resume, not join');
      const resumeMessage = firstMessage as Extract<ClientMessage, { type: 'resume' }>;
      assert.equal(resumeMessage.sessionId, sessionId);
      assert.equal(resumeMessage.media, 'keep');
      const resumed = wire.received('resumed')[0];
      assert.ok(resumed, 'the server answered with resumed');
      assert.equal(resumed.sessionId, sessionId);
      assert.equal(resumed.media, 'kept');
      assert.notEqual(resumed.resumeToken, resumeMessage.resumeToken, 'the token rotated');
      assert.equal(server.sessions.size, 1, 'still one session on the server');
      assert.equal(server.sessions.get(sessionId), session, 'the same session object');
      assert.equal(sessionsCreated, 1, 'no session was created besides the joined one');
      assert.ok(serverResumes.some((o) => o.success && o.cause === 'signaling'), `the server saw the resume: ${JSON.stringify(serverResumes)}`);
      assert.equal(await page.evaluate(() => (window as unknown as TestWindow).voiceClient.sessionId), sessionId);
      await step('a turn spoken after the resume', turnStartedAfter(page, dropped.at, 15_000));
      await step('#state returns to "listening"', page.waitForFunction(() => document.querySelector('#state')?.textContent === 'listening', null, { timeout: 10_000 }));
      await assertTurnListWhole(page, server, sessionId, 'after the resume');

      // (c) A longer outage: the server records a turn while the page is offline; the resume
      // brings it back as a missed turn, listed once, in its place.
      const offlineSince = Date.now();
      await page.evaluate(() => {
        const w = window as unknown as TestWindow;
        const back = new Promise<void>((resolve) => (w.networkBack = resolve));
        w.voiceClient.simulateNetworkDrop({ offline: back });
      });
      // Listening only now: every turn the server records from here on is one the page cannot get.
      const missed = await step('the server records a turn while the page is offline', serverTurn(server, sessionId, 20_000));
      const offlineTurns = await page.evaluate(() => (window as unknown as TestWindow).voiceClient.turns.map((t) => t.index));
      assert.ok(!offlineTurns.includes(missed.index), 'the page could not have received that turn');
      await page.evaluate(() => (window as unknown as TestWindow).networkBack?.());
      await step('the client resumes again', clientEvent(page, 'resumed', offlineSince, 10_000));
      const secondResume = wire.sent('resume').at(-1)!;
      assert.equal(secondResume.lastTurnIndex, offlineTurns.at(-1), 'resume names the last turn the page has');
      assert.equal(secondResume.resumeToken, resumed.resumeToken, 'the rotated token is used');
      const resumedAgain = wire.received('resumed').at(-1)!;
      assert.ok(resumedAgain.missedTurns.some((t) => t.turnId === missed.turnId), 'the server sent the turn as missed');
      await step('the missed turn is listed', page.waitForFunction((i) => document.querySelectorAll('#turns > li').length > i, missed.index, { timeout: 5_000 }));
      await assertTurnListWhole(page, server, sessionId, 'after the resume with a missed turn');

      // (d) The peer connection dies with the socket: the resume asks for new media, and a new peer
      // connection (same microphone, same <audio>) carries the session on.
      const lost = await page.evaluate(() => {
        (window as unknown as TestWindow).voiceClient.simulateNetworkDrop({ loseMedia: true });
        return Date.now();
      });
      await step('the client resumes with new media', clientEvent(page, 'resumed', lost, 10_000));
      assert.equal(wire.sent('resume').at(-1)!.media, 'new');
      assert.equal(wire.received('resumed').at(-1)!.media, 'new');
      await step('media recovers on the new peer connection', clientEvent(page, 'reconnected', lost, 10_000));
      const afterNewMedia = await step('a turn spoken on the new peer connection', turnStartedAfter(page, lost, 15_000));
      assert.ok(afterNewMedia.agentAudioMs > 0);
      assert.ok((await inboundPackets(page)) > 0, 'audio arrives on the new peer connection');
      await step('#state returns to "listening"', page.waitForFunction(() => document.querySelector('#state')?.textContent === 'listening', null, { timeout: 10_000 }));
      assert.equal(server.sessions.size, 1);
      assert.equal(server.sessions.get(sessionId), session);
      assert.equal(sessionsCreated, 1);
      await assertTurnListWhole(page, server, sessionId, 'after the resume with new media');
      assert.equal(await page.textContent('#error'), '', 'the page shows no error');

      const released = allSessionsReleased(server, 5_000);
      released.catch(() => undefined);
      await step('click Disconnect', page.click('#disconnect', { timeout: 5_000 }));
      await step('the server closes the session and releases its media', released);
    } catch (error) {
      console.error(`--- page log (${browser.log.length} lines) ---\n${browser.log.join('\n')}\n--- end of page log ---`);
      throw error;
    }
  });
});
