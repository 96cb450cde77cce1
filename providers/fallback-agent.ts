/**
 * An Agent over an ordered list of agents (rules in fallback.ts): a reply that fails before its
 * first text delta is asked of the same agent again or of the next one; after the first delta a
 * failure propagates, since the user may already be hearing the start of the reply.
 */
import { ProviderChain, type FallbackOptions } from './fallback.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { Agent, AgentRequest } from './types.ts';

export class FallbackAgent implements Agent {
  readonly name: string;
  readonly #chain: ProviderChain<Agent>;

  constructor(agents: readonly Agent[], options: Partial<FallbackOptions> = {}) {
    this.#chain = new ProviderChain('agent', agents, options);
    this.name = this.#chain.name;
  }

  /** One per agent, in order (telemetry listens to their `statechange`). */
  get breakers(): readonly CircuitBreaker[] {
    return this.#chain.breakers;
  }

  respond(request: AgentRequest): AsyncIterable<string> {
    return this.#chain.stream(request.signal, (agent, attempt) => agent.respond({ ...request, signal: attempt.signal }));
  }
}
