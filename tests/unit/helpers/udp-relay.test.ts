import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { UdpRelay, type UdpRelayOptions } from '../../helpers/udp-relay.ts';

const HOST = '127.0.0.1';

interface Received {
  text: string;
  port: number;
  at: number;
}

/** A loopback UDP endpoint that records what it receives and can wait for it. */
class Endpoint {
  readonly received: Received[] = [];
  #waiters: (() => void)[] = [];

  private constructor(
    readonly socket: dgram.Socket,
    echo: boolean,
  ) {
    socket.on('message', (data, from) => {
      this.received.push({ text: String(data), port: from.port, at: performance.now() });
      if (echo) socket.send(data, from.port, from.address);
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  static async open(echo = false): Promise<Endpoint> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
    return new Endpoint(socket, echo);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(text: string, port: number): void {
    this.socket.send(text, port, HOST);
  }

  /** Resolves once `predicate` holds for what has arrived; rejects after a bounded deadline. */
  async until(predicate: (received: Received[]) => boolean, timeoutMs = 3000): Promise<Received[]> {
    const deadline = performance.now() + timeoutMs;
    while (!predicate(this.received)) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out with ${this.received.length} datagrams`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
    return this.received;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** Resolves once the relay has decided the fate of `count` datagrams in `direction`. */
function relayed(relay: UdpRelay, direction: 'up' | 'down', count: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const listener = (d: 'up' | 'down'): void => {
      if (d === direction && ++seen === count) {
        relay.off('packet', listener);
        resolve();
      }
    };
    relay.on('packet', listener);
  });
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()));
});

/** Client, echo server, and a relay in front of the server, addressed via a rewritten candidate. */
async function setup(options: Partial<UdpRelayOptions> = {}, echo = true) {
  const [client, server] = await Promise.all([Endpoint.open(), Endpoint.open(echo)]);
  const relay = new UdpRelay(options);
  open.push(client, server, relay);
  const line = await relay.rewriteCandidate(`candidate:1 1 udp 2130706431 ${HOST} ${server.port} typ host`);
  const relayPort = Number(line.split(' ')[5]);
  return { client, server, relay, relayPort };
}

/** Sends `count` numbered datagrams in batches, so socket buffers never overflow and blur the counts. */
async function sendNumbered(client: Endpoint, relay: UdpRelay, relayPort: number, count: number): Promise<void> {
  for (let i = 0; i < count; i += 50) {
    const batch = Math.min(50, count - i);
    const done = relayed(relay, 'up', batch);
    for (let j = i; j < i + batch; j++) client.send(String(j), relayPort);
    await done;
  }
}

/** Closed handles leave the list in the loop's close phase, which follows the check phase. */
const closePhase = async (): Promise<void> => {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
};

const isSorted = (xs: number[]): boolean => xs.every((x, i) => i === 0 || xs[i - 1]! < x);

describe('UdpRelay', () => {
  it('forwards both ways, from a relay port the server sees as the client', async () => {
    const { client, server, relay, relayPort } = await setup();
    client.send('hello', relayPort);
    const [echo] = await client.until((r) => r.length === 1);
    assert.equal(echo!.text, 'hello');
    assert.equal(echo!.port, relayPort);
    assert.notEqual(server.received[0]!.port, client.port);
    assert.notEqual(server.received[0]!.port, relayPort);
    const { up, down } = relay.stats();
    assert.deepEqual([up.packetsIn, up.forwarded, up.bytesForwarded, down.forwarded, down.dropped], [1, 1, 5, 1, 0]);
  });

  it('blackholes everything, then recovers', async () => {
    const { client, server, relay, relayPort } = await setup();
    relay.blackhole(true);
    const dropped = relayed(relay, 'up', 10);
    for (let i = 0; i < 10; i++) client.send(`lost ${i}`, relayPort);
    await dropped;
    relay.blackhole(false);
    client.send('back', relayPort);
    await client.until((r) => r.length === 1);
    // Loopback keeps order, so 'back' arriving means every earlier datagram was decided (and dropped).
    assert.deepEqual(server.received.map((r) => r.text), ['back']);
    assert.deepEqual(client.received.map((r) => r.text), ['back']);
    assert.equal(relay.stats().up.dropped, 10);
  });

  it('drops ~10% at random, with the same pattern for the same seed', async () => {
    const lostWith = async (seed: number): Promise<number[]> => {
      const { client, server, relay, relayPort } = await setup({ seed }, false);
      relay.setLoss(0.1, 'up');
      await sendNumbered(client, relay, relayPort, 2000);
      const { forwarded, dropped } = relay.stats().up;
      assert.equal(forwarded + dropped, 2000);
      await server.until((r) => r.length === forwarded);
      const got = new Set(server.received.map((r) => Number(r.text)));
      return Array.from({ length: 2000 }, (_, i) => i).filter((i) => !got.has(i));
    };
    const first = await lostWith(42);
    assert.ok(first.length > 140 && first.length < 260, `lost ${first.length} of 2000`);
    assert.deepEqual(await lostWith(42), first);
    assert.notDeepEqual(await lostWith(43), first);
  });

  it('adds at least the configured delay in each direction', async () => {
    const { client, server, relay, relayPort } = await setup();
    relay.setDelay(40, 0, 'up');
    relay.setDelay(25, 0, 'down');
    const sentAt = performance.now();
    client.send('slow', relayPort);
    const [echo] = await client.until((r) => r.length === 1);
    assert.ok(server.received[0]!.at - sentAt >= 39, `up took ${server.received[0]!.at - sentAt} ms`);
    assert.ok(echo!.at - server.received[0]!.at >= 24, `down took ${echo!.at - server.received[0]!.at} ms`);
    assert.deepEqual([relay.stats().up.delayed, relay.stats().down.delayed], [1, 1]);
  });

  it('reorders packets with jitter and with explicit hold-backs', async () => {
    for (const impair of [(r: UdpRelay) => r.setDelay(0, 20, 'up'), (r: UdpRelay) => r.setReorder(0.2, 15, 'up')]) {
      const { client, server, relay, relayPort } = await setup({}, false);
      impair(relay);
      await sendNumbered(client, relay, relayPort, 100);
      const order = (await server.until((r) => r.length === 100)).map((r) => Number(r.text));
      assert.ok(!isSorted(order), 'expected some reordering');
      assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
      await Promise.all(open.splice(0).map((o) => o.close()));
    }
  });

  it('switchNetwork gives the server a new source address and kills the old path', async () => {
    const { client, server, relay, relayPort } = await setup();
    client.send('before', relayPort);
    await client.until((r) => r.length === 1);
    const oldPort = server.received[0]!.port;
    await relay.switchNetwork();
    client.send('after', relayPort);
    await client.until((r) => r.length === 2);
    assert.notEqual(server.received[1]!.port, oldPort);
    // A server still answering the old address reaches nobody, while the new path keeps working.
    server.send('stale', oldPort);
    client.send('ping', relayPort);
    await client.until((r) => r.length === 3);
    assert.deepEqual(client.received.map((r) => r.text), ['before', 'after', 'ping']);
  });

  it('rewrites candidates and SDP to relay ports, one leg per server port', async () => {
    const relay = new UdpRelay();
    open.push(relay);
    const a = await relay.rewriteCandidate('candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host generation 0');
    const portA = await relay.portFor(50000);
    assert.equal(a, `candidate:1 1 udp 2130706431 127.0.0.1 ${portA} typ host generation 0`);
    assert.notEqual(portA, 50000);
    assert.equal(await relay.rewriteCandidate('a=candidate:2 1 UDP 1 127.0.0.1 50000 typ host'), `a=candidate:2 1 UDP 1 127.0.0.1 ${portA} typ host`);
    assert.equal(await relay.rewriteCandidate(''), '');
    await assert.rejects(relay.rewriteCandidate('candidate:1 1 udp 1 10.0.0.5 50000 typ host'));
    await assert.rejects(relay.rewriteCandidate('candidate:1 1 tcp 1 127.0.0.1 50000 typ host tcptype passive'));

    const sdp = ['v=0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0',
      'a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host', 'a=candidate:3 1 udp 2130706431 127.0.0.1 50002 typ host',
      'a=end-of-candidates', ''].join('\r\n');
    const rewritten = (await relay.rewriteSdp(sdp)).split('\r\n');
    const portB = await relay.portFor(50002);
    assert.notEqual(portB, portA);
    assert.deepEqual(rewritten, ['v=0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0',
      `a=candidate:1 1 udp 2130706431 127.0.0.1 ${portA} typ host`, `a=candidate:3 1 udp 2130706431 127.0.0.1 ${portB} typ host`,
      'a=end-of-candidates', '']);
  });

  it('close() releases every socket and timer, and refuses further use', async () => {
    await closePhase(); // earlier tests' sockets finish closing
    const before = process.getActiveResourcesInfo();
    const { client, relay, relayPort } = await setup();
    relay.setDelay(60_000, 0);
    const held = relayed(relay, 'up', 1);
    client.send('held', relayPort);
    await held;
    await Promise.all(open.splice(0).map((o) => o.close()));
    await closePhase();
    const count = (list: string[], kind: string): number => list.filter((k) => k === kind).length;
    const after = process.getActiveResourcesInfo();
    assert.equal(count(after, 'UDPWrap'), count(before, 'UDPWrap'));
    assert.equal(count(after, 'Timeout'), count(before, 'Timeout'));
    assert.throws(() => relay.blackhole(true), { name: 'InvalidStateError' });
    await assert.rejects(relay.portFor(1), { name: 'InvalidStateError' });
  });
});
