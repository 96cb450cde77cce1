// Where session records and conversation history live beyond the process's memory of them: every
// turn is appended as it happens, and a closed session's history stays retrievable for the
// retention time. In memory by default; Redis (ioredis) when REDIS_URL is set.
import { Redis } from 'ioredis';
import type { ConversationTurn, SessionState } from './session-types.ts';

export interface SessionRecord {
  sessionId: string;
  room: string;
  mode: string;
  /** Who owns the session (the access token's `sub`); absent in records written before auth existed. */
  identity?: string | null;
  createdAt: number;
  state: SessionState;
  closedAt: number | null;
  closeReason: string | null;
  /** SHA-256 (hex) of the current resume token; the token itself is never stored. */
  resumeTokenHash: string;
}

export interface SessionStore {
  saveSession(record: SessionRecord): Promise<void>;
  getSession(sessionId: string): Promise<SessionRecord | null>;
  appendTurn(sessionId: string, turn: ConversationTurn): Promise<void>;
  /** Turns with index > afterIndex, in order. */
  turns(sessionId: string, afterIndex?: number): Promise<ConversationTurn[]>;
  /** Marks the session closed; its record and turns expire after the retention time. */
  closeSession(sessionId: string, reason: string, state: SessionState): Promise<void>;
  close(): Promise<void>;
}

export class MemorySessionStore implements SessionStore {
  readonly #records = new Map<string, SessionRecord>();
  readonly #turns = new Map<string, ConversationTurn[]>();
  readonly #expiry = new Map<string, NodeJS.Timeout>();
  readonly #retentionMs: number;

  constructor(retentionMs: number) {
    this.#retentionMs = retentionMs;
  }

  async saveSession(record: SessionRecord): Promise<void> {
    this.#records.set(record.sessionId, { ...record });
  }

  async getSession(sessionId: string): Promise<SessionRecord | null> {
    const record = this.#records.get(sessionId);
    return record ? { ...record } : null;
  }

  async appendTurn(sessionId: string, turn: ConversationTurn): Promise<void> {
    const list = this.#turns.get(sessionId) ?? [];
    if (list.some((t) => t.turnId === turn.turnId)) return; // idempotent
    list.push(structuredClone(turn));
    this.#turns.set(sessionId, list);
  }

  async turns(sessionId: string, afterIndex = -1): Promise<ConversationTurn[]> {
    return (this.#turns.get(sessionId) ?? []).filter((t) => t.index > afterIndex).map((t) => structuredClone(t));
  }

  async closeSession(sessionId: string, reason: string, state: SessionState): Promise<void> {
    const record = this.#records.get(sessionId);
    if (record) Object.assign(record, { closedAt: Date.now(), closeReason: reason, state });
    clearTimeout(this.#expiry.get(sessionId));
    const timer = setTimeout(() => {
      this.#records.delete(sessionId);
      this.#turns.delete(sessionId);
      this.#expiry.delete(sessionId);
    }, this.#retentionMs);
    timer.unref();
    this.#expiry.set(sessionId, timer);
  }

  async close(): Promise<void> {
    for (const timer of this.#expiry.values()) clearTimeout(timer);
  }
}

const OPEN_SESSION_TTL_S = 7 * 24 * 3600; // a safety net: an open session's keys never outlive a week

export class RedisSessionStore implements SessionStore {
  readonly #redis: Redis;
  readonly #retentionS: number;
  readonly #prefix: string;

  constructor(url: string, retentionMs: number, prefix = 'voice:') {
    this.#redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    this.#redis.on('error', () => undefined); // surfaced per command; avoid unhandled 'error' events
    this.#retentionS = Math.max(1, Math.ceil(retentionMs / 1000));
    this.#prefix = prefix;
  }

  #key(sessionId: string, part: 'session' | 'turns'): string {
    return `${this.#prefix}${part}:${sessionId}`;
  }

  async saveSession(record: SessionRecord): Promise<void> {
    await this.#redis.set(this.#key(record.sessionId, 'session'), JSON.stringify(record), 'EX', OPEN_SESSION_TTL_S);
  }

  async getSession(sessionId: string): Promise<SessionRecord | null> {
    const json = await this.#redis.get(this.#key(sessionId, 'session'));
    return json ? (JSON.parse(json) as SessionRecord) : null;
  }

  async appendTurn(sessionId: string, turn: ConversationTurn): Promise<void> {
    // A sorted set scored by turn index: re-appending the same turn is a no-op, order is by index.
    const key = this.#key(sessionId, 'turns');
    await this.#redis.multi().zadd(key, 'NX', turn.index, JSON.stringify(turn)).expire(key, OPEN_SESSION_TTL_S).exec();
  }

  async turns(sessionId: string, afterIndex = -1): Promise<ConversationTurn[]> {
    const items = await this.#redis.zrangebyscore(this.#key(sessionId, 'turns'), `(${afterIndex}`, '+inf');
    return items.map((json) => JSON.parse(json) as ConversationTurn);
  }

  async closeSession(sessionId: string, reason: string, state: SessionState): Promise<void> {
    const record = await this.getSession(sessionId);
    const tx = this.#redis.multi();
    if (record) {
      const closed: SessionRecord = { ...record, closedAt: Date.now(), closeReason: reason, state };
      tx.set(this.#key(sessionId, 'session'), JSON.stringify(closed), 'EX', this.#retentionS);
    }
    tx.expire(this.#key(sessionId, 'turns'), this.#retentionS);
    await tx.exec();
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
