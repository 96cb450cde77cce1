// The real process entry exporting OTLP to an in-test receiver after a real session; an unreachable
// collector; health and readiness; drain on SIGTERM with live sessions; a second signal.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServerProcess } from '../helpers/server-process.ts';
import { OtlpReceiver } from '../helpers/otlp-receiver.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { encodePackets, speechPackets } from '../helpers/audio.ts';
import { fliteSpeech } from '../helpers/flite-speech.ts';
import { METRIC } from '../../telemetry/instruments.ts';
import { readFileSync } from 'node:fs';
import { describeInstruments, prometheusSeriesNames } from '../helpers/prometheus-names.ts';
import { promqlNames } from '../helpers/promql.ts';

/** Metric names used by the Grafana dashboard's queries (collector naming). */
function dashboardMetricNames(): Set<string> {
  const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana/dashboards/voice-server.json', import.meta.url), 'utf8'));
  const names = new Set<string>();
  const visit = (panels: { targets?: { expr?: string }[]; panels?: unknown[] }[] = []) => {
    for (const panel of panels) {
      for (const t of panel.targets ?? []) if (t.expr) for (const n of promqlNames(t.expr).metrics) names.add(n);
      visit(panel.panels as never);
    }
  };
  visit(dashboard.panels);
  return names;
}

