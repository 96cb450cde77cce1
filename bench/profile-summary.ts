// Summarises V8 CPU profiles (.cpuprofile, as written by BENCH_SERVER_CPU_PROF or node --cpu-prof):
// per profile (one per thread), the self time by source file and the functions that cost most.
// Native and garbage-collector time shows under "(program)", "(garbage collector)" and the like.
//
//   node --import tsx bench/profile-summary.ts <dir or file>... [--top 25] [--from S] [--to S] [--timeline]
//
// --from/--to: only the samples between these seconds after the profile's start (a benchmark step's
// window); --timeline: busy milliseconds per second over the profile, to find such windows.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
function option(name: string, fallback: number): number {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args.splice(at, 2)[1]) : fallback;
}
const top = option('--top', 25);
const fromS = option('--from', 0);
const toS = option('--to', Infinity);
const timelineAt = args.indexOf('--timeline');
const timeline = timelineAt >= 0 && args.splice(timelineAt, 1).length > 0;
if (args.length === 0 || !Number.isInteger(top) || top < 1 || !(fromS >= 0) || !(toS > fromS)) {
  console.error('usage: bench/profile-summary.ts <dir or .cpuprofile>... [--top N] [--from S] [--to S] [--timeline]');
  process.exit(2);
}
const files = args.flatMap((path) =>
  statSync(path).isDirectory() ? readdirSync(path).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(path, f)) : [path],
);

for (const file of files.sort()) summarise(file, JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);

function summarise(file: string, profile: CpuProfile): void {
  // Self time: each sample's delta goes to the node it landed in.
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const idleIds = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  const selfUs = new Map<number, number>();
  const busyPerSecondUs: number[] = [];
  let atUs = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    atUs += delta;
    if (atUs < fromS * 1e6 || atUs > toS * 1e6) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
    const second = Math.floor(atUs / 1e6);
    if (!idleIds.has(id)) busyPerSecondUs[second] = (busyPerSecondUs[second] ?? 0) + delta;
  });
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byNode.get(id)!.callFrame;
    const where = shortUrl(frame.url);
    const fn = `${frame.functionName || '(anonymous)'}  ${where}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byFile.set(where || frame.functionName, (byFile.get(where || frame.functionName) ?? 0) + us);
    totalUs += us;
  }
  const idle = (byFile.get('(idle)') ?? 0) / 1000;
  const wallMs = (profile.endTime - profile.startTime) / 1000;
  console.log(`\n${basename(file)}: ${(wallMs / 1000).toFixed(1)} s profiled, ${((totalUs / 1000 - idle) / 1000).toFixed(2)} s busy`);
  if (timeline) console.log(`  busy ms per second: ${Array.from(busyPerSecondUs, (us, s) => `${s}:${Math.round((us ?? 0) / 1000)}`).join(' ')}`);
  print('self time by file', byFile, totalUs);
  print('self time by function', byFunction, totalUs);
}

function print(title: string, table: Map<string, number>, totalUs: number): void {
  console.log(`  ${title}:`);
  for (const [name, us] of [...table].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`    ${(us / 1000).toFixed(0).padStart(8)} ms ${((us / totalUs) * 100).toFixed(1).padStart(5)}%  ${name}`);
  }
}

function shortUrl(url: string): string {
  const at = url.indexOf('/node_modules/');
  if (at >= 0) return url.slice(at + 1);
  return url.replace(/^file:\/\/.*?\/(server|media|signaling|providers|telemetry|bench|client)\//, '$1/');
}
