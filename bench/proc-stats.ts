// Readers of Linux /proc for the benchmark: a process's CPU time and RSS, the whole machine's CPU
// use, and the kernel's UDP drop counters.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clockTicks: number | null = null;

/** Kernel clock ticks per second (`getconf CLK_TCK`), the unit of utime/stime in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  if (clockTicks !== null) return clockTicks;
  try {
    clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    clockTicks = 100;
  }
  return clockTicks;
}

/** utime + stime of a process, all threads, in ms. */
export function processCpuMs(pid: number): number {
  const { userMs, systemMs } = processCpuSplitMs(pid);
  return userMs + systemMs;
}

/** utime and stime of a process, all threads, in ms. */
export function processCpuSplitMs(pid: number): { userMs: number; systemMs: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) is in parentheses and may contain spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const toMs = 1000 / clockTicksPerSecond();
  return { userMs: Number(fields[11]) * toMs, systemMs: Number(fields[12]) * toMs }; // fields 14, 15 overall
}

/** Resident set size of a process, in bytes (VmRSS). */
export function processRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

export interface MachineCpu {
  /** CPU time spent busy, summed over all cores, ms. */
  busyMs: number;
  totalMs: number;
}

/** Aggregate CPU counters of the machine (all cores), from the "cpu" line of /proc/stat. */
export function machineCpu(): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
  const total = values.reduce((sum, v) => sum + v, 0);
  const idle = values[3]! + values[4]!;
  const toMs = 1000 / clockTicksPerSecond();
  return { busyMs: (total - idle) * toMs, totalMs: total * toMs };
}

/** Share of the machine's CPU capacity in use between two readings, 0-100. */
export function machineBusyPercent(from: MachineCpu, to: MachineCpu): number {
  const total = to.totalMs - from.totalMs;
  return total > 0 ? ((to.busyMs - from.busyMs) / total) * 100 : 0;
}

export interface UdpCounters {
  inErrors: number;
  rcvbufErrors: number;
  sndbufErrors: number;
}

/** Machine-wide UDP error counters (/proc/net/snmp): datagrams the kernel dropped. */
export function udpCounters(): UdpCounters {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/).map(Number) ?? [];
  const get = (name: string): number => values[names.indexOf(name)] ?? 0;
  return { inErrors: get('InErrors'), rcvbufErrors: get('RcvbufErrors'), sndbufErrors: get('SndbufErrors') };
}
