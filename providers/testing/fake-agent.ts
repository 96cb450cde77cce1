/**
 * A scripted Agent for tests that run without a network. Each respond() streams the next scripted
 * reply as text deltas (a string is cut into words, each with its leading space; an array is used
 * as given), or `reply(request)` once the script is used up (default: "You said: <userText>.").
 * `pace` is awaited before every delta: a gate a test opens holds the reply back (think time,
 * barge-in in the middle of an answer).
 *
 * ```ts
 * const agent = new FakeAgent({ replies: ['Hello there. How can I help?'], faults: [{ error }] });
 * // the first call fails before its first delta; the second streams 'Hello', ' there.', ...
 * agent.requests[1].userText
 * ```
 *
 * Faults are consumed one per respond() call, in order. A scripted reply is consumed only by a
 * call that reaches its first delta. An abort rejects with an AbortError.
 */
import type { Agent, AgentRequest } from '../types.ts';
import { strike, unlessAborted, type FaultStrike } from './fault.ts';

export interface AgentFault extends FaultStrike {
  /** Deltas delivered before the fault strikes; 0 (default): before the first delta. */
  afterDeltas?: number;
}

export interface FakeAgentOptions {
  name: string;
  replies: Array<string | string[]>;
  reply: (request: AgentRequest) => string | string[];
  /** Awaited before each delta (index counts from 0 per reply). */
  pace: ((deltaIndex: number) => Promise<void> | void) | undefined;
  /** One per respond() call, in order; calls beyond the list work. */
  faults: AgentFault[];
}

export const DEFAULT_FAKE_AGENT_OPTIONS: FakeAgentOptions = {
  name: 'fake-agent',
  replies: [],
  reply: (request) => `You said: ${request.userText}.`,
  pace: undefined,
  faults: [],
};

export class FakeAgent implements Agent {
  readonly name: string;
  /** The script; tests may push more. */
  readonly replies: Array<string | string[]>;
  readonly faults: AgentFault[];
  /** Every request received, oldest first. */
  readonly requests: AgentRequest[] = [];
  readonly #options: FakeAgentOptions;

  constructor(options: Partial<FakeAgentOptions> = {}) {
    this.#options = { ...DEFAULT_FAKE_AGENT_OPTIONS, ...options };
    this.name = this.#options.name;
    this.replies = [...this.#options.replies];
    this.faults = [...this.#options.faults];
  }

  respond(request: AgentRequest): AsyncIterable<string> {
    this.requests.push(request);
    return this.#respond(request, this.faults.shift());
  }

  async *#respond(request: AgentRequest, fault: AgentFault | undefined): AsyncGenerator<string> {
    const { signal } = request;
    const strikesAt = fault ? (fault.afterDeltas ?? 0) : -1;
    if (strikesAt === 0) await strike(fault!, signal);
    await unlessAborted(this.#options.pace?.(0), signal);
    const reply = this.replies.shift() ?? this.#options.reply(request);
    const deltas = typeof reply === 'string' ? toDeltas(reply) : reply;
    for (let i = 0; i < deltas.length; i++) {
      if (i > 0) {
        if (i === strikesAt) await strike(fault!, signal);
        await unlessAborted(this.#options.pace?.(i), signal);
      }
      yield deltas[i]!;
    }
    if (strikesAt >= deltas.length) await strike(fault!, signal);
  }
}

/** 'Hello there.' -> ['Hello', ' there.']: word-sized deltas, the way LLM tokens arrive. */
export function toDeltas(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [];
}
