// Voice-agent benchmark (issue: the voice agent). A real server with the embedded local providers
// and a werift client speaking flite-generated questions. Prints a table and writes
// bench/results/agent-latest.json.
//   end of speech -> first packet   the server's turn timings: last voiced frame -> first answer
//                                   packet sent; target endpointing silence (TURN_END_SILENCE_MS) + 50
//   ... of which                    endpointing silence, STT final, agent first text, TTS first audio
//   barge-in reaction               the server's barge-in decision (its `speech barge_in` message) ->
//                                   the last packet of the interrupted answer the client received (the
//                                   next answer follows a pause of >= 250 ms); target < 100 ms
//   interrupting speech -> stop     first frame of the interrupting speech sent -> last answer packet
//                                   (includes VAD onset, BARGE_IN_MIN_MS of speech the decision waits
//                                   for, and what is left of BARGE_IN_GRACE_MS: the speech starts
//                                   500 ms into the answer)
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer } from '../tests/helpers/server.ts';
import { TestClient } from '../tests/helpers/werift-client.ts';
import { encodePackets } from '../tests/helpers/audio.ts';
import { fliteSpeech } from '../tests/helpers/flite-speech.ts';
import type { ConversationTurn } from '../server/session-types.ts';
import type { ServerMessage } from '../signaling/protocol.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const TURNS = QUICK ? 3 : 10;
const BARGE_INS = QUICK ? 2 : 6;
const END_SILENCE_MS = 500;
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! * 10) / 10;
};
type TurnMessage = Extract<ServerMessage, { type: 'turn' }>;
const nextTurn = (client: TestClient): Promise<ConversationTurn> => client.next<TurnMessage>((m) => m.type === 'turn', 30_000).then((m) => m.turn);

async function main(): Promise<void> {
  const server = await startServer({ VOICE_DEFAULT_MODE: 'stt_tts', TURN_END_SILENCE_MS: String(END_SILENCE_MS) });
  const question = encodePackets(await fliteSpeech('what time is it', 200));
  const longQuestion = encodePackets(await fliteSpeech('what can you do', 200));
  const interruption = encodePackets(await fliteSpeech('hello there my friend', 100));
  const firstPacket: number[] = [];
  const stages = { endpointing: [] as number[], stt: [] as number[], agent: [] as number[], tts: [] as number[], send: [] as number[] };
  const reaction: number[] = [];
  const speechToStop: number[] = [];
  let bargeInFailures = 0;
  try {
    const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
    for (let i = 0; i < TURNS; i++) {
      const turn = nextTurn(client);
      await client.speak(question);
      const t = (await turn).timings;
      if (process.env.BENCH_DEBUG) console.log('turn', i, JSON.stringify(t));
      if (t.firstPacketOutAt == null || t.sttFinalAt == null || t.agentFirstTextAt == null || t.ttsFirstAudioAt == null) continue;
      firstPacket.push(t.firstPacketOutAt - t.speechEndAt);
      stages.endpointing.push(t.endOfTurnAt - t.speechEndAt);
      stages.stt.push(t.sttFinalAt - t.endOfTurnAt);
      stages.agent.push(t.agentFirstTextAt - t.sttFinalAt);
      stages.tts.push(t.ttsFirstAudioAt - t.agentFirstTextAt);
      stages.send.push(t.firstPacketOutAt - t.ttsFirstAudioAt);
    }
    for (let i = 0; i < BARGE_INS; i++) {
      try {
        const answered = nextTurn(client);
        await client.speak(longQuestion);
        await client.waitFor((m) => m.type === 'state' && m.state === 'responding', 30_000);
        // Let the answer play for a moment, then talk over it.
        const from = client.received.length;
        while (client.received.length < from + 25) await new Promise((r) => setTimeout(r, 5));
        const spokeAt = performance.now();
        const bargeIn = client.next((m) => m.type === 'speech' && m.event === 'barge_in', 10_000);
        const spoken = client.speak(interruption);
        await bargeIn;
        const decidedAt = performance.now();
        const interrupted = await answered;
        await spoken;
        await nextTurn(client).catch(() => undefined); // the interruption is a turn of its own
        if (!interrupted.interrupted) continue;
        // The interrupted answer's last packet: the last one before the next answer, which starts after
        // a pause of at least the endpointing silence (packets of one answer are 20 ms apart).
        const received = client.received;
        let last = received.length - 1;
        while (last > 0 && received[last]!.at > decidedAt) last--;
        while (last + 1 < received.length && received[last + 1]!.at - received[last]!.at < 250) last++;
        const lastAnswerPacket = received[last]!.at;
        reaction.push(lastAnswerPacket - decidedAt);
        speechToStop.push(lastAnswerPacket - spokeAt);
      } catch (error) {
        bargeInFailures++;
        if (process.env.BENCH_DEBUG) console.log('barge-in round failed:', (error as Error).message.slice(0, 200));
      }
    }
    await client.close();
  } finally {
    await server.close();
  }

  const result = {
    at: new Date().toISOString(),
    turns: TURNS,
    endSilenceMs: END_SILENCE_MS,
    endOfSpeechToFirstPacketMs: { p50: pct(firstPacket, 0.5), p95: pct(firstPacket, 0.95), target: { max: END_SILENCE_MS + 50 } },
    stagesMsP50: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, pct(v, 0.5)])),
    bargeInReactionMs: { p50: pct(reaction, 0.5), p95: pct(reaction, 0.95), samples: reaction.length, failedRounds: bargeInFailures, target: { max: 100 } },
    interruptingSpeechToStopMs: { p50: pct(speechToStop, 0.5), p95: pct(speechToStop, 0.95) },
  };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(`${RESULTS}agent-latest.json`, JSON.stringify(result, null, 2));
  const s = result.stagesMsP50;
  console.log('\nvoice agent benchmark (local providers; p50 / p95)');
  console.log(`  end of speech -> first answer packet (ms)  ${result.endOfSpeechToFirstPacketMs.p50} / ${result.endOfSpeechToFirstPacketMs.p95}   target <= ${END_SILENCE_MS + 50}`);
  console.log(`    p50 stages: endpointing ${s.endpointing}, stt ${s.stt}, agent ${s.agent}, tts ${s.tts}, send ${s.send}`);
  console.log(`  barge-in decision -> audio stops (ms)       ${result.bargeInReactionMs.p50} / ${result.bargeInReactionMs.p95}   target < 100 (${reaction.length} samples, ${bargeInFailures} rounds without a barge-in)`);
  console.log(`  interrupting speech -> audio stops (ms)     ${result.interruptingSpeechToStopMs.p50} / ${result.interruptingSpeechToStopMs.p95}`);
  console.log(`\nwritten: ${RESULTS}agent-latest.json`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
