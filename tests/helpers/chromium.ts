// Launches Debian's Chromium for e2e tests: headless, a fake microphone that plays a WAV file in a
// loop, autoplay allowed, and every console line and page error kept for the failure report.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export interface ChromiumOptions {
  /** WAV file the fake microphone plays (Chromium loops it). */
  fakeAudioCapture: string;
}

export interface ChromiumSession {
  context: BrowserContext;
  page: Page;
  /** Console output, page errors and failed requests, in order. */
  readonly log: string[];
  close(): Promise<void>;
}

export async function launchChromium(options: ChromiumOptions): Promise<ChromiumSession> {
  if (!existsSync(CHROMIUM_PATH)) {
    // A missing browser must fail the run, never skip it: CI would stay green without e2e coverage.
    throw new Error(`${CHROMIUM_PATH} not found: run \`bash scripts/setup.sh\` (installs Debian's chromium package)`);
  }
  const profile = await mkdtemp(join(tmpdir(), 'voice-e2e-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      timeout: 15_000,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
        `--use-file-for-fake-audio-capture=${options.fakeAudioCapture}`,
        '--autoplay-policy=no-user-gesture-required',
      ],
    });
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const log: string[] = [];
  const started = Date.now();
  const stamp = () => `+${String(Date.now() - started).padStart(5)} ms`;
  page.on('console', (m) => {
    const where = m.location().url;
    log.push(`${stamp()} [console.${m.type()}] ${m.text()}${where ? ` (${where})` : ''}`);
  });
  page.on('pageerror', (e) => log.push(`${stamp()} [pageerror] ${e.stack ?? e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) log.push(`${stamp()} [http ${r.status()}] ${r.url()}`);
  });
  page.on('requestfailed', (r) => log.push(`${stamp()} [requestfailed] ${r.url()}: ${r.failure()?.errorText ?? '?'}`));
  page.on('websocket', (ws) => {
    log.push(`${stamp()} [websocket] open ${ws.url()}`);
    ws.on('framesent', (f) => log.push(`${stamp()} [ws >] ${String(f.payload).slice(0, 200)}`));
    ws.on('framereceived', (f) => log.push(`${stamp()} [ws <] ${String(f.payload).slice(0, 200)}`));
    ws.on('close', () => log.push(`${stamp()} [websocket] closed`));
  });

  let closed = false;
  return {
    context,
    page,
    log,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await context.close();
      } finally {
        await rm(profile, { recursive: true, force: true });
      }
    },
  };
}
