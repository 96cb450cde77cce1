// The Prometheus naming rules in tests/helpers/prometheus-names.ts: the in-process rules against the
// real @opentelemetry/exporter-prometheus output, the collector rules against the translator's
// documented cases, and the relabel rules that map one onto the other for direct scraping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { createInstruments } from '../../../telemetry/instruments.ts';
import { ATTR } from '../../../telemetry/attributes.ts';
import {
  describeInstruments,
  prometheusMetricName,
  prometheusNames,
  prometheusLabelName,
  type InstrumentDescriptor,
} from '../../helpers/prometheus-names.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Records one value on every instrument and returns what the in-process exporter serves. */
async function inProcessExposition(): Promise<string> {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  const instruments = createInstruments(provider.getMeter('voice-session-server'));
  const attributes = { [ATTR.worker]: 0, [ATTR.state]: 'listening' };
  for (const instrument of Object.values(instruments) as object[]) {
    if ('add' in instrument) (instrument as { add(v: number, a: object): void }).add(1, attributes);
    else if ('record' in instrument) (instrument as { record(v: number, a: object): void }).record(0.1, attributes);
    else (instrument as { addCallback(cb: (r: { observe(v: number, a: object): void }) => void): void }).addCallback((r) => r.observe(1, attributes));
  }
  const { resourceMetrics, errors } = await exporter.collect();
  assert.deepEqual(errors, []);
  await provider.shutdown();
  return new PrometheusSerializer().serialize(resourceMetrics);
}

test('in-process rules match what @opentelemetry/exporter-prometheus serves', async () => {
  const text = await inProcessExposition();
  const served = new Set(
    text
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0])
      .filter((name) => name !== 'target_info'),
  );
  assert.deepEqual([...served].sort(), [...prometheusNames({ exporter: 'in-process' })].sort());
  assert.match(text, /voice_worker="0"/, 'attribute voice.worker becomes label voice_worker');
  assert.equal(prometheusLabelName(ATTR.worker), 'voice_worker');
});

test('collector rules: the translator documented cases and our units', () => {
  const name = (n: string, unit: string, kind: InstrumentDescriptor['kind']) => prometheusMetricName({ name: n, unit, kind });
  // Cases from the OpenTelemetry-to-Prometheus translator (prometheus/otlptranslator) documentation.
  assert.equal(name('http.server.request.duration', 's', 'histogram'), 'http_server_request_duration_seconds');
  assert.equal(name('requests.count', '1', 'counter'), 'requests_count_total');
  assert.equal(name('memory.usage', 'By', 'gauge'), 'memory_usage_bytes');
  assert.equal(name('cpu.utilization', '1', 'gauge'), 'cpu_utilization_ratio');
  assert.equal(name('network.io', 'By/s', 'gauge'), 'network_io_bytes_per_second');
  assert.equal(name('requests.total', '{request}', 'counter'), 'requests_total');
  assert.equal(name('request.duration.seconds', 's', 'histogram'), 'request_duration_seconds');
  // Ours.
  const byName = new Map(describeInstruments().map((d) => [d.name, prometheusMetricName(d)]));
  assert.equal(byName.get('voice.session.turn_latency'), 'voice_session_turn_latency_seconds');
  assert.equal(byName.get('voice.sessions.created'), 'voice_sessions_created_total');
  assert.equal(byName.get('voice.sessions.active'), 'voice_sessions_active');
  assert.equal(byName.get('media.worker.event_loop_lag'), 'media_worker_event_loop_lag_seconds');
  assert.equal(byName.get('rtc.outbound.bitrate'), 'rtc_outbound_bitrate_bit_per_second');
  assert.equal(byName.get('rtc.concealed_samples'), 'rtc_concealed_samples_total');
  const names = prometheusNames();
  assert.ok(names.has('voice_session_turn_latency_seconds_bucket'));
  assert.ok(!names.has('voice_session_turn_latency_seconds'), 'a classic histogram has no bare series');
});

/** Prometheus relabeling, action "replace" (the default): anchored regex, Go-style ${1} expansion. */
function relabelName(name: string, rules: Record<string, any>[]): string {
  let current = name;
  for (const rule of rules) {
    assert.equal(rule.action ?? 'replace', 'replace');
    assert.deepEqual(rule.source_labels, ['__name__']);
    assert.equal(rule.target_label, '__name__');
    const m = new RegExp(`^(?:${rule.regex})$`).exec(current);
    if (!m) continue;
    // Go's regexp Expand: $name takes the longest run of [A-Za-z0-9_], so "$1_seconds" is group "1_seconds".
    current = String(rule.replacement).replace(/\$\{(\w+)\}|\$(\w+)/g, (_all, braced, bare) => {
      const ref = braced ?? bare;
      return /^\d+$/.test(ref) ? (m[Number(ref)] ?? '') : (m.groups?.[ref] ?? '');
    });
  }
  return current;
}

test('direct-scrape relabel rules turn every in-process name into the collector name', () => {
  const config = parseYaml(readFileSync(join(ROOT, 'deploy/prometheus/direct-scrape.example.yml'), 'utf8'));
  const [job] = config.scrape_configs;
  assert.equal(job.metrics_path, '/metrics');
  for (const d of describeInstruments()) {
    const suffixes = d.kind === 'histogram' ? ['_bucket', '_sum', '_count'] : [''];
    for (const suffix of suffixes) {
      const inProcess = prometheusMetricName(d, 'in-process') + suffix;
      assert.equal(relabelName(inProcess, job.metric_relabel_configs), prometheusMetricName(d) + suffix, `${d.name} (${d.unit})`);
    }
  }
});
