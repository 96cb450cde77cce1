// Trickle ICE SDP fragments (RFC 8840, `application/trickle-ice-sdpfrag`) as WHIP (RFC 9725) uses
// them: the client PATCHes its candidates, or new ICE credentials for an ICE restart, and the server
// answers a restart with its own new credentials and candidates. Pure text handling: size-capped,
// line-checked, nothing trusted that the media layer does not check again.
import { SignalingError } from './errors.ts';

export const MAX_FRAGMENT_CHARS = 16 * 1024;
export const MAX_FRAGMENT_LINES = 100;

export interface FragmentCandidate {
  /** The `candidate:...` attribute value, without `a=`. */
  candidate: string;
  /** The media section it belongs to (its `a=mid`); null when the fragment names none. */
  mid: string | null;
}

export interface SdpFragment {
  ufrag: string | null;
  pwd: string | null;
  candidates: FragmentCandidate[];
  endOfCandidates: boolean;
}

const ICE_CHAR = /^[A-Za-z0-9+/]+$/; // RFC 8839 ice-char
const CANDIDATE = /^candidate:[A-Za-z0-9+/]{1,32} \d{1,5} (udp|tcp|UDP|TCP) \d{1,10} \S{1,255} \d{1,5} typ (host|srflx|prflx|relay)( [\x21-\x7e]{1,255})*$/;
const ALLOWED_LINE = /^(a|m|c)=/;

function bad(message: string): SignalingError {
  return new SignalingError('SIG_ERR_BAD_SDP', message);
}

/** Parses a client's fragment; throws SIG_ERR_SDP_TOO_LARGE / SIG_ERR_BAD_SDP naming the problem. */
export function parseSdpFragment(text: string): SdpFragment {
  if (text.length > MAX_FRAGMENT_CHARS) throw new SignalingError('SIG_ERR_SDP_TOO_LARGE', `the fragment has ${text.length} characters; at most ${MAX_FRAGMENT_CHARS}`);
  const lines = text.split(/\r?\n/).filter((line) => line.length > 0);
  if (lines.length > MAX_FRAGMENT_LINES) throw new SignalingError('SIG_ERR_SDP_TOO_LARGE', `the fragment has ${lines.length} lines; at most ${MAX_FRAGMENT_LINES}`);
  const fragment: SdpFragment = { ufrag: null, pwd: null, candidates: [], endOfCandidates: false };
  let mid: string | null = null;
  let sections = 0;
  for (const line of lines) {
    if (!ALLOWED_LINE.test(line)) throw bad(`"${line.slice(0, 40)}" is not an a=, m= or c= line of an SDP fragment`);
    if (line.startsWith('m=')) {
      if (++sections > 1) throw bad('one media section at most: the session has a single audio m-line');
      continue;
    }
    const [name, value = ''] = splitAttribute(line);
    switch (name) {
      case 'ice-ufrag':
        if (!ICE_CHAR.test(value) || value.length < 4 || value.length > 256) throw bad('a=ice-ufrag must be 4-256 ice-chars');
        fragment.ufrag = value;
        break;
      case 'ice-pwd':
        if (!ICE_CHAR.test(value) || value.length < 22 || value.length > 256) throw bad('a=ice-pwd must be 22-256 ice-chars');
        fragment.pwd = value;
        break;
      case 'mid':
        if (!/^[\x21-\x7e]{1,32}$/.test(value)) throw bad('a=mid must be 1-32 visible characters');
        mid = value;
        break;
      case 'candidate':
        if (!CANDIDATE.test(`candidate:${value}`)) throw bad(`a=candidate:${value.slice(0, 60)} is not a valid ICE candidate`);
        fragment.candidates.push({ candidate: `candidate:${value}`, mid });
        break;
      case 'end-of-candidates':
        fragment.endOfCandidates = true;
        break;
      default:
        break; // ice-options, group and the like: not needed here
    }
  }
  if ((fragment.ufrag === null) !== (fragment.pwd === null)) throw bad('a=ice-ufrag and a=ice-pwd go together');
  return fragment;
}

/** `a=name:value` -> [name, value]. */
function splitAttribute(line: string): [string, string | undefined] {
  const body = line.slice(2);
  const colon = body.indexOf(':');
  return colon < 0 ? [body, undefined] : [body.slice(0, colon), body.slice(colon + 1)];
}

/** The ICE credentials of a session description (session or first media level). */
export function iceCredentials(sdp: string): { ufrag: string; pwd: string } | null {
  const ufrag = /^a=ice-ufrag:(\S+)\r?$/m.exec(sdp)?.[1];
  const pwd = /^a=ice-pwd:(\S+)\r?$/m.exec(sdp)?.[1];
  return ufrag && pwd ? { ufrag, pwd } : null;
}

/**
 * A description again with the fragment's new ICE credentials and candidates. The server applies the
 * client's offer so for a restart; a client applies the server's answer so (everything else of the
 * session stays as negotiated).
 */
export function withIceCredentials(description: string, fragment: SdpFragment): string {
  if (!fragment.ufrag || !fragment.pwd) throw bad('an ICE restart needs a=ice-ufrag and a=ice-pwd');
  const lines = description
    .split(/\r?\n/)
    .filter((line) => line.length > 0 && !line.startsWith('a=candidate:') && line !== 'a=end-of-candidates')
    .map((line) => (line.startsWith('a=ice-ufrag:') ? `a=ice-ufrag:${fragment.ufrag}` : line.startsWith('a=ice-pwd:') ? `a=ice-pwd:${fragment.pwd}` : line));
  for (const c of fragment.candidates) lines.push(`a=${c.candidate}`);
  if (fragment.endOfCandidates) lines.push('a=end-of-candidates');
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * The ICE part of a description as a fragment: credentials, m-line, mid and candidates. The server
 * answers a restart with its own; a client sends its restart offer's.
 */
export function iceFragmentOf(description: string): string {
  const credentials = iceCredentials(description);
  if (!credentials) throw new Error('the description has no ICE credentials');
  const mLine = /^m=.*$/m.exec(description)?.[0]?.trim();
  const mid = /^a=mid:(\S+)\r?$/m.exec(description)?.[1];
  const lines = [`a=ice-ufrag:${credentials.ufrag}`, `a=ice-pwd:${credentials.pwd}`];
  if (mLine) lines.push(mLine);
  if (mid) lines.push(`a=mid:${mid}`);
  for (const match of description.matchAll(/^a=(candidate:.*?)\r?$/gm)) lines.push(`a=${match[1]}`);
  lines.push('a=end-of-candidates');
  return `${lines.join('\r\n')}\r\n`;
}
