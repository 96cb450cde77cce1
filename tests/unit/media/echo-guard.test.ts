import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EchoGuard } from '../../../media/echo-guard.ts';
import { frameLevelDb } from '../../../media/speech-detector.ts';
import { readWav, SPEECH_WAV } from '../../helpers/audio.ts';

const speech = readWav(SPEECH_WAV).samples;
const FRAME = 320;
const frameAt = (pcm: Int16Array, i: number): Int16Array => {
  const out = new Int16Array(FRAME);
  if (i >= 0) out.set(pcm.subarray(i * FRAME, Math.min(pcm.length, (i + 1) * FRAME)));
  return out;
};
const scaled = (frame: Int16Array, gain: number): Int16Array => frame.map((v) => Math.max(-32768, Math.min(32767, Math.round(v * gain))));
const mix = (a: Int16Array, b: Int16Array): Int16Array => a.map((v, i) => Math.max(-32768, Math.min(32767, v + b[i])));

// The server sends the fixture; the microphone hears `inbound(i, echoFrame)` where echoFrame is what
// was sent `delayFrames` earlier. Returns the fraction of loud inbound frames judged echo.
function run(inbound: (i: number, echo: Int16Array) => Int16Array, delayFrames = 6): number {
  const guard = new EchoGuard();
  const frames = Math.floor(speech.length / FRAME);
  let loud = 0;
  let echo = 0;
  for (let i = 0; i < frames; i++) {
    guard.sent(frameAt(speech, i), i * 20);
    const echoed = i >= delayFrames ? frameAt(speech, i - delayFrames) : new Int16Array(FRAME);
    const mic = inbound(i, echoed);
    const level = mic.reduce((s, v) => s + v * v, 0) / FRAME;
    const isEcho = guard.isEcho(frameLevelDb(mic), i * 20);
    if (level > 1e5 && i > 30) {
      loud++;
      if (isEcho) echo++;
    }
  }
  return echo / loud;
}

describe('EchoGuard', () => {
  it('recognises the agent voice coming back delayed and attenuated', () => {
    const share = run((_, echo) => scaled(echo, 0.5), 6);
    assert.ok(share > 0.8, `echo share ${share.toFixed(2)}`);
  });

  it('recognises a loopback at the same level with a long delay', () => {
    const share = run((_, echo) => echo, 20);
    assert.ok(share > 0.8, `echo share ${share.toFixed(2)}`);
  });

  it('keeps recognising echo when the echo path slips (an overloaded client or server)', () => {
    // Halfway through, the delay jumps from 100 to 180 ms, as after a scheduling stall.
    const guard = new EchoGuard();
    const frames = Math.floor(speech.length / FRAME);
    let loud = 0;
    let echo = 0;
    for (let i = 0; i < frames; i++) {
      guard.sent(frameAt(speech, i), i * 20);
      const delay = i < frames / 2 ? 5 : 9;
      const mic = i >= delay ? frameAt(speech, i - delay) : new Int16Array(FRAME);
      const isEcho = guard.isEcho(frameLevelDb(mic), i * 20);
      if (mic.reduce((sum, v) => sum + v * v, 0) / FRAME > 1e5 && i > 40) {
        loud++;
        if (isEcho) echo++;
      }
    }
    assert.ok(echo / loud > 0.8, `echo share ${(echo / loud).toFixed(2)}`);
  });

  it('does not take the user for echo when the user says something else', () => {
    // The user speaks the same sentence time-reversed: same loudness statistics, different envelope.
    const reversed = speech.slice().reverse();
    const share = run((i) => frameAt(reversed, i));
    assert.ok(share < 0.2, `echo share ${share.toFixed(2)}`);
  });

  it('lets double talk through: the user louder than the echo', () => {
    const reversed = speech.slice().reverse();
    const share = run((i, echo) => mix(scaled(echo, 0.3), scaled(frameAt(reversed, i), 1.5)));
    assert.ok(share < 0.3, `echo share ${share.toFixed(2)}`);
  });

  it('keeps the echo path across a pause of the agent (the next sentence synthesised late)', () => {
    // The agent says the fixture, pauses 2 s, says it again; the microphone hears it all 160 ms later.
    const guard = new EchoGuard();
    const frames = Math.floor(speech.length / FRAME);
    const pauseFrames = 100;
    const timeline = [...Array.from({ length: frames }, (_, i) => frameAt(speech, i)), ...Array<null>(pauseFrames).fill(null), ...Array.from({ length: frames }, (_, i) => frameAt(speech, i))];
    const delay = 8;
    let loudAfterPause = 0;
    let missed = 0;
    for (let t = 0; t < timeline.length; t++) {
      guard.sent(timeline[t], t * 20);
      const mic = (t >= delay ? timeline[t - delay] : null) ?? new Int16Array(FRAME);
      const isEcho = guard.isEcho(frameLevelDb(mic), t * 20);
      if (t > frames + pauseFrames && frameLevelDb(mic) > -40) {
        loudAfterPause++;
        if (!isEcho) missed++;
      }
    }
    assert.ok(loudAfterPause > 50);
    assert.ok(missed <= 1, `${missed} of ${loudAfterPause} echo frames after the pause taken for the user`);
  });

  it('forgets an echo path that stops matching while the agent talks (the user was taken for echo by chance)', () => {
    // First the microphone hears the echo (the path is learnt), then only the user, as loud, saying
    // something else while the agent keeps talking.
    const guard = new EchoGuard();
    const frames = Math.floor(speech.length / FRAME);
    const reversed = speech.slice().reverse();
    const lateDecisions: boolean[] = [];
    for (let t = 0; t < 3 * frames; t++) {
      guard.sent(frameAt(speech, t % frames), t * 20);
      const mic = t < frames ? frameAt(speech, t - 6) : frameAt(reversed, t % frames);
      const isEcho = guard.isEcho(frameLevelDb(mic), t * 20);
      if (t >= 2 * frames && frameLevelDb(mic) > -40) lateDecisions.push(isEcho);
    }
    const share = lateDecisions.filter(Boolean).length / lateDecisions.length;
    assert.ok(lateDecisions.length > 50);
    assert.ok(share < 0.2, `echo share of the user's speech once the path is stale ${share.toFixed(2)}`);
  });

  it('forgets an echo path whose echo stops coming back while the agent talks (echo cancellation turned on)', () => {
    // The microphone hears the echo (the path is learnt), then silence for 2 s while the agent keeps
    // talking, then the user, as loud as the agent, saying something else.
    const guard = new EchoGuard();
    const frames = Math.floor(speech.length / FRAME);
    const reversed = speech.slice().reverse();
    const userFrom = frames + 100;
    const userDecisions: boolean[] = [];
    for (let t = 0; t < userFrom + frames; t++) {
      guard.sent(frameAt(speech, t % frames), t * 20);
      const mic = t < frames ? frameAt(speech, t - 6) : t < userFrom ? new Int16Array(FRAME) : frameAt(reversed, t - userFrom);
      const isEcho = guard.isEcho(frameLevelDb(mic), t * 20);
      if (t >= userFrom && frameLevelDb(mic) > -40) userDecisions.push(isEcho);
    }
    const share = userDecisions.filter(Boolean).length / userDecisions.length;
    assert.ok(userDecisions.length > 50);
    assert.ok(share < 0.2, `echo share of the user's speech ${share.toFixed(2)}`);
  });

  it('is idle when nothing was sent', () => {
    const guard = new EchoGuard();
    for (let i = 0; i < 100; i++) assert.equal(guard.isEcho(frameLevelDb(frameAt(speech, i)), i * 20), false);
    assert.equal(guard.checks, 0);
  });
});
