// A loopback UDP impairment relay for network-failure tests. The test hands the client the relay's
// address instead of the server's (rewriteCandidate / rewriteSdp on the server's candidates), so
// STUN, DTLS and SRTP all flow through here as plain datagrams that can be dropped, delayed,
// reordered, or re-sourced (switchNetwork). Every random choice comes from a seeded PRNG so a
// failing run can be replayed.
import dgram from 'node:dgram';
import { InvalidStateError } from '../../server/session.ts';
import { TypedEmitter } from '../../media/typed-emitter.ts';
import { mulberry32 } from './prng.ts';

export { mulberry32 };

const HOST = '127.0.0.1';

export type Direction = 'up' | 'down' | 'both';

export interface DirectionStats {
  packetsIn: number;
  bytesIn: number;
  forwarded: number;
  bytesForwarded: number;
  dropped: number;
  delayed: number;
}

export interface RelayStats {
  up: DirectionStats;
  down: DirectionStats;
}

export type UdpRelayEvents = {
  /** Once per arriving datagram, when its fate is decided: tests await these instead of sleeping. */
  packet: [direction: 'up' | 'down', fate: 'forwarded' | 'dropped' | 'delayed', bytes: number];
};

export interface UdpRelayOptions {
  seed: number;
}

export const DEFAULT_UDP_RELAY_OPTIONS: UdpRelayOptions = { seed: 1 };


/** One direction's impairments; its own PRNG so traffic in the other direction can't shift its pattern. */
class Impairment {
  blackhole = false;
  loss = 0;
  delayMs = 0;
  jitterMs = 0;
  reorder = 0;
  reorderExtraMs = 0;
  readonly stats: DirectionStats = { packetsIn: 0, bytesIn: 0, forwarded: 0, bytesForwarded: 0, dropped: 0, delayed: 0 };
  readonly #random: () => number;

  constructor(
    readonly direction: 'up' | 'down',
    seed: number,
  ) {
    this.#random = mulberry32(seed);
  }

