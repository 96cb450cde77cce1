// The only reader of process.env. Validates every variable, fails with a message naming the bad one,
// and returns a frozen config. With no environment at all it runs the embedded default.
import type { IceServerInfo } from '../signaling/protocol.ts';
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import { readVoice, checkVoice, type VoiceConfig } from './voice-config.ts';
import { readAuthConfig, readLimitsConfig, type AuthConfig, type LimitsConfig } from './access-config.ts';

export interface Config {
  host: string;
  port: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  mediaWorkers: number;
  rtcPortRange: [number, number];
  rtcHostAddresses: string[];
  rtcAnnouncedAddress: string | null;
  /** STUN/TURN servers handed to clients (join message, WHIP Link headers); none by default. */
  iceServers: IceServerInfo[];
  maxSessions: number;
  idleTimeoutMs: number;
  maxSessionDurationMs: number;
  /** How long a session may stay `reconnecting` before it is closed. */
  reconnectWindowMs: number;
  /** No inbound RTP for this long (client not muted) marks the media path dead. */
  mediaTimeoutMs: number;
  /** After a server-initiated ICE restart, retry if media has not returned within this time. */
  iceRestartRetryMs: number;
  /** How long a closed session's history stays retrievable. */
  historyRetentionMs: number;
  /** Redis for session records and history; null = in memory. */
  redisUrl: string | null;
  maxMessageBytes: number;
  /** Protocol errors allowed per socket within `abuseWindowMs` before it is disconnected. */
  maxBadMessages: number;
  abuseWindowMs: number;
  joinTimeoutMs: number;
  echo: EchoConfig;
  telemetry: TelemetryConfig;
  /** SIGTERM/SIGINT: how long live sessions may go on before they are closed. */
  drainTimeoutMs: number;
  /** /readyz fails while the main thread's event-loop lag p99 is above this. */
  readyMaxLagMs: number;
  jitterBuffer: { minDelayMs: number; maxDelayMs: number };
  /** Rooms: participants per room, and how long an empty room is kept (its worker placement). */
  /** `agentListens`: the agent hears its designated participant only, or everyone (turns name the speaker). */
  rooms: { maxParticipants: number; emptyTimeoutMs: number; agentListens: 'designated' | 'all' };
  voice: VoiceConfig;
  /** Access tokens and the development mode (server/access-config.ts). */
  auth: AuthConfig;
  limits: LimitsConfig;
}

export interface EchoConfig {
  /** Silence after speech that ends an utterance. */
  endSilenceMs: number;
  /** Shortest utterance that is echoed (shorter ones are noise). */
  minSpeechMs: number;
  /** Longest utterance; longer speech is cut and echoed in parts. */
  maxUtteranceMs: number;
}

