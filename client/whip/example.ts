// An example SIP-bridge integration over the HTTP API: joins a call with a werift peer (WHIP),
// speaks a question (synthesised locally with flite, as a caller's voice would arrive from the
// phone line), prints the session's events, optionally restarts ICE mid-call, makes the agent
// announce something, and hangs up. docs/sip-bridge.md explains each step.
//
//   TOKEN=$(npm run -s token -- --identity bridge-1 --grants join,publish,sip,agent)
//   npm run sip-example -- --token "$TOKEN" [--server http://127.0.0.1:8080] [--room lobby]
//        [--mode stt_tts] [--ask "what time is it"] [--say "text"] [--restart] [--host 127.0.0.1]
import { parseArgs } from 'node:util';
import { WhipClient, WhipError } from './whip-client.ts';
import { FliteTts } from '../../providers/local/flite-tts.ts';
import { OpusFrameEncoder } from '../../media/opus-codec.ts';

const USAGE = `usage: npm run sip-example -- --token <jwt> [--server URL] [--room R] [--mode M]
       [--ask TEXT] [--say TEXT] [--restart] [--host ADDRESS] [--timeout SECONDS]
  --token    an access token with the join, publish and sip grants (and agent for --say):
             npm run -s token -- --identity bridge-1 --grants join,publish,sip,agent
  --host     gather ICE candidates on this address only (repeatable; default: every IPv4 interface)
  --timeout  longest wait for the answer and for the announcement (default 30)`;

const { values } = parseArgs({
  options: {
    token: { type: 'string' },
    server: { type: 'string', default: 'http://127.0.0.1:8080' },
    room: { type: 'string' },
    mode: { type: 'string' },
    ask: { type: 'string', default: 'what time is it' },
    say: { type: 'string' },
    restart: { type: 'boolean', default: false },
    host: { type: 'string', multiple: true },
    timeout: { type: 'string', default: '30' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (values.help || !values.token) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(values.help ? 0 : 64);
}
const timeoutMs = Number(values.timeout) * 1000;
if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
  process.stderr.write(`--timeout: a positive number of seconds\n${USAGE}\n`);
  process.exit(64);
}

/** Resolves with `work`, or rejects after --timeout saying what did not happen. */
function within<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${values.timeout} s`)), timeoutMs);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** The question as 20 ms Opus packets at 16 kHz, with half a second of silence after it. */
async function spoken(text: string): Promise<Uint8Array[]> {
  const encoder = new OpusFrameEncoder({ sampleRate: 16000 });
  const pcm: number[] = [];
  async function* once(): AsyncIterable<string> {
    yield text;
  }
  for await (const frame of new FliteTts().synthesize(once(), { signal: new AbortController().signal })) pcm.push(...frame.samples);
  pcm.push(...new Array(8000).fill(0));
  const packets: Uint8Array[] = [];
  for (let offset = 0; offset < pcm.length; offset += 320) {
    const frame = new Int16Array(320);
    frame.set(pcm.slice(offset, offset + 320));
    packets.push(encoder.encode(frame));
  }
  encoder.free();
  return packets;
}

const log = (what: string, data: unknown = ''): void => {
  process.stdout.write(`${new Date().toISOString().slice(11, 23)} ${what} ${typeof data === 'string' ? data : JSON.stringify(data)}\n`);
};

let client: WhipClient;
try {
  client = await WhipClient.connect({
    serverUrl: values.server,
    token: values.token,
    ...(values.room ? { room: values.room } : {}),
    ...(values.mode ? { mode: values.mode } : {}),
    ...(values.host ? { hostAddresses: values.host } : {}),
  });
} catch (error) {
  log('could not join:', error instanceof WhipError ? `${error.status} ${error.code ?? ''} ${error.message}` : (error as Error).message);
  process.exit(1);
}
log('joined', { session: client.sessionId, resource: client.resourceUrl, etag: client.etag, iceServers: client.iceServerLinks });
client.startMic();

const stop = new AbortController();
let turnSeen: () => void = () => undefined;
const answered = new Promise<void>((resolve) => (turnSeen = resolve));
const events = (async () => {
  try {
    for await (const event of client.events(stop.signal)) {
      log(`event ${event.event}`, event.data);
      if (event.event === 'turn') turnSeen();
    }
  } catch (error) {
    if ((error as Error).name !== 'AbortError') log('event stream failed:', (error as Error).message);
  }
})();

let failed = false;
try {
  log('asking', values.ask);
  await client.speak(await spoken(values.ask));
  await within(answered, 'an answer to the question');
  log('audio received from the agent', `${client.received.length} packets`);

  if (values.restart) {
    const startedAt = performance.now();
    await client.restartIce();
    log('ICE restarted', `${(performance.now() - startedAt).toFixed(0)} ms, new etag ${client.etag}`);
  }
  if (values.say) {
    const before = client.received.length;
    await client.say(values.say);
    log('asked the agent to say', values.say);
    // Let the announcement play out: until its audio has started and then paused for 400 ms.
    await within(
      (async () => {
        let last = { count: client.received.length, at: performance.now() };
        while (client.received.length === before || performance.now() - last.at < 400) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          if (client.received.length !== last.count) last = { count: client.received.length, at: performance.now() };
        }
      })(),
      'the announcement',
    );
    log('announcement played', `${client.received.length - before} packets`);
  }
  const session = await client.session();
  log('session', { state: session.state, turns: (session.turns as unknown[]).length, participants: session.participants });
} catch (error) {
  failed = true;
  log('failed:', error instanceof WhipError ? `${error.status} ${error.code ?? ''} ${error.message}` : (error as Error).message);
} finally {
  // Hang up whatever happened: the session is not left to time out.
  await client.close().catch((error: unknown) => log('hang-up failed:', (error as Error).message));
  log('hung up');
  // The server ends the event stream with its `closed` event; aborting at once could cut that
  // event off. Stop waiting for it after 2 s.
  const giveUp = setTimeout(() => stop.abort(), 2000);
  await events;
  clearTimeout(giveUp);
}
process.exit(failed ? 1 : 0);
