// Every metric instrument of the server, created in one place (units: s, By, {count}). Library code
// uses @opentelemetry/api only: with no SDK started these are no-ops and cost next to nothing.
import { metrics, type Meter } from '@opentelemetry/api';

/** Buckets that resolve 50 ms to 10 s (latencies of a voice turn). */
export const LATENCY_BUCKETS_S = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10];
/** Buckets for per-packet and network figures (1 ms to 1 s). */
export const NETWORK_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1];
export const BITRATE_BUCKETS = [6000, 8000, 12000, 16000, 24000, 32000, 48000, 64000];

export const METRIC = {
  sessionsActive: 'voice.sessions.active',
  sessionsCreated: 'voice.sessions.created',
  sessionsClosed: 'voice.sessions.closed',
  turns: 'voice.session.turns',
  turnLatency: 'voice.session.turn_latency',
  sttLatency: 'voice.session.stt_latency',
  agentLatency: 'voice.session.agent_latency',
  ttsLatency: 'voice.session.tts_latency',
  providerFallbacks: 'voice.provider.fallbacks',
  reconnectAttempts: 'voice.session.reconnect_attempts',
  reconnectDuration: 'voice.session.reconnect_duration',
  reconnectDetection: 'voice.session.reconnect_detection_delay',
  errors: 'voice.session.errors',
  admissionRefusals: 'voice.admission.refusals',
  jitterBufferDelay: 'rtc.jitter_buffer.delay',
  packetsReceived: 'rtc.packets.received',
  packetsLost: 'rtc.packets.lost',
  concealedSamples: 'rtc.concealed_samples',
  fecRecovered: 'rtc.fec_recovered',
  jitter: 'rtc.jitter',
  rtt: 'rtc.rtt',
  outboundBitrate: 'rtc.outbound.bitrate',
  eventLoopLag: 'media.worker.event_loop_lag',
  vadWindows: 'voice.vad.windows',
  vadRuns: 'voice.vad.runs',
  vadDroppedWindows: 'voice.vad.dropped_windows',
  vadErrors: 'voice.vad.errors',
  vadRunTime: 'voice.vad.run_time',
  vadWaitTime: 'voice.vad.wait_time',
} as const;

export function createInstruments(meter: Meter = metrics.getMeter('voice-session-server')) {
  return {
    sessionsActive: meter.createObservableGauge(METRIC.sessionsActive, { unit: '{session}', description: 'Open sessions by state' }),
    sessionsCreated: meter.createCounter(METRIC.sessionsCreated, { unit: '{session}', description: 'Sessions admitted' }),
    sessionsClosed: meter.createCounter(METRIC.sessionsClosed, { unit: '{session}', description: 'Sessions ended, by reason' }),
    turns: meter.createCounter(METRIC.turns, { unit: '{turn}', description: 'Conversation turns completed' }),
    turnLatency: meter.createHistogram(METRIC.turnLatency, { unit: 's', description: 'End of the user turn to the first answer packet sent', advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S } }),
    sttLatency: meter.createHistogram(METRIC.sttLatency, { unit: 's', description: 'End of turn (endpointing decided) to final transcript (stt_tts mode)', advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S } }),
    agentLatency: meter.createHistogram(METRIC.agentLatency, { unit: 's', description: 'Final transcript to first agent token (stt_tts mode)', advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S } }),
    ttsLatency: meter.createHistogram(METRIC.ttsLatency, { unit: 's', description: 'First agent text to first synthesized audio (stt_tts mode)', advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S } }),
    providerFallbacks: meter.createCounter(METRIC.providerFallbacks, { unit: '{fallback}', description: 'A provider chain moved on to its next provider (failure, timeout or open circuit)' }),
    reconnectAttempts: meter.createCounter(METRIC.reconnectAttempts, { unit: '{attempt}', description: 'Outages that ended, by success and cause' }),
    reconnectDuration: meter.createHistogram(METRIC.reconnectDuration, { unit: 's', description: 'Start of an outage to recovery (or giving up)', advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S } }),
    reconnectDetection: meter.createHistogram(METRIC.reconnectDetection, { unit: 's', description: 'Last inbound packet to media-loss detection', advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S } }),
    errors: meter.createCounter(METRIC.errors, { unit: '{error}', description: 'Errors reported to clients, by code' }),
    admissionRefusals: meter.createCounter(METRIC.admissionRefusals, { unit: '{join}', description: 'Joins refused, by reason' }),
    jitterBufferDelay: meter.createHistogram(METRIC.jitterBufferDelay, { unit: 's', description: 'Jitter-buffer target delay, sampled per session each second', advice: { explicitBucketBoundaries: NETWORK_BUCKETS_S } }),
    packetsReceived: meter.createCounter(METRIC.packetsReceived, { unit: '{packet}', description: 'Inbound RTP packets accepted by jitter buffers' }),
    packetsLost: meter.createCounter(METRIC.packetsLost, { unit: '{packet}', description: 'Inbound RTP packets that never arrived in time' }),
    concealedSamples: meter.createCounter(METRIC.concealedSamples, { unit: '{sample}', description: 'Samples synthesized by loss concealment (16 kHz)' }),
    fecRecovered: meter.createCounter(METRIC.fecRecovered, { unit: '{packet}', description: 'Lost packets recovered from in-band FEC' }),
    jitter: meter.createHistogram(METRIC.jitter, { unit: 's', description: 'Interarrival jitter: inbound (measured) and outbound (RTCP), sampled', advice: { explicitBucketBoundaries: NETWORK_BUCKETS_S } }),
    rtt: meter.createHistogram(METRIC.rtt, { unit: 's', description: 'Round-trip time from RTCP', advice: { explicitBucketBoundaries: NETWORK_BUCKETS_S } }),
    outboundBitrate: meter.createHistogram(METRIC.outboundBitrate, { unit: 'bit/s', description: 'Opus bitrate chosen for each session, sampled on receiver reports', advice: { explicitBucketBoundaries: BITRATE_BUCKETS } }),
    vadWindows: meter.createCounter(METRIC.vadWindows, { unit: '{window}', description: 'Silero VAD windows (32 ms) judged, per media worker' }),
    vadRuns: meter.createCounter(METRIC.vadRuns, { unit: '{run}', description: 'Batched Silero runs, per media worker (windows / runs = mean batch)' }),
    vadDroppedWindows: meter.createCounter(METRIC.vadDroppedWindows, { unit: '{window}', description: 'Silero windows dropped because the worker fell behind (a session had four waiting)' }),
    vadErrors: meter.createCounter(METRIC.vadErrors, { unit: '{run}', description: 'Silero runs that failed; their windows got no verdict' }),
    vadRunTime: meter.createCounter(METRIC.vadRunTime, { unit: 's', description: 'Time in Silero runs (on the media worker thread), per media worker' }),
    vadWaitTime: meter.createCounter(METRIC.vadWaitTime, { unit: 's', description: 'Time Silero windows waited for their batched run, summed over windows, per media worker (/ windows = the delay batching adds to a verdict)' }),
    eventLoopLag: meter.createObservableGauge(METRIC.eventLoopLag, { unit: 's', description: 'Event-loop delay p99 over the last interval, per thread' }),
  };
}

export type Instruments = ReturnType<typeof createInstruments>;
