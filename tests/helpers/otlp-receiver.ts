// An in-test OTLP/HTTP receiver (JSON encoding, what @opentelemetry/exporter-*-otlp-http send):
// collects every metric data point and span the server exports.
import { createServer, type Server } from 'node:http';

export interface ReceivedMetric {
  name: string;
  unit: string;
  kind: 'sum' | 'gauge' | 'histogram';
  points: { attributes: Record<string, unknown>; value: number; count?: number; sum?: number; buckets?: number[] }[];
}

export interface ReceivedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  startMs: number;
  endMs: number;
  attributes: Record<string, unknown>;
}

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
const value = (v: AnyValue): unknown => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.doubleValue ?? v.boolValue;
const attrs = (list: { key: string; value: AnyValue }[] = []) => Object.fromEntries(list.map((a) => [a.key, value(a.value)]));

export class OtlpReceiver {
  readonly metricBatches: ReceivedMetric[][] = [];
  readonly spans: ReceivedSpan[] = [];
  readonly #server: Server;
  #waiters: (() => void)[] = [];
  url = '';

  constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
          if (req.url === '/v1/metrics') this.#onMetrics(body);
          else if (req.url === '/v1/traces') this.#onTraces(body);
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        } catch {
          res.writeHead(400).end();
        }
        for (const w of this.#waiters.splice(0)) w();
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as { port: number }).port}`;
    return this.url;
  }

  /** The latest value of each metric (metrics are cumulative: the last batch holds the totals). */
  latest(name: string): ReceivedMetric | undefined {
    for (let i = this.metricBatches.length - 1; i >= 0; i--) {
      const m = this.metricBatches[i]!.find((x) => x.name === name);
      if (m) return m;
    }
    return undefined;
  }

  names(): Set<string> {
    return new Set(this.metricBatches.flat().map((m) => m.name));
  }

  /** Resolves once `check()` holds after some export arrived; bounded. */
  async until(check: () => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('OTLP receiver: condition not met in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #onMetrics(body: { resourceMetrics?: { scopeMetrics?: { metrics?: Record<string, any>[] }[] }[] }): void {
    const batch: ReceivedMetric[] = [];
    for (const rm of body.resourceMetrics ?? []) {
      for (const sm of rm.scopeMetrics ?? []) {
        for (const m of sm.metrics ?? []) {
          const kind = m.sum ? 'sum' : m.gauge ? 'gauge' : 'histogram';
          const data = m.sum ?? m.gauge ?? m.histogram;
          batch.push({
            name: m.name,
            unit: m.unit ?? '',
            kind,
            points: (data?.dataPoints ?? []).map((p: Record<string, any>) => ({
              attributes: attrs(p.attributes),
              value: p.asDouble ?? (p.asInt !== undefined ? Number(p.asInt) : Number(p.sum ?? 0)),
              count: p.count !== undefined ? Number(p.count) : undefined,
              sum: p.sum,
              buckets: p.bucketCounts?.map(Number),
            })),
          });
        }
      }
    }
    this.metricBatches.push(batch);
  }

  #onTraces(body: { resourceSpans?: { scopeSpans?: { spans?: Record<string, any>[] }[] }[] }): void {
    for (const rs of body.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({
            name: s.name,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? '',
            startMs: Number(BigInt(s.startTimeUnixNano) / 1_000_000n),
            endMs: Number(BigInt(s.endTimeUnixNano) / 1_000_000n),
            attributes: attrs(s.attributes),
          });
        }
      }
    }
  }
}