describe('OpenTelemetry export', () => {
  it('exports session, turn and packet metrics and turn spans with children; counts match the session', async () => {
    const receiver = new OtlpReceiver();
    const endpoint = await receiver.start();
    const server = await startServerProcess({
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_METRIC_EXPORT_INTERVAL: '300',
      ENABLE_TRACING: 'true',
      ECHO_END_SILENCE_MS: '400',
    });
    try {
      const client = await TestClient.connect(server.wsUrl, { room: 'otel' });
      for (let i = 0; i < 2; i++) {
        const turn = client.next((m) => m.type === 'turn', 20_000);
        await client.speak(speechPackets(0).packets);
        await turn;
      }
      const sessionId = client.sessionId;
      await client.close();

      const sum = (name: string, filter: (a: Record<string, unknown>) => boolean = () => true) =>
        (receiver.latest(name)?.points ?? []).filter((p) => filter(p.attributes)).reduce((s, p) => s + (p.count ?? p.value), 0);
      await receiver.until(() => sum(METRIC.sessionsClosed) === 1 && sum(METRIC.turns) === 2 && receiver.spans.filter((s) => s.name === 'voice.turn').length === 2);

      assert.equal(sum(METRIC.sessionsCreated), 1);
      assert.equal(sum(METRIC.sessionsClosed, (a) => a.reason === 'client_left'), 1);
      assert.equal(sum(METRIC.turns, (a) => a['voice.session.mode'] === 'echo'), 2);
      const latency = receiver.latest(METRIC.turnLatency)!;
      assert.equal(latency.unit, 's');
      assert.equal(latency.kind, 'histogram');
      assert.equal(latency.points.reduce((s, p) => s + (p.count ?? 0), 0), 2, 'one latency sample per turn');
      const received = sum(METRIC.packetsReceived);
      assert.ok(received > 200, `packets received ${received}`);
      assert.ok(receiver.latest(METRIC.packetsReceived)!.points.every((p) => typeof p.attributes['voice.worker'] === 'number'), 'worker attribute');
      const active = receiver.latest(METRIC.sessionsActive)!;
      assert.equal(active.unit, '{session}');
      assert.ok(active.points.some((p) => p.attributes.state === 'listening'));
      const lag = receiver.latest(METRIC.eventLoopLag)!;
      const threads = new Set(lag.points.map((p) => p.attributes.thread));
      assert.ok(threads.has('main') && threads.has('worker-0') && threads.has('worker-1'), `threads ${[...threads].join(',')}`);
      assert.ok(receiver.latest(METRIC.jitterBufferDelay), 'jitter buffer delay exported');
      assert.ok(receiver.latest(METRIC.rtt), 'RTT from RTCP exported');

      const turns = receiver.spans.filter((s) => s.name === 'voice.turn');
      assert.equal(turns.length, 2);
      for (const turn of turns) {
        assert.equal(turn.attributes['voice.session.id'], sessionId);
        assert.equal(turn.attributes['voice.room'], 'otel');
        assert.equal(typeof turn.attributes['voice.worker'], 'number');
        assert.equal(turn.attributes['voice.turn.user_text'], undefined, 'no transcript text without opt-in');
        const children = receiver.spans.filter((s) => s.parentSpanId === turn.spanId).map((s) => s.name).sort();
        assert.deepEqual(children, ['voice.turn.endpointing', 'voice.turn.playback', 'voice.turn.response_wait']);
        for (const c of receiver.spans.filter((s) => s.parentSpanId === turn.spanId)) {
          assert.equal(c.traceId, turn.traceId);
          assert.ok(c.startMs >= turn.startMs && c.endMs <= turn.endMs + 1, `${c.name} inside its turn`);
        }
      }
    } finally {
      server.kill();
      await server.exited;
      await receiver.close();
    }
  });

  it('an agent turn exports STT, agent and TTS latencies and their spans under the turn span', async () => {
    const receiver = new OtlpReceiver();
    const endpoint = await receiver.start();
    const server = await startServerProcess({
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_METRIC_EXPORT_INTERVAL: '300',
      ENABLE_TRACING: 'true',
      VOICE_DEFAULT_MODE: 'stt_tts',
      OTEL_RECORD_TRANSCRIPTS: 'true',
    });
    try {
      const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
      const turnMessage = client.next((m) => m.type === 'turn', 30_000);
      await client.speak(encodePackets(await fliteSpeech('what time is it', 200)));
      const message = await turnMessage;
      assert.ok(message.type === 'turn');
      const t = message.turn.timings;
      await client.close();

      const count = (name: string) => (receiver.latest(name)?.points ?? []).reduce((s, p) => s + (p.count ?? 0), 0);
      await receiver.until(() => count(METRIC.ttsLatency) === 1 && receiver.spans.some((s) => s.name === 'voice.tts'));
      for (const name of [METRIC.sttLatency, METRIC.agentLatency, METRIC.ttsLatency]) {
        const metric = receiver.latest(name)!;
        assert.equal(metric.unit, 's', name);
        assert.equal(count(name), 1, `${name}: one sample for the one turn`);
        assert.ok(metric.points.every((p) => p.attributes['voice.session.mode'] === 'stt_tts'), name);
      }
      // The worker's Silero judged the question's windows, in batches, and lost none.
      const total = (name: string) => (receiver.latest(name)?.points ?? []).reduce((s, p) => s + p.value, 0);
      await receiver.until(() => total(METRIC.vadWindows) > 0);
      // The question is ~1 s of speech: its open frames alone are ~30 windows.
      assert.ok(total(METRIC.vadWindows) >= 20, `${total(METRIC.vadWindows)} Silero windows`);
      assert.ok(total(METRIC.vadRuns) > 0 && total(METRIC.vadRuns) <= total(METRIC.vadWindows), 'runs of at least one window');
      assert.equal(total(METRIC.vadDroppedWindows), 0);
      assert.equal(total(METRIC.vadErrors), 0);
      // Each run takes some time, and a second of runs for a 1 s question would be far too slow.
      assert.ok(total(METRIC.vadRunTime) > 0 && total(METRIC.vadRunTime) < 1, `${total(METRIC.vadRunTime)} s in Silero runs`);
      assert.equal(receiver.latest(METRIC.vadRunTime)!.unit, 's');
      // Every window waits at least until the task after its own, and a lone talker's far less than
      // the longest batch window (32 ms) on average.
      assert.ok(total(METRIC.vadWaitTime) > 0 && total(METRIC.vadWaitTime) < total(METRIC.vadWindows) * 0.032, `${total(METRIC.vadWaitTime)} s waited`);
      assert.equal(receiver.latest(METRIC.vadWaitTime)!.unit, 's');
      assert.ok(receiver.latest(METRIC.vadWindows)!.points.every((p) => typeof p.attributes['voice.worker'] === 'number'), 'per worker');
      // The exported STT latency is the turn's own end of turn -> final transcript.
      const sttSum = receiver.latest(METRIC.sttLatency)!.points.reduce((s, p) => s + (p.sum ?? 0), 0);
      assert.ok(Math.abs(sttSum * 1000 - (t.sttFinalAt! - t.endOfTurnAt)) < 2, `stt ${sttSum} s vs timings ${t.sttFinalAt! - t.endOfTurnAt} ms`);

      const turn = receiver.spans.find((s) => s.name === 'voice.turn')!;
      assert.equal(turn.attributes['voice.turn.user_text'], message.turn.userText, 'transcripts in spans with the opt-in');
      const children = receiver.spans.filter((s) => s.parentSpanId === turn.spanId);
      const byName = new Map(children.map((c) => [c.name, c]));
      for (const name of ['voice.stt', 'voice.agent', 'voice.tts', 'voice.turn.endpointing', 'voice.turn.response_wait', 'voice.turn.playback']) {
        assert.ok(byName.has(name), `${name} under voice.turn (have ${[...byName.keys()].join(', ')})`);
      }
      const stt = byName.get('voice.stt')!;
      const agent = byName.get('voice.agent')!;
      const tts = byName.get('voice.tts')!;
      assert.ok(stt.endMs <= agent.startMs + 1 && agent.endMs <= tts.startMs + 1, 'stt, then agent, then tts');
    } finally {
      server.kill();
      await server.exited;
      await receiver.close();
    }
  });

  it('keeps serving when the collector is unreachable, and logs the failure once per interval', async () => {
    const server = await startServerProcess({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_METRIC_EXPORT_INTERVAL: '200', ENABLE_TRACING: 'true' });
    try {
      const client = await TestClient.connect(server.wsUrl);
      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 200);
      await client.close();
      // The failure is logged, but not per data point: at most one line per interval.
      const isFailure = (l: Record<string, unknown>) => l.msg === 'telemetry export failed; the server keeps serving';
      await server.waitForLog(isFailure);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'still serving after the failure');
      const failures = server.logs.filter(isFailure);
      const uptimeMs = Date.now() - (server.logs[0]!.time as number);
      assert.ok(failures.length <= uptimeMs / 200 + 2, `${failures.length} failure lines in ${uptimeMs} ms`);
      assert.ok(!JSON.stringify(server.logs).includes('Authorization'), 'no headers in logs');
    } finally {
      server.kill();
      await server.exited;
    }
  });
});

