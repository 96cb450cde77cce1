// The load-generator processes of one step, seen from the runner: spawn them with their share of
// the clients, send every one the same command, and collect one report from each.
import type { ChildProcess } from 'node:child_process';
import { BenchAbort, forkChild, nextMessage, waitExit } from './children.ts';
import { processCpuMs } from './proc-stats.ts';
import type { LoadCommand, LoadPlan, LoadReport } from './ipc.ts';

type ReportOf<E extends LoadReport['ev']> = Extract<LoadReport, { ev: E }> extends { report: infer R } ? R : never;

export class LoadFleet {
  readonly #children: ChildProcess[] = [];

  /** Clients 0..total-1 are dealt round-robin over `processes` processes. */
  constructor(processes: number, total: number, plan: Omit<LoadPlan, 'firstIndex' | 'stride' | 'count' | 'totalClients'>) {
    for (let p = 0; p < processes; p++) {
      const child = forkChild('./load-client.ts');
      const share: LoadPlan = { ...plan, firstIndex: p, stride: processes, count: Math.floor((total - 1 - p) / processes) + 1, totalClients: total };
      child.send({ cmd: 'prepare', plan: share } satisfies LoadCommand);
      this.#children.push(child);
    }
  }

  get size(): number {
    return this.#children.length;
  }

  broadcast(command: LoadCommand): void {
    for (const child of this.#children) if (child.connected) child.send(command);
  }

  /** One report of kind `ev` from every process; a process reporting an error aborts the run. */
  gather<E extends Exclude<LoadReport['ev'], 'error'>>(ev: E, timeoutMs: number): Promise<ReportOf<E>[]> {
    return Promise.all(
      this.#children.map(async (child) => {
        const message = await nextMessage<LoadReport>(child, (m) => m.ev === ev || m.ev === 'error', timeoutMs, `load generator (${ev})`);
        if (message.ev === 'error') throw new BenchAbort(`load generator failed: ${message.message}`);
        return (message as { report: unknown }).report as ReportOf<E>;
      }),
    );
  }

  /** CPU time of all load processes so far, ms. */
  cpuMs(): number {
    let sum = 0;
    for (const child of this.#children) {
      try {
        sum += processCpuMs(child.pid!);
      } catch {
        throw new BenchAbort(`load generator process ${child.pid} is gone`);
      }
    }
    return sum;
  }

  async waitExit(timeoutMs: number): Promise<void> {
    await Promise.all(this.#children.map((child) => waitExit(child, timeoutMs)));
  }

  kill(): void {
    for (const child of this.#children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