export interface TelemetryConfig {
  serviceName: string;
  /** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT); null = no OTLP export. */
  otlpEndpoint: string | null;
  /** OTEL_EXPORTER_OTLP_HEADERS, parsed; values are secrets and never logged. */
  otlpHeaders: Record<string, string>;
  metricsExporter: 'otlp' | 'none';
  tracesExporter: 'otlp' | 'none';
  metricExportIntervalMs: number;
  enableTracing: boolean;
  consoleExport: boolean;
  prometheus: boolean;
  /** Put transcript text into spans (off by default: it is user data). */
  recordTranscripts: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Readonly<Config> {
  const r = new EnvReader(env);
  const cores = availableParallelism();
  const config: Config = {
    host: r.string('HOST', '0.0.0.0', (v) => isIP(v) !== 0 || v === 'localhost' || 'must be an IP address or "localhost"'),
    port: r.int('PORT', 8080, 0, 65535),
    logLevel: r.oneOf('LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
    mediaWorkers: r.int('MEDIA_WORKERS', cores, 1, 64),
    rtcPortRange: r.portRange('RTC_PORT_RANGE', [40000, 49999]),
    rtcHostAddresses: r.addressList('RTC_HOST_ADDRESSES'),
    rtcAnnouncedAddress: r.optional('RTC_ANNOUNCED_ADDRESS', (v) => isIP(v) === 4 || 'must be an IPv4 address'),
    iceServers: readIceServers(r),
    maxSessions: r.int('MAX_SESSIONS', 500, 1, 100_000),
    idleTimeoutMs: r.int('SESSION_IDLE_TIMEOUT_MS', 120_000, 100, 86_400_000),
    maxSessionDurationMs: r.int('SESSION_MAX_DURATION_MS', 3_600_000, 1000, 7 * 86_400_000),
    reconnectWindowMs: r.int('SESSION_RECONNECT_WINDOW_MS', 30_000, 100, 3_600_000),
    mediaTimeoutMs: r.int('MEDIA_TIMEOUT_MS', 800, 200, 60_000),
    iceRestartRetryMs: r.int('ICE_RESTART_RETRY_MS', 2000, 200, 60_000),
    historyRetentionMs: r.int('SESSION_HISTORY_RETENTION_MS', 3_600_000, 1000, 30 * 86_400_000),
    redisUrl: r.optional('REDIS_URL', (v) => /^rediss?:\/\/.+/.test(v) || 'must be a redis:// or rediss:// URL'),
    maxMessageBytes: r.int('SIGNAL_MAX_MESSAGE_BYTES', 64 * 1024, 1024, 1024 * 1024),
    maxBadMessages: r.int('SIGNAL_MAX_BAD_MESSAGES', 10, 1, 10_000),
    abuseWindowMs: r.int('SIGNAL_ABUSE_WINDOW_MS', 10_000, 100, 3_600_000),
    joinTimeoutMs: r.int('SIGNAL_JOIN_TIMEOUT_MS', 10_000, 100, 600_000),
    echo: {
      endSilenceMs: r.int('ECHO_END_SILENCE_MS', 600, 100, 5000),
      minSpeechMs: r.int('ECHO_MIN_SPEECH_MS', 200, 20, 5000),
      maxUtteranceMs: r.int('ECHO_MAX_UTTERANCE_MS', 15_000, 1000, 60_000),
    },
    telemetry: {
      serviceName: r.string('OTEL_SERVICE_NAME', 'voice-session-server'),
      otlpEndpoint: r.optional('OTEL_EXPORTER_OTLP_ENDPOINT', (v) => /^https?:\/\/[^\s]+$/.test(v) || 'must be an http(s) URL'),
      otlpHeaders: r.headers('OTEL_EXPORTER_OTLP_HEADERS'),
      metricsExporter: r.oneOf('OTEL_METRICS_EXPORTER', 'otlp', ['otlp', 'none'] as const),
      tracesExporter: r.oneOf('OTEL_TRACES_EXPORTER', 'otlp', ['otlp', 'none'] as const),
      metricExportIntervalMs: r.int('OTEL_METRIC_EXPORT_INTERVAL', 60_000, 100, 3_600_000),
      enableTracing: r.bool('ENABLE_TRACING', false),
      consoleExport: r.bool('OTEL_CONSOLE_EXPORT', false),
      prometheus: r.bool('PROMETHEUS_METRICS', false),
      recordTranscripts: r.bool('OTEL_RECORD_TRANSCRIPTS', false),
    },
    drainTimeoutMs: r.int('DRAIN_TIMEOUT_MS', 30_000, 0, 3_600_000),
    readyMaxLagMs: r.int('READY_MAX_EVENT_LOOP_LAG_MS', 200, 1, 60_000),
    jitterBuffer: {
      minDelayMs: r.int('JITTER_MIN_DELAY_MS', 0, 0, 1000),
      maxDelayMs: r.int('JITTER_MAX_DELAY_MS', 200, 20, 2000),
    },
    rooms: {
      maxParticipants: r.int('ROOM_MAX_PARTICIPANTS', 10, 1, 100),
      emptyTimeoutMs: r.int('ROOM_EMPTY_TIMEOUT_MS', 30_000, 0, 86_400_000),
      agentListens: r.oneOf('ROOM_AGENT_LISTENS', 'designated', ['designated', 'all'] as const),
    },
    voice: readVoice(r),
    auth: readAuthConfig(r),
    limits: readLimitsConfig(r),
  };
  checkVoice(r, config.voice);
  if (config.jitterBuffer.minDelayMs > config.jitterBuffer.maxDelayMs) {
    r.fail('JITTER_MIN_DELAY_MS', 'must not exceed JITTER_MAX_DELAY_MS');
  }
  r.throwIfInvalid();
  return deepFreeze(config);
}

export class EnvReader {
  readonly #env: Env;
  readonly #problems: string[] = [];

  constructor(env: Env) {
    this.#env = env;
  }

  fail(name: string, problem: string): void {
    this.#problems.push(`${name}=${JSON.stringify(this.#env[name] ?? '')}: ${problem}`);
  }

  throwIfInvalid(): void {
    if (this.#problems.length > 0) {
      throw new ConfigError(`invalid configuration:\n  ${this.#problems.join('\n  ')}`);
    }
  }

  #raw(name: string): string | undefined {
    const value = this.#env[name]?.trim();
    return value === '' ? undefined : value;
  }

  string(name: string, fallback: string, check?: (v: string) => true | string): string {
    const value = this.#raw(name);
    if (value === undefined) return fallback;
    const verdict = check ? check(value) : true;
    if (verdict !== true) {
      this.fail(name, verdict);
      return fallback;
    }
    return value;
  }

  optional(name: string, check: (v: string) => true | string): string | null {
    const value = this.#raw(name);
    if (value === undefined) return null;
    const verdict = check(value);
    if (verdict !== true) {
      this.fail(name, verdict);
      return null;
    }
    return value;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.#raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value)) {
      this.fail(name, 'must be an integer');
      return fallback;
    }
    const n = Number(value);
    if (n < min || n > max) {
      this.fail(name, `must be between ${min} and ${max}`);
      return fallback;
    }
    return n;
  }

  oneOf<const T extends readonly string[]>(name: string, fallback: T[number], allowed: T): T[number] {
    const value = this.#raw(name);
    if (value === undefined) return fallback;
    if (!allowed.includes(value)) {
      this.fail(name, `must be one of ${allowed.join(', ')}`);
      return fallback;
    }
    return value as T[number];
  }