describe('Prometheus scrape', () => {
  it('serves /metrics, and every metric the dashboard queries is really exported after a session', async () => {
    const server = await startServerProcess({ PROMETHEUS_METRICS: 'true', ECHO_END_SILENCE_MS: '400', SESSION_RECONNECT_WINDOW_MS: '1000' });
    let client: TestClient | undefined;
    try {
      client = await TestClient.connect(server.wsUrl);
      const turn = client.next((m) => m.type === 'turn', 20_000);
      await client.speak(speechPackets(0).packets);
      await turn;
      // A reconnect outcome (the window runs out) and an error, so those series exist too.
      client.stopMic();
      client.dropSocket();
      const bad = await TestClient.open(server.wsUrl);
      await bad.expectError('{nope');
      await bad.close();
      let text = '';
      const deadline = Date.now() + 15_000;
      // Poll the scrape endpoint (what Prometheus does) until the session's end shows up.
      while (!/voice_sessions_closed_total\{[^}]*reason="reconnect_timeout"/.test(text)) {
        if (Date.now() > deadline) throw new Error(`session end never exported:\n${text.slice(0, 2000)}`);
        const response = await fetch(`${server.url}/metrics`);
        assert.equal(response.status, 200);
        text = await response.text();
      }
      const scraped = new Set([...text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )/gm)].map((m) => m[1]!));
      // Map each dashboard name (collector naming) to its instrument, then to the in-process name.
      const instruments = describeInstruments();
      const notInEchoMode = new Set([METRIC.sttLatency, METRIC.agentLatency, METRIC.ttsLatency]);
      const missing: string[] = [];
      for (const name of dashboardMetricNames()) {
        const instrument = instruments.find((d) => prometheusSeriesNames(d, 'collector').includes(name));
        assert.ok(instrument, `dashboard metric ${name} matches no instrument`);
        if (notInEchoMode.has(instrument.name as never)) continue;
        const series = prometheusSeriesNames(instrument, 'in-process')[prometheusSeriesNames(instrument, 'collector').indexOf(name)]!;
        if (!scraped.has(series)) missing.push(`${name} (scraped as ${series})`);
      }
      assert.deepEqual(missing, [], 'dashboard metrics absent from a real scrape');
    } finally {
      await client?.close();
      server.kill();
      await server.exited;
    }
  });
});

