// Pairs each utterance a simulated client sent with the echo the server played back, for the echo
// round trip. Pure: times come in as arguments. Client-side instants are performance.now() of the
// load process; server instants (turn timings) are epoch ms; `toEpoch` converts the former.
//
// Why not "the first packet after the speech ended": when the server falls behind, the echo of the
// previous utterance can arrive after the next one ended, and would be taken for its echo. Instead
// each `turn` message (sent when the echo has finished) says when the server ended the user's turn
// and when it sent the first echo packet; that picks the utterance (the latest whose last speech
// frame went out before endOfTurnAt) and the echo (the first talkspurt to arrive after
// firstPacketOutAt). The round trip itself uses client instants only.
import type { TurnTimings } from '../server/session-types.ts';

/**
 * A packet this much after the previous one starts a new talkspurt even without the marker bit (in
 * case the marked first packet is lost). Long: an overloaded server paces its echo unevenly, and a
 * short gap rule would then see every packet as a new talkspurt.
 */
const TALKSPURT_GAP_MS = 1000;
const KEEP = 16;

interface Utterance {
  speechEndAt: number;
  endpointAt: number | null;
  inWindow: boolean;
  matched: boolean;
}

export interface EchoMatch {
  /** First echo packet arrival - last speech frame sent - endpointing silence. */
  roundTripMs: number;
  /** Server endOfTurnAt - client sending of the frame that completes endpointing (epoch ms). */
  endpointAlignmentMs: number;
  /** Server firstPacketOutAt - endOfTurnAt. */
  serverPaceWaitMs: number;
}

export class EchoMatcher {
  readonly #endSilenceMs: number;
  readonly #toEpoch: (at: number) => number;
  readonly #utterances: Utterance[] = [];
  readonly #talkspurts: number[] = [];
  #lastPacketAt = -Infinity;

  constructor(endSilenceMs: number, toEpoch: (at: number) => number) {
    this.#endSilenceMs = endSilenceMs;
    this.#toEpoch = toEpoch;
  }

  /** The utterance's last speech frame went out. Returns how many window utterances were dropped unanswered. */
  speechEnded(at: number, inWindow: boolean): number {
    this.#utterances.push({ speechEndAt: at, endpointAt: null, inWindow, matched: false });
    if (this.#utterances.length <= KEEP) return 0;
    const dropped = this.#utterances.shift()!;
    return dropped.inWindow && !dropped.matched ? 1 : 0;
  }

  /** The frame on which the server's endpointing completes went out. */
  endpointSent(at: number): void {
    const last = this.#utterances.at(-1);
    if (last && last.endpointAt === null) last.endpointAt = at;
  }

  packet(at: number, marker: boolean): void {
    if (marker || at - this.#lastPacketAt > TALKSPURT_GAP_MS) {
      this.#talkspurts.push(at);
      if (this.#talkspurts.length > KEEP) this.#talkspurts.shift();
    }
    this.#lastPacketAt = at;
  }

  /** A turn message arrived; null when it matches no utterance or no echo of ours. */
  turn(timings: TurnTimings): EchoMatch | null {
    if (timings.firstPacketOutAt === null) return null;
    let utterance: Utterance | undefined;
    for (const u of this.#utterances) {
      // Not the endpointing frame: frames the jitter buffer conceals count as silence too, so the
      // server may end the turn before that frame arrives (never before the last speech frame).
      if (u.endpointAt !== null && this.#toEpoch(u.speechEndAt) <= timings.endOfTurnAt) utterance = u;
    }
    const echoAt = this.#talkspurts.find((at) => this.#toEpoch(at) >= timings.firstPacketOutAt! - 1);
    if (!utterance || utterance.matched || echoAt === undefined) return null;
    utterance.matched = true;
    return {
      roundTripMs: echoAt - utterance.speechEndAt - this.#endSilenceMs,
      endpointAlignmentMs: timings.endOfTurnAt - this.#toEpoch(utterance.endpointAt!),
      serverPaceWaitMs: timings.firstPacketOutAt - timings.endOfTurnAt,
    };
  }

  /** Window utterances still unanswered this long after their endpointing frame; they stop counting. */
  takeOverdue(now: number, overdueMs: number): number {
    let overdue = 0;
    for (const u of this.#utterances) {
      if (u.inWindow && !u.matched && u.endpointAt !== null && now - u.endpointAt > overdueMs) {
        u.matched = true; // counted once
        overdue++;
      }
    }
    return overdue;
  }
}
