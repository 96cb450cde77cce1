// The participants of one benchmark room: real werift clients (tests/helpers/werift-client.ts), each
// sending its own quiet noise (under the speech gates: no echo, no agent turn, no active speaker)
// as 20 ms Opus frames, and recording when each frame left, so a forwarded copy's arrival at
// another client gives the forwarding latency. Frames are told apart by their bytes: each
// participant's noise is different, and a frame that occurs twice in a loop is not timed.
import { TestClient } from '../tests/helpers/werift-client.ts';
import { encodePackets } from '../tests/helpers/audio.ts';
import { ROOM_NOISE_DBFS } from './speech-loop.ts';
import { BenchAbort } from './children.ts';

const FRAME_MS = 20;
const FRAME_SAMPLES = 320;

/** Unique noise frames for participant `seed`: `frames` of them, looped by the sender. */
function noiseLoop(seed: number, frames: number): Uint8Array[] {
  const pcm = new Int16Array(frames * FRAME_SAMPLES);
  const amplitude = 32768 * 10 ** (ROOM_NOISE_DBFS / 20) * Math.sqrt(3);
  let state = (0x9e3779b9 ^ Math.imul(seed + 1, 0x85ebca6b)) >>> 0;
  for (let i = 0; i < pcm.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    pcm[i] = Math.round(((state / 2 ** 32) * 2 - 1) * amplitude);
  }
  return encodePackets(pcm);
}

const keyOf = (payload: Uint8Array): string => Buffer.from(payload).toString('base64');

export class RoomLoad {
  readonly clients: TestClient[] = [];
  /** Frame bytes -> when it was last sent (performance.now of this process); ambiguous frames absent. */
  readonly #sentAt = new Map<string, number>();
  readonly #ambiguous = new Set<string>();
  #timers: NodeJS.Timeout[] = [];

  /** Joins `participants` clients; `rooms`: one room for all, or one room each (the no-forwarding baseline). */
  static async join(wsUrl: string, participants: number, rooms: 'shared' | 'separate', loopFrames: number): Promise<RoomLoad> {
    const load = new RoomLoad();
    const tag = Math.random().toString(36).slice(2, 8);
    for (let i = 0; i < participants; i++) {
      const room = rooms === 'shared' ? `bench-${tag}` : `bench-${tag}-${i}`;
      load.clients.push(await TestClient.connect(wsUrl, { room, mode: 'echo' }, { mic: false }));
    }
    load.#start(loopFrames);
    return load;
  }

  /** Resolves once every client receives every other participant of its room. */
  async flowing(timeoutMs: number, shared: boolean): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const want = shared ? this.clients.length - 1 : 0;
    while (!this.clients.every((c) => [...c.receivedByMid.values()].filter((p) => p.length > 0).length >= want)) {
      if (performance.now() > deadline) throw new BenchAbort(`forwarded tracks did not all flow within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Arrival - departure of every forwarded frame that arrived in [from, to), ms, and how many arrived. */
  latencies(from: number, to: number): { samples: number[]; received: number } {
    const samples: number[] = [];
    let received = 0;
    for (const client of this.clients) {
      for (const packets of client.receivedByMid.values()) {
        for (const p of packets) {
          if (p.at < from || p.at >= to) continue;
          received++;
          const sent = this.#sentAt.get(keyOf(p.payload));
          if (sent !== undefined && sent <= p.at) samples.push(p.at - sent);
        }
      }
    }
    return { samples, received };
  }

  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    await Promise.all(this.clients.map((c) => c.close()));
  }

  // Each client on its own drift-free 20 ms clock, started at staggered phases like real callers.
  #start(loopFrames: number): void {
    this.clients.forEach((client, index) => {
      const loop = noiseLoop(index, loopFrames);
      const keys = loop.map(keyOf);
      for (const key of keys) {
        if (this.#ambiguous.has(key)) continue;
        if (this.#sentAt.has(key)) {
          this.#sentAt.delete(key);
          this.#ambiguous.add(key);
        } else this.#sentAt.set(key, Infinity);
      }
      const start = performance.now() + (index * FRAME_MS) / this.clients.length;
      let tick = 0;
      const step = () => {
        const i = tick % loop.length;
        const key = keys[i]!;
        if (!this.#ambiguous.has(key)) this.#sentAt.set(key, performance.now());
        client.sendFrame(loop[i]!, tick === 0);
        tick++;
        this.#timers[index] = setTimeout(step, Math.max(0, start + tick * FRAME_MS - performance.now()));
      };
      this.#timers[index] = setTimeout(step, Math.max(0, start - performance.now()));
    });
  }
}
