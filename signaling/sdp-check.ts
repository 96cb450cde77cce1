// Cheap structural checks on a client's SDP before it reaches werift: a bad description gets a
// precise error instead of an exception from deep inside the stack.
import { SignalingError } from './errors.ts';
import { MAX_SDP_CHARS } from './protocol.ts';

export const MAX_SDP_LINES = 400;

/**
 * `maxMediaSections`: how many m-lines the description may have. One for a client's own offer; in a
 * room, the server's offers add one per remote participant, and the client's answers and later
 * offers carry them all (media/peer.ts refuses m-lines the server did not offer).
 */
export function checkAudioSdp(sdp: string, maxMediaSections = 1): void {
  // Size first: the HTTP API (application/sdp bodies) has no message schema in front of this.
  if (sdp.length > MAX_SDP_CHARS) throw new SignalingError('SIG_ERR_SDP_TOO_LARGE', `the SDP exceeds ${MAX_SDP_CHARS} characters`);
  const lines = sdp.split(/\r?\n/).filter((l) => l.length > 0);
  if (lines.length > MAX_SDP_LINES) throw new SignalingError('SIG_ERR_SDP_TOO_LARGE', `the SDP has more than ${MAX_SDP_LINES} lines`);
  if (lines[0] !== 'v=0') throw new SignalingError('SIG_ERR_BAD_SDP', 'SDP must start with "v=0"');
  if (!lines.some((l) => l.startsWith('o=')) || !lines.some((l) => l.startsWith('s='))) {
    throw new SignalingError('SIG_ERR_BAD_SDP', 'SDP lacks an o= or s= line');
  }
  const bad = lines.find((l) => !/^[a-z]=/.test(l));
  if (bad) throw new SignalingError('SIG_ERR_BAD_SDP', `SDP line is not "<letter>=<value>": ${JSON.stringify(bad.slice(0, 40))}`);
  const media = lines.filter((l) => l.startsWith('m='));
  if (media.length < 1 || media.length > maxMediaSections || !media.every((m) => m.startsWith('m=audio '))) {
    const expected = maxMediaSections === 1 ? 'exactly one m-line, of kind audio' : `1 to ${maxMediaSections} m-lines, all audio`;
    throw new SignalingError('SIG_ERR_BAD_SDP', `SDP must have ${expected}`);
  }
  if (!lines.some((l) => l.startsWith('a=ice-ufrag:')) || !lines.some((l) => l.startsWith('a=fingerprint:'))) {
    throw new SignalingError('SIG_ERR_BAD_SDP', 'SDP lacks ICE credentials or a DTLS fingerprint');
  }
  if (!lines.some((l) => /^a=rtpmap:\d+ opus\/48000(\/2)?$/i.test(l))) {
    throw new SignalingError('SIG_ERR_NO_OPUS', 'the audio m-line offers no Opus (opus/48000/2)');
  }
}
