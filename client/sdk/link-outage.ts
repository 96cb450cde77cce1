// The client's view of its link to the server: one outage from the first path that goes down
// (signaling socket or media) until every path that went down is back. `reconnecting` is reported
// once at its start and `reconnected` once at its end, with its duration and every cause seen.
import type { LinkCause } from './voice-client-events.ts';

export interface OutageReports {
  reconnecting(cause: LinkCause): void;
  reconnected(info: { durationMs: number; causes: LinkCause[] }): void;
}

export class LinkOutage {
  readonly #reports: OutageReports;
  #outage: { since: number; down: Set<LinkCause>; seen: Set<LinkCause> } | undefined;

  constructor(reports: OutageReports) {
    this.#reports = reports;
  }

  get active(): boolean {
    return this.#outage !== undefined;
  }

  down(cause: LinkCause): void {
    if (this.#outage) {
      this.#outage.down.add(cause);
      this.#outage.seen.add(cause);
      return;
    }
    this.#outage = { since: performance.now(), down: new Set([cause]), seen: new Set([cause]) };
    this.#reports.reconnecting(cause);
  }

  up(cause: LinkCause): void {
    const outage = this.#outage;
    if (!outage || !outage.down.delete(cause) || outage.down.size > 0) return;
    this.#outage = undefined;
    this.#reports.reconnected({ durationMs: Math.round(performance.now() - outage.since), causes: [...outage.seen] });
  }

  /** Forgets an outage in progress without reporting its end (the session closed). */
  clear(): void {
    this.#outage = undefined;
  }
}
