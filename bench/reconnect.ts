// Reconnect benchmark (issue: sessions survive bad networks). A real server (media workers) and
// werift clients whose media runs through the loopback impairment relay. Prints a table and writes
// bench/results/reconnect-latest.json.
//   detection delay       last packet the server received -> media loss detected (server clock)
//   blackout -> state     relay black-holed -> client sees `reconnecting`
//   restart -> media      client ICE-restart offer sent, after a blackout that killed the old pair,
//                         -> the server receives media again (session `reconnect` success)
//   full rejoin           socket and peer gone -> resume(media: new) + new offer -> `listening`
//   consecutive restarts  100 client restarts on one healthy session; each must be answered and
//                         media must keep reaching the server; history must be intact afterwards
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer } from '../tests/helpers/server.ts';
import { TestClient } from '../tests/helpers/werift-client.ts';
import { UdpRelay } from '../tests/helpers/udp-relay.ts';
import { speechPackets } from '../tests/helpers/audio.ts';
import type { Session } from '../server/session.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = QUICK ? 3 : 10;
const RESTARTS = QUICK ? 10 : 100;
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! * 10) / 10;
};
const hold = (ms: number) => new Promise((r) => setTimeout(r, ms));

function nextEvent<T extends unknown[]>(label: string, subscribe: (listener: (...args: T) => void) => () => void, predicate: (...args: T) => boolean, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${label}`));
    }, timeoutMs);
    const off = subscribe((...args) => {
      if (!predicate(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args);
    });
  });
}

async function main(): Promise<void> {
  const server = await startServer({ ECHO_END_SILENCE_MS: '400', ICE_RESTART_RETRY_MS: '1000' });
  const detection: number[] = [];
  const toState: number[] = [];
  const restartToMedia: number[] = [];
  const rejoin: number[] = [];
  let consecutive = { attempted: 0, succeeded: 0, historyIntact: false, p50Ms: null as number | null, p95Ms: null as number | null };
  try {
    const relay = new UdpRelay({ seed: 99 });
    const client = await TestClient.connect(server.wsUrl, {}, {
      rewriteRemote: (t) => (t.includes('\r\n') ? relay.rewriteSdp(t) : relay.rewriteCandidate(t)),
      rewriteLocal: (l) => relay.rewriteClientCandidate(l),
    });
    const session = server.sessions.get(client.sessionId)!;
    const onSession = <K extends 'medialost' | 'reconnect'>(event: K) => (listener: (...args: never[]) => void) => {
      const wrapped = (s: Session, ...rest: unknown[]) => s === session && (listener as (...a: unknown[]) => void)(...rest);
      server.sessions.on(event, wrapped as never);
      return () => server.sessions.off(event, wrapped as never);
    };

    for (let round = 0; round < ROUNDS; round++) {
      const lost = nextEvent<[number]>('media loss', onSession('medialost'), () => true, 5000);
      const state = client.next((m) => m.type === 'state' && m.state === 'reconnecting', 5000);
      const serverOffer = client.next((m) => m.type === 'offer', 5000);
      const t0 = performance.now();
      relay.blackhole(true);
      const reconnecting = await state;
      if (process.env.BENCH_DEBUG) console.log('round', round, JSON.stringify(reconnecting));
      toState.push(performance.now() - t0);
      detection.push((await lost)[0]);
      await serverOffer; // the server restarts ICE itself (and the client answers it)
      await hold(300); // the blackout outlives the server's restart checks, so the old pair is gone
      const recovered = nextEvent<[{ success: boolean }]>('recovery', onSession('reconnect'), (o) => o.success, 10_000);
      relay.blackhole(false);
      const start = performance.now();
      await client.restartIce();
      await recovered;
      restartToMedia.push(performance.now() - start);
      await client.waitFor((m) => m.type === 'state' && m.state === 'listening', 5000);
    }

    // 100 restarts on a healthy session.
    const turn = client.next((m) => m.type === 'turn', 20_000);
    await client.speak(speechPackets(0).packets);
    await turn;
    const durations: number[] = [];
    for (let i = 0; i < RESTARTS; i++) {
      consecutive.attempted++;
      const received = await packetsFor(server);
      const start = performance.now();
      try {
        await client.restartIce();
        // Media still reaches the server after the restart (its counters grow).
        const deadline = Date.now() + 3000;
        while ((await packetsFor(server)) <= received + 5) {
          if (Date.now() > deadline) throw new Error('no media after restart');
        }
        durations.push(performance.now() - start);
        consecutive.succeeded++;
      } catch {
        /* counted as a failure */
      }
    }
    const after = client.next((m) => m.type === 'turn', 20_000);
    await client.speak(speechPackets(0).packets);
    await after;
    consecutive.historyIntact = JSON.stringify(session.history.map((t) => t.index)) === JSON.stringify(session.history.map((_, i) => i)) && session.history.length >= 2;
    consecutive = { ...consecutive, p50Ms: pct(durations, 0.5), p95Ms: pct(durations, 0.95) };
    await client.close();
    await relay.close();

    // Full rejoin: the app restarts (socket and peer gone).
    for (let round = 0; round < ROUNDS; round++) {
      const c = await TestClient.connect(server.wsUrl);
      c.stopMic();
      c.dropSocket();
      await c.pc?.close();
      const start = performance.now();
      await c.resume('new');
      await c.waitFor((m) => m.type === 'state' && m.state === 'listening' && m.reason === 'recovered', 10_000);
      rejoin.push(performance.now() - start);
      await c.close();
    }
  } finally {
    await server.close();
  }

  const result = {
    at: new Date().toISOString(),
    rounds: ROUNDS,
    detectionDelayMs: { p50: pct(detection, 0.5), p95: pct(detection, 0.95), note: 'last packet received -> loss detected; MEDIA_TIMEOUT_MS default 800' },
    blackoutToReconnectingStateMs: { p50: pct(toState, 0.5), p95: pct(toState, 0.95) },
    restartOfferToMediaMs: { p50: pct(restartToMedia, 0.5), p95: pct(restartToMedia, 0.95), target: { p95: 300 } },
    fullRejoinMs: { p50: pct(rejoin, 0.5), p95: pct(rejoin, 0.95), target: { max: 1000 } },
    consecutiveRestarts: consecutive,
  };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(`${RESULTS}reconnect-latest.json`, JSON.stringify(result, null, 2));
  const rows: [string, string, string][] = [
    ['detection delay (ms)', `${result.detectionDelayMs.p50} / ${result.detectionDelayMs.p95}`, 'MEDIA_TIMEOUT_MS (800) + tick'],
    ['blackout -> reconnecting state (ms)', `${result.blackoutToReconnectingStateMs.p50} / ${result.blackoutToReconnectingStateMs.p95}`, '<= 1000'],
    ['ICE-restart offer -> media (ms)', `${result.restartOfferToMediaMs.p50} / ${result.restartOfferToMediaMs.p95}`, 'p95 <= 300'],
    ['full rejoin (ms)', `${result.fullRejoinMs.p50} / ${result.fullRejoinMs.p95}`, '<= 1000'],
    [`${RESTARTS} consecutive restarts`, `${consecutive.succeeded}/${consecutive.attempted} ok, history ${consecutive.historyIntact ? 'intact' : 'BROKEN'}, p50 ${consecutive.p50Ms} p95 ${consecutive.p95Ms} ms`, '100% ok, history intact'],
  ];
  console.log('\nreconnect benchmark (p50 / p95)');
  for (const [k, v, t] of rows) console.log(`  ${k.padEnd(38)} ${v.padEnd(48)} target ${t}`);
  console.log(`\nwritten: ${RESULTS}reconnect-latest.json`);
}

async function packetsFor(server: Awaited<ReturnType<typeof startServer>>): Promise<number> {
  const stats = await server.media.stats();
  return stats.reduce((s, w) => s + w.packets.received, 0);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