  /** A secret: checked for shape only; never echoed in errors. */
  secret(name: string): string | null {
    const value = this.#raw(name);
    if (value === undefined) return null;
    if (/\s/.test(value) || value.length > 4096) {
      this.#problems.push(`${name}: must be a single token without spaces (value not shown: it is a secret)`);
      return null;
    }
    return value;
  }

  isSet(name: string): boolean {
    return this.#raw(name) !== undefined;
  }

  /** A key or secret that may span lines (PEM). Checked by `check`; the value is never echoed. */
  secretKey(name: string, check: (v: string) => true | string): string | null {
    const value = this.#raw(name);
    if (value === undefined) return null;
    const verdict = check(value);
    if (verdict === true) return value;
    this.#problems.push(`${name}: ${verdict} (value not shown: it may be a secret)`);
    return null;
  }

  url(name: string, fallback: string): string {
    return this.string(name, fallback, (v) => /^(https?|wss?):\/\/[^\s]+$/.test(v) || 'must be an http(s) or ws(s) URL');
  }

  /** Comma-separated, each a member of `allowed`, no duplicates, at least one. */
  list<const T extends readonly string[]>(name: string, fallback: T[number][], allowed: T): T[number][] {
    const value = this.#raw(name);
    if (value === undefined) return fallback;
    const items = value.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = items.filter((i) => !allowed.includes(i));
    if (items.length === 0 || bad.length > 0 || new Set(items).size !== items.length) {
      this.fail(name, `must be a comma-separated list of distinct values from: ${allowed.join(', ')}`);
      return fallback;
    }
    return items as T[number][];
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.#raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (['true', '1', 'yes', 'on'].includes(value)) return true;
    if (['false', '0', 'no', 'off'].includes(value)) return false;
    this.fail(name, 'must be true or false');
    return fallback;
  }

  /** W3C-baggage-like "key=value,key2=value2" (the OTel headers format). Values are not echoed. */
  headers(name: string): Record<string, string> {
    const value = this.#raw(name);
    if (value === undefined) return {};
    const out: Record<string, string> = {};
    for (const part of value.split(',')) {
      const i = part.indexOf('=');
      if (i <= 0) {
        this.#problems.push(`${name}: must be "key=value,..." (value not shown: it may hold a secret)`);
        return {};
      }
      out[decodeURIComponent(part.slice(0, i).trim())] = decodeURIComponent(part.slice(i + 1).trim());
    }
    return out;
  }

  portRange(name: string, fallback: [number, number]): [number, number] {
    const value = this.#raw(name);
    if (value === undefined) return fallback;
    const m = /^(\d+)-(\d+)$/.exec(value);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m ? Number(m[2]) : NaN;
    if (!m || lo < 1024 || hi > 65535 || lo > hi) {
      this.fail(name, 'must be "LOW-HIGH" with 1024 <= LOW <= HIGH <= 65535');
      return fallback;
    }
    return [lo, hi];
  }

  /** "auto" (or unset) = every non-internal IPv4 interface plus loopback; else a comma-separated IPv4 list. */
  addressList(name: string): string[] {
    const value = this.#raw(name);
    if (value === undefined || value === 'auto') return [];
    const list = value.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = list.filter((a) => isIP(a) !== 4);
    if (bad.length > 0 || list.length === 0) {
      this.fail(name, `must be "auto" or a comma-separated list of IPv4 addresses (bad: ${bad.join(', ')})`);
      return [];
    }
    return list;
  }
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

const ICE_URL = /^(stuns?|turns?):[^\s,<>"]{1,200}$/;

/**
 * ICE_SERVERS: comma-separated stun:/stuns:/turn:/turns: URLs for clients. TURN URLs take the
 * static ICE_SERVER_USERNAME and ICE_SERVER_CREDENTIAL (a secret: never echoed).
 */
function readIceServers(r: EnvReader): IceServerInfo[] {
  const value = r.optional('ICE_SERVERS', (v) =>
    v.split(',').every((u) => ICE_URL.test(u.trim())) || 'must be comma-separated stun:, stuns:, turn: or turns: URLs',
  );
  if (!value) return [];
  const urls = value.split(',').map((u) => u.trim());
  const stun = urls.filter((u) => u.startsWith('stun'));
  const turn = urls.filter((u) => u.startsWith('turn'));
  const servers: IceServerInfo[] = stun.length > 0 ? [{ urls: stun }] : [];
  if (turn.length > 0) {
    const username = r.optional('ICE_SERVER_USERNAME', (v) => /^[^\s"]{1,256}$/.test(v) || 'must be 1-256 characters without spaces or quotes');
    const credential = r.secret('ICE_SERVER_CREDENTIAL');
    if (!username || !credential) r.fail('ICE_SERVERS', 'turn: URLs need ICE_SERVER_USERNAME and ICE_SERVER_CREDENTIAL');
    else if (credential.includes('"')) r.fail('ICE_SERVER_CREDENTIAL', 'must not contain quotes (value not shown)');
    else servers.push({ urls: turn, username, credential });
  }
  return servers;
}