describe('health, readiness and drain', () => {
  it('drains on SIGTERM: readiness fails, joins are refused, clients are told, sessions end cleanly, history is flushed, exit 0', async () => {
    const server = await startServerProcess({ DRAIN_TIMEOUT_MS: '1500', ECHO_END_SILENCE_MS: '400', REDIS_URL: 'redis://127.0.0.1:6379' });
    try {
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      const ready = (await (await fetch(`${server.url}/readyz`)).json()) as { ready: boolean; reasons: string[] };
      assert.deepEqual(ready, { ...ready, ready: true, reasons: [] });

      const client = await TestClient.connect(server.wsUrl);
      const turn = client.next((m) => m.type === 'turn', 20_000);
      await client.speak(speechPackets(0).packets);
      await turn;
      const token = client.resumeToken;
      const sessionId = client.sessionId;

      const told = client.next((m) => m.type === 'draining');
      server.child.kill('SIGTERM');
      await told;
      const notReady = await fetch(`${server.url}/readyz`);
      assert.equal(notReady.status, 503);
      assert.ok(((await notReady.json()) as { reasons: string[] }).reasons.includes('draining'));
      const late = await TestClient.open(server.wsUrl);
      const refusal = await late.expectError({ type: 'join' });
      assert.equal(refusal.code, 'SERVER_ERR_DRAINING');
      assert.equal(refusal.retryable, true);

      // The live session runs until the deadline, then ends with a retryable shutdown error.
      const shutdown = await client.waitFor((m) => m.type === 'error' && m.code === 'SERVER_ERR_SHUTDOWN', 10_000);
      assert.ok(shutdown.type === 'error' && shutdown.retryable);
      assert.equal((await client.waitClose()).code, 1000);
      assert.deepEqual(await server.exited, { code: 0, signal: null });

      // Flushed: the history is in Redis, readable by another server instance.
      const { RedisSessionStore } = await import('../../server/session-store.ts');
      const store = new RedisSessionStore('redis://127.0.0.1:6379', 60_000);
      try {
        const record = await store.getSession(sessionId);
        assert.equal(record?.closeReason, 'server_shutdown');
        assert.deepEqual((await store.turns(sessionId)).map((t) => t.index), [0]);
        const { hashToken } = await import('../../server/session.ts');
        assert.equal(record?.resumeTokenHash, hashToken(token));
      } finally {
        await store.close();
      }
      await client.close();
      await late.close();
    } finally {
      server.kill();
    }
  });

  it('exits at once on a second signal', async () => {
    const server = await startServerProcess({ DRAIN_TIMEOUT_MS: '60000' });
    const client = await TestClient.connect(server.wsUrl);
    try {
      const told = client.next((m) => m.type === 'draining');
      server.child.kill('SIGTERM');
      await told;
      server.child.kill('SIGTERM');
      const exit = await server.exited;
      assert.equal(exit.code, 1);
    } finally {
      server.kill();
      await client.close();
    }
  });
});