  /** null = drop, otherwise how long to hold the packet (0 = send now). */
  decide(bytes: number): number | null {
    this.stats.packetsIn++;
    this.stats.bytesIn += bytes;
    if (this.blackhole || (this.loss > 0 && this.#random() < this.loss)) {
      this.stats.dropped++;
      return null;
    }
    let hold = this.delayMs + (this.jitterMs > 0 ? this.#random() * this.jitterMs : 0);
    if (this.reorder > 0 && this.#random() < this.reorder) hold += this.reorderExtraMs;
    if (hold > 0) this.stats.delayed++;
    return hold;
  }
}

interface Upstream {
  socket: dgram.Socket;
  client: { address: string; port: number };
  bound: Promise<void>;
}

interface Leg {
  serverPort: number;
  socket: dgram.Socket;
  /** Keyed by the client's `address:port`; one upstream socket per client so the server can tell them apart. */
  upstreams: Map<string, Upstream>;
}

export class UdpRelay extends TypedEmitter<UdpRelayEvents> {
  readonly #up: Impairment;
  readonly #down: Impairment;
  readonly #legs = new Map<number, Promise<Leg>>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #retired = new WeakSet<dgram.Socket>();
  #closed = false;

  constructor(options: Partial<UdpRelayOptions> = {}) {
    super();
    const { seed } = { ...DEFAULT_UDP_RELAY_OPTIONS, ...options };
    this.#up = new Impairment('up', seed);
    // A different stream for 'down', still fully determined by the one seed.
    this.#down = new Impairment('down', seed ^ 0x9e3779b9);
  }

  /** The relay port a client should use to reach the server's `127.0.0.1:serverPort`. */
  async portFor(serverPort: number): Promise<number> {
    this.#assertOpen();
    let leg = this.#legs.get(serverPort);
    if (!leg) {
      leg = this.#openLeg(serverPort);
      this.#legs.set(serverPort, leg);
    }
    return (await leg).socket.address().port;
  }

  /**
   * Maps a server candidate to the relay. Anything the relay cannot front (not udp on 127.0.0.1)
   * throws: passing it through would let the client bypass the impairments without anyone noticing.
   */
  async rewriteCandidate(candidateLine: string): Promise<string> {
    if (candidateLine.trim() === '') return candidateLine; // end-of-candidates
    const match = /^((?:a=)?candidate:\S+ \d+ (\S+) \d+ )(\S+) (\d+)( .*)?$/.exec(candidateLine);
    if (!match || match[2]!.toLowerCase() !== 'udp' || match[3] !== HOST) {
      throw new Error(`relay can only front udp ${HOST} candidates: ${candidateLine}`);
    }
    const port = await this.portFor(Number(match[4]));
    return `${match[1]}${HOST} ${port}${match[5] ?? ''}`;
  }

  /** Rewrites every `a=candidate:` line; other lines (m=, c=) are left alone since ICE ignores them. */
  async rewriteSdp(sdp: string): Promise<string> {
    const lines = sdp.split('\r\n');
    const rewritten = await Promise.all(lines.map((l) => (l.startsWith('a=candidate:') ? this.rewriteCandidate(l) : l)));
    return rewritten.join('\r\n');
  }

  /**
   * Maps one of the CLIENT's candidates to the relay: the server is told to reach the client at the
   * upstream socket that carries the client's traffic, so both sides see one consistent address
   * pair and neither has to learn a peer-reflexive candidate. Needs the server's leg to exist
   * (rewrite the server's candidates first); after switchNetwork() it maps to the new path.
   */
  async rewriteClientCandidate(candidateLine: string): Promise<string> {
    const match = /^((?:a=)?candidate:\S+ \d+ (\S+) \d+ )(\S+) (\d+)( .*)?$/.exec(candidateLine);
    if (!match || match[2]!.toLowerCase() !== 'udp' || match[3] !== HOST) {
      throw new Error(`relay can only map udp ${HOST} candidates: ${candidateLine}`);
    }
    const legs = await Promise.all(this.#legs.values());
    if (legs.length !== 1) throw new Error(`client candidates need exactly one server leg, have ${legs.length}`);
    const leg = legs[0]!;
    const client = { address: HOST, port: Number(match[4]) };
    const key = `${client.address}:${client.port}`;
    let upstream = leg.upstreams.get(key);
    if (!upstream) {
      upstream = this.#openUpstream(leg, client);
      leg.upstreams.set(key, upstream);
    }
    await upstream.bound;
    return `${match[1]}${HOST} ${upstream.socket.address().port}${match[5] ?? ''}`;
  }

  blackhole(on: boolean, direction: Direction = 'both'): void {
    for (const d of this.#select(direction)) d.blackhole = on;
  }

  setLoss(fraction: number, direction: Direction = 'both'): void {
    if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`loss fraction ${fraction} not in [0, 1]`);
    for (const d of this.#select(direction)) d.loss = fraction;
  }

  /** Each packet waits `ms` plus a uniform [0, jitterMs) extra; jitter reorders packets naturally. */
  setDelay(ms: number, jitterMs = 0, direction: Direction = 'both'): void {
    if (ms < 0 || jitterMs < 0) throw new RangeError('delay and jitter must be >= 0');
    for (const d of this.#select(direction)) {
      d.delayMs = ms;
      d.jitterMs = jitterMs;
    }
  }

  /** A `fraction` of packets is held back `extraDelayMs` longer, so later packets overtake them. */
  setReorder(fraction: number, extraDelayMs: number, direction: Direction = 'both'): void {
    if (!(fraction >= 0 && fraction <= 1) || extraDelayMs < 0) throw new RangeError('bad reorder settings');
    for (const d of this.#select(direction)) {
      d.reorder = fraction;
      d.reorderExtraMs = extraDelayMs;
    }
  }

  /**
   * The client moves to a new network: every upstream socket is replaced, so the server sees a new
   * source address. New sockets are bound before the old ones close, so the OS cannot hand back an
   * old port; old sockets are closed, so nothing sent to them is delivered anymore.
   */
  async switchNetwork(): Promise<void> {
    this.#assertOpen();
    for (const leg of await Promise.all(this.#legs.values())) {
      for (const [key, old] of leg.upstreams) {
        const fresh = this.#openUpstream(leg, old.client);
        await fresh.bound;
        leg.upstreams.set(key, fresh);
        this.#retired.add(old.socket);
        old.socket.close();
      }
    }
  }

  stats(): RelayStats {
    return { up: { ...this.#up.stats }, down: { ...this.#down.stats } };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const legs = await Promise.allSettled(this.#legs.values());
    this.#legs.clear();
    const sockets: dgram.Socket[] = [];
    for (const leg of legs) {
      if (leg.status !== 'fulfilled') continue;
      sockets.push(leg.value.socket, ...[...leg.value.upstreams.values()].map((u) => u.socket));
    }
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  #select(direction: Direction): Impairment[] {
    this.#assertOpen();
    return direction === 'both' ? [this.#up, this.#down] : [direction === 'up' ? this.#up : this.#down];
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError('relay is closed');
  }

  async #openLeg(serverPort: number): Promise<Leg> {
    const socket = dgram.createSocket('udp4');
    const leg: Leg = { serverPort, socket, upstreams: new Map() };
    socket.on('error', () => undefined); // a failed send is just a lost datagram, never a crashed test
    socket.on('message', (data, from) => {
      const key = `${from.address}:${from.port}`;
      let upstream = leg.upstreams.get(key);
      if (!upstream) {
        upstream = this.#openUpstream(leg, { address: from.address, port: from.port });
        leg.upstreams.set(key, upstream);
      }
      this.#pass(this.#up, data, upstream.socket, serverPort);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, HOST, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return leg;
  }

  /** Bound asynchronously; dgram queues sends made before 'listening', so the first packet isn't lost. */
  #openUpstream(leg: Leg, client: Upstream['client']): Upstream {
    const socket = dgram.createSocket('udp4');
    socket.on('error', () => undefined); // a failed send is just a lost datagram, never a crashed test
    socket.on('message', (data, from) => {
      // Only the server may answer through this path; anything else is not part of the test.
      if (from.address !== HOST || from.port !== leg.serverPort) return;
      this.#pass(this.#down, data, leg.socket, client.port, client.address);
    });
    const bound = new Promise<void>((resolve) => socket.once('listening', () => resolve()));
    socket.bind(0, HOST);
    return { socket, client, bound };
  }

  #pass(impairment: Impairment, data: Buffer, via: dgram.Socket, port: number, address = HOST): void {
    if (this.#closed) return;
    const hold = impairment.decide(data.length);
    this.safeEmit('packet', impairment.direction, hold === null ? 'dropped' : hold > 0 ? 'delayed' : 'forwarded', data.length);
    if (hold === null) return;
    const send = (): void => {
      // A packet held past switchNetwork() left on the old path: it is lost with that path.
      if (this.#closed) return;
      if (this.#retired.has(via)) {
        impairment.stats.dropped++;
        return;
      }
      impairment.stats.forwarded++;
      impairment.stats.bytesForwarded += data.length;
      via.send(data, port, address);
    };
    if (hold === 0) return send();
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      send();
    }, hold);
    this.#timers.add(timer);
  }
}
