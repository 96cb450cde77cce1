// The Prometheus series names our instruments turn into, derived from telemetry/instruments.ts itself
// (names, units and instrument kinds), so dashboards, alerts and docs can be checked against the code.
//
// Two exporters name series differently, and both rule sets are implemented here:
// - 'collector': the OpenTelemetry Collector's prometheus exporter (default translation strategy
//   UnderscoreEscapingWithSuffixes, no namespace). Name split on every character outside [a-zA-Z0-9:]
//   and joined with '_'; unit suffix from the UCUM unit (s -> seconds, By -> bytes, ms -> milliseconds,
//   a unit in curly braces -> nothing, a unit not in the map is kept as is, "X/Y" -> X + "per" + Y with
//   s -> second), not repeated when the name already contains that token; '_total' for monotonic sums
//   (counters); '_ratio' for gauges with unit "1". This is what docker-compose.yml, the dashboard and
//   alerts.yml see.
// - 'in-process': @opentelemetry/exporter-prometheus 0.223.0 (`/metrics` with PROMETHEUS_METRICS=true).
//   Characters outside [a-zA-Z0-9_] become '_' and runs of '_' collapse; '_total' for monotonic sums;
//   NO unit suffix (voice_session_turn_latency_bucket, not ..._seconds_bucket).
// Histograms expose <name>_bucket, <name>_sum and <name>_count in both; there is no bare <name> series.
import type { Meter } from '@opentelemetry/api';
import { createInstruments, METRIC } from '../../telemetry/instruments.ts';

export type InstrumentKind = 'counter' | 'updowncounter' | 'histogram' | 'gauge';
export type PrometheusExporterKind = 'collector' | 'in-process';

export interface InstrumentDescriptor {
  /** The OpenTelemetry name, e.g. voice.session.turn_latency. */
  name: string;
  unit: string;
  kind: InstrumentKind;
}

const KIND_BY_FACTORY: Record<string, InstrumentKind> = {
  createCounter: 'counter',
  createObservableCounter: 'counter',
  createUpDownCounter: 'updowncounter',
  createObservableUpDownCounter: 'updowncounter',
  createHistogram: 'histogram',
  createGauge: 'gauge',
  createObservableGauge: 'gauge',
};

/** Every instrument createInstruments() makes, read by handing it a meter that records the calls. */
export function describeInstruments(): InstrumentDescriptor[] {
  const seen: InstrumentDescriptor[] = [];
  const instrument = new Proxy({}, { get: () => () => undefined });
  const meter = new Proxy({} as Meter, {
    get(_target, factory) {
      return (name: string, options?: { unit?: string }) => {
        const kind = KIND_BY_FACTORY[String(factory)];
        if (!kind) throw new Error(`describeInstruments: unexpected Meter.${String(factory)}`);
        seen.push({ name, unit: options?.unit ?? '', kind });
        return instrument;
      };
    },
  });
  createInstruments(meter);
  const declared = new Set<string>(Object.values(METRIC));
  const made = new Set(seen.map((d) => d.name));
  for (const name of declared) if (!made.has(name)) throw new Error(`METRIC.${name} has no instrument`);
  for (const name of made) if (!declared.has(name)) throw new Error(`instrument ${name} is not in METRIC`);
  return seen;
}

const UNIT_WORDS: Record<string, string> = {
  d: 'days', h: 'hours', min: 'minutes', s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds',
  By: 'bytes', KiBy: 'kibibytes', MiBy: 'mebibytes', GiBy: 'gibibytes', TiBy: 'tibibytes',
  KBy: 'kilobytes', MBy: 'megabytes', GBy: 'gigabytes', TBy: 'terabytes',
  m: 'meters', V: 'volts', A: 'amperes', J: 'joules', W: 'watts', g: 'grams',
  Cel: 'celsius', Hz: 'hertz', '1': '', '%': 'percent',
};
const PER_UNIT_WORDS: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

function unitTokens(unit: string): { main: string; per: string } {
  const [mainRaw = '', perRaw] = unit.split(/\/(.*)/s, 2);
  const clean = (word: string) => word.replace(/[^a-zA-Z0-9:]/g, '_').replace(/_{2,}/g, '_').replace(/^_/, '');
  const main = mainRaw.trim();
  const per = perRaw?.trim() ?? '';
  return {
    main: main !== '' && !/[{}]/.test(main) ? clean(UNIT_WORDS[main] ?? main) : '',
    per: per !== '' && !/[{}]/.test(per) ? clean(`per_${PER_UNIT_WORDS[per] ?? per}`) : '',
  };
}

/** The metric family name (before _bucket/_sum/_count) of one instrument. */
export function prometheusMetricName(d: InstrumentDescriptor, exporter: PrometheusExporterKind = 'collector'): string {
  const monotonic = d.kind === 'counter';
  if (exporter === 'in-process') {
    const name = d.name.replace(/[^a-z0-9_]/gi, '_').replace(/_{2,}/g, '_');
    return monotonic && !name.endsWith('_total') ? `${name}_total` : name;
  }
  let tokens = d.name.split(/[^a-zA-Z0-9:]+/).filter(Boolean);
  let { main, per } = unitTokens(d.unit);
  if (tokens.includes(main)) main = '';
  if (per === 'per_') per = '';
  else {
    per = per.replace(/_$/, '');
    if (tokens.includes(per)) per = '';
  }
  if (per !== '') main = main.replace(/_$/, '');
  if (main !== '') tokens.push(main);
  if (per !== '') tokens.push(per);
  if (monotonic) tokens = [...tokens.filter((t) => t !== 'total'), 'total'];
  if (d.unit === '1' && d.kind === 'gauge') tokens = [...tokens.filter((t) => t !== 'ratio'), 'ratio'];
  const name = tokens.join('_');
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** The series names one instrument produces (histograms: _bucket, _sum, _count). */
export function prometheusSeriesNames(d: InstrumentDescriptor, exporter: PrometheusExporterKind = 'collector'): string[] {
  const family = prometheusMetricName(d, exporter);
  return d.kind === 'histogram' ? [`${family}_bucket`, `${family}_sum`, `${family}_count`] : [family];
}

/**
 * Every series name the server's metrics can appear under in Prometheus. Default: as scraped from the
 * collector (the compose stack); `{ exporter: 'in-process' }`: as served on the server's own /metrics.
 */
export function prometheusNames(options: { exporter?: PrometheusExporterKind } = {}): Set<string> {
  const names = new Set<string>();
  for (const d of describeInstruments()) {
    for (const series of prometheusSeriesNames(d, options.exporter ?? 'collector')) names.add(series);
  }
  return names;
}

/** Prometheus label name of an attribute (both exporters): voice.worker -> voice_worker. */
export function prometheusLabelName(attribute: string): string {
  return attribute.replace(/[^a-zA-Z0-9_]/g, '_').replace(/_{2,}/g, '_');
}
