// Turns the session directory's and the media workers' events into metrics and spans. It only
// observes: nothing in sessions or media knows telemetry exists. Uses @opentelemetry/api only.
import { context, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInstruments, type Instruments } from './instruments.ts';
import { ATTR } from './attributes.ts';
import type { SessionManager } from '../server/session-manager.ts';
import type { MediaPool } from '../server/media-pool.ts';
import type { Session } from '../server/session.ts';
import type { ConversationTurn, SessionState } from '../server/session-types.ts';
import { SESSION_STATES } from '../server/session-types.ts';

export interface SessionTelemetryOptions {
  /** Put user/agent text into turn spans (off unless explicitly enabled). */
  recordTranscripts: boolean;
}

const SAMPLES_PER_CONCEALED_FRAME = 320; // 20 ms at 16 kHz

export class SessionTelemetry {
  readonly #instruments: Instruments;
  readonly #tracer: Tracer;
  readonly #options: SessionTelemetryOptions;
  readonly #workerLagMs = new Map<number, number>();
  readonly #mainLag = monitorEventLoopDelay({ resolution: 10 });
  /** Open reconnect spans, by session id. */
  readonly #outages = new Map<string, Span>();

  constructor(sessions: SessionManager, media: MediaPool, options: SessionTelemetryOptions) {
    this.#instruments = createInstruments();
    this.#tracer = trace.getTracer('voice-session-server');
    this.#options = options;
    this.#mainLag.enable();
    const i = this.#instruments;

    i.sessionsActive.addCallback((result) => {
      const counts = new Map<SessionState, number>(SESSION_STATES.map((s) => [s, 0]));
      for (const s of sessions.all()) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
      for (const [state, count] of counts) result.observe(count, { [ATTR.state]: state });
    });
    i.eventLoopLag.addCallback((result) => {
      if (this.#mainLag.count > 0) result.observe(this.#mainLag.percentile(99) / 1e9, { [ATTR.thread]: 'main' });
      this.#mainLag.reset();
      for (const [worker, ms] of this.#workerLagMs) result.observe(ms / 1000, { [ATTR.thread]: `worker-${worker}` });
    });

    // Counters start at zero for their known label sets, so rates and alerts work before the first
    // event (Prometheus convention).
    for (let worker = 0; worker < media.workerCount; worker++) {
      const attrs = { [ATTR.worker]: worker };
      i.packetsReceived.add(0, attrs);
      i.packetsLost.add(0, attrs);
      i.concealedSamples.add(0, attrs);
      i.fecRecovered.add(0, attrs);
      i.vadWindows.add(0, attrs);
      i.vadRuns.add(0, attrs);
      i.vadDroppedWindows.add(0, attrs);
      i.vadErrors.add(0, attrs);
      i.vadRunTime.add(0, attrs);
      i.vadWaitTime.add(0, attrs);
    }
    for (const reason of ['capacity', 'draining']) i.admissionRefusals.add(0, { [ATTR.reason]: reason });
    // One zero series per provider kind (without from/to: no switch has happened yet).
    for (const kind of ['stt', 'tts', 'agent', 's2s']) i.providerFallbacks.add(0, { [ATTR.providerKind]: kind });

    sessions.on('sessioncreated', (s) => i.sessionsCreated.add(1, { [ATTR.mode]: s.mode }));
    sessions.on('sessionclosed', (s, reason) => {
      i.sessionsClosed.add(1, { [ATTR.mode]: s.mode, [ATTR.reason]: reason });
      this.#outages.get(s.id)?.end();
      this.#outages.delete(s.id);
    });
    sessions.on('turn', (s, turn) => this.#onTurn(s, turn));
    sessions.on('medialost', (_s, detectionMs) => i.reconnectDetection.record(detectionMs / 1000));
    sessions.on('statechange', (s, state, previous) => {
      if (state === 'reconnecting' && !this.#outages.has(s.id)) {
        this.#outages.set(s.id, this.#tracer.startSpan('voice.reconnect', { attributes: { ...this.#sessionAttributes(s), 'voice.previous_state': previous } }));
      }
    });
    sessions.on('reconnect', (s, outcome) => {
      const attrs = { [ATTR.success]: outcome.success, [ATTR.cause]: outcome.cause };
      i.reconnectAttempts.add(1, attrs);
      i.reconnectDuration.record(outcome.durationMs / 1000, { [ATTR.success]: outcome.success });
      const span = this.#outages.get(s.id);
      if (span) {
        span.setAttributes({ ...attrs, 'voice.reconnect.duration_ms': outcome.durationMs });
        span.setStatus({ code: outcome.success ? 1 : 2 });
        span.end();
        this.#outages.delete(s.id);
      }
    });
    sessions.on('quality', (_s, q) => {
      if (q.rttMs !== null) i.rtt.record(q.rttMs / 1000);
      i.outboundBitrate.record(q.bitrate);
      i.jitter.record(q.jitterMs / 1000, { [ATTR.direction]: 'outbound' });
    });
    sessions.on('errorreported', (code) => i.errors.add(1, { [ATTR.errorType]: code }));
    sessions.on('refused', (reason) => i.admissionRefusals.add(1, { [ATTR.reason]: reason }));
    media.on('providerfallback', (info) => i.providerFallbacks.add(1, { [ATTR.providerKind]: info.kind, [ATTR.providerFrom]: info.from, [ATTR.providerTo]: info.to, [ATTR.reason]: info.reason }));

    media.on('telemetry', (report) => {
      const attrs = { [ATTR.worker]: report.workerIndex };
      const d = report.delta;
      if (d.received) i.packetsReceived.add(d.received, attrs);
      if (d.lost) i.packetsLost.add(d.lost, attrs);
      if (d.concealed) i.concealedSamples.add(d.concealed * SAMPLES_PER_CONCEALED_FRAME, attrs);
      if (d.fecRecovered) i.fecRecovered.add(d.fecRecovered, attrs);
      if (report.vad) {
        if (report.vad.windows) i.vadWindows.add(report.vad.windows, attrs);
        if (report.vad.runs) i.vadRuns.add(report.vad.runs, attrs);
        if (report.vad.droppedWindows) i.vadDroppedWindows.add(report.vad.droppedWindows, attrs);
        if (report.vad.errors) i.vadErrors.add(report.vad.errors, attrs);
        if (report.vad.runMs) i.vadRunTime.add(report.vad.runMs / 1000, attrs);
        if (report.vad.waitMs) i.vadWaitTime.add(report.vad.waitMs / 1000, attrs);
      }
      for (const s of report.sessions) {
        i.jitterBufferDelay.record(s.jitterBufferDelayMs / 1000, attrs);
        i.jitter.record(s.jitterMs / 1000, { ...attrs, [ATTR.direction]: 'inbound' });
      }
      this.#workerLagMs.set(report.workerIndex, report.eventLoopLagP99Ms);
    });
  }

  #sessionAttributes(s: Session): Attributes {
    return { [ATTR.sessionId]: s.id, [ATTR.mode]: s.mode, [ATTR.room]: s.room, [ATTR.worker]: s.workerIndex ?? -1 };
  }

  // A turn span from the start of speech to the last answer packet, with its phases as children.
  #onTurn(s: Session, turn: ConversationTurn): void {
    const i = this.#instruments;
    const t = turn.timings;
    i.turns.add(1, { [ATTR.mode]: turn.mode, [ATTR.interrupted]: turn.interrupted });
    if (t.firstPacketOutAt !== null) i.turnLatency.record((t.firstPacketOutAt - t.endOfTurnAt) / 1000, { [ATTR.mode]: turn.mode });

    const attributes: Attributes = { ...this.#sessionAttributes(s), [ATTR.turnIndex]: turn.index, [ATTR.interrupted]: turn.interrupted, 'voice.turn.user_audio_ms': turn.userAudioMs, 'voice.turn.heard_audio_ms': turn.heardAudioMs };
    if (this.#options.recordTranscripts) {
      if (turn.userText !== null) attributes[ATTR.userText] = turn.userText;
      if (turn.agentText !== null) attributes[ATTR.agentText] = turn.agentText;
    }
    const end = t.lastPacketOutAt ?? t.firstPacketOutAt ?? t.endOfTurnAt;
    const root = this.#tracer.startSpan('voice.turn', { startTime: t.speechStartAt, attributes });
    const parent = trace.setSpan(context.active(), root);
    const child = (name: string, from: number, to: number) => {
      this.#tracer.startSpan(name, { startTime: from, attributes: { [ATTR.sessionId]: s.id } }, parent).end(to);
    };
    child('voice.turn.endpointing', t.speechEndAt, t.endOfTurnAt);
    // Agent modes: where the wait for the answer went (speech-to-text, agent, text-to-speech).
    const stages: Array<[name: string, metric: 'sttLatency' | 'agentLatency' | 'ttsLatency', from: number | null | undefined, to: number | null | undefined]> = [
      ['voice.stt', 'sttLatency', t.endOfTurnAt, t.sttFinalAt],
      ['voice.agent', 'agentLatency', t.sttFinalAt, t.agentFirstTextAt],
      ['voice.tts', 'ttsLatency', t.agentFirstTextAt, t.ttsFirstAudioAt],
    ];
    for (const [name, metric, from, to] of stages) {
      if (from == null || to == null) continue;
      i[metric].record(Math.max(0, to - from) / 1000, { [ATTR.mode]: turn.mode });
      child(name, from, to);
    }
    if (t.firstPacketOutAt !== null) {
      child('voice.turn.response_wait', t.endOfTurnAt, t.firstPacketOutAt);
      child('voice.turn.playback', t.firstPacketOutAt, end);
    }
    root.end(end);
  }
}
