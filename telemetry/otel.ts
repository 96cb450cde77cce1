// Starts the OpenTelemetry SDK. Called only by the process entry (server/main.ts); everything else
// uses @opentelemetry/api. With no endpoint configured nothing is exported and nothing fails; an
// unreachable collector is logged once per export interval, never per data point.
import { NodeSDK } from '@opentelemetry/sdk-node';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import {
  PeriodicExportingMetricReader,
  ConsoleMetricExporter,
  AggregationTemporality,
  type PushMetricExporter,
  type ResourceMetrics,
  type MetricReader,
} from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanExporter, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ExportResult } from '@opentelemetry/core';
import { diag, DiagLogLevel } from '@opentelemetry/api';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TelemetryConfig } from '../server/config.ts';

export interface TelemetryLogger {
  warn(object: object, message: string): void;
}

export interface Telemetry {
  /** Serves Prometheus text format (when PROMETHEUS_METRICS=true), else null. */
  prometheusHandler: ((req: IncomingMessage, res: ServerResponse) => void) | null;
  shutdown(): Promise<void>;
}

/** Reports a failed export at most once per interval, without the payload or the headers. */
class FailureLog {
  #lastAt = -Infinity;
  constructor(
    private readonly what: string,
    private readonly intervalMs: number,
    private readonly log: TelemetryLogger,
  ) {}
  report(result: ExportResult): void {
    if (result.code === 0) return;
    this.fail(result.error?.message ?? 'export failed');
  }
  fail(message: string): void {
    const now = Date.now();
    if (now - this.#lastAt < this.intervalMs) return;
    this.#lastAt = now;
    this.log.warn({ exporter: this.what, err: message.slice(0, 300) }, 'telemetry export failed; the server keeps serving');
  }
}

class QuietMetricExporter implements PushMetricExporter {
  constructor(private readonly inner: PushMetricExporter, private readonly failures: FailureLog) {}
  export(metrics: ResourceMetrics, done: (result: ExportResult) => void): void {
    this.inner.export(metrics, (result) => {
      this.failures.report(result);
      done(result);
    });
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  selectAggregationTemporality(): AggregationTemporality {
    return AggregationTemporality.CUMULATIVE;
  }
}

class QuietSpanExporter implements SpanExporter {
  constructor(private readonly inner: SpanExporter, private readonly failures: FailureLog) {}
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      this.failures.report(result);
      done(result);
    });
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

export function startTelemetry(config: TelemetryConfig, log: TelemetryLogger): Telemetry {
  // The SDK reports export timeouts and retries through `diag`: route its errors through the same
  // once-per-interval log instead of dropping them (or printing one line per data point).
  const sdkFailures = new FailureLog('otel-sdk', config.metricExportIntervalMs, log);
  diag.setLogger(
    {
      error: (message) => sdkFailures.fail(message),
      warn: (message) => sdkFailures.fail(message),
      info: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const readers: MetricReader[] = [];
  const spanProcessors: SpanProcessor[] = [];
  const base = config.otlpEndpoint?.replace(/\/+$/, '');
  const headers = config.otlpHeaders;

  if (base && config.metricsExporter === 'otlp') {
    const exporter = new OTLPMetricExporter({ url: `${base}/v1/metrics`, headers });
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new QuietMetricExporter(exporter, new FailureLog('otlp-metrics', config.metricExportIntervalMs, log)),
        exportIntervalMillis: config.metricExportIntervalMs,
        exportTimeoutMillis: Math.min(30_000, config.metricExportIntervalMs),
      }),
    );
  }
  if (config.consoleExport) {
    readers.push(new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter(), exportIntervalMillis: config.metricExportIntervalMs }));
  }
  let prometheus: PrometheusExporter | null = null;
  if (config.prometheus) {
    prometheus = new PrometheusExporter({ preventServerStart: true });
    readers.push(prometheus);
  }
  if (config.enableTracing && base && config.tracesExporter === 'otlp') {
    const exporter = new OTLPTraceExporter({ url: `${base}/v1/traces`, headers });
    spanProcessors.push(new BatchSpanProcessor(new QuietSpanExporter(exporter, new FailureLog('otlp-traces', 5000, log)), { scheduledDelayMillis: 1000 }));
  }
  if (config.enableTracing && config.consoleExport) spanProcessors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()));

  if (readers.length === 0 && spanProcessors.length === 0) {
    return { prometheusHandler: null, shutdown: async () => undefined };
  }
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ 'service.name': config.serviceName }),
    metricReaders: readers,
    spanProcessors,
    logRecordProcessors: [],
    instrumentations: [],
    // The SDK would otherwise build its own exporters from OTEL_* again; ours are explicit.
    traceExporter: undefined,
  });
  sdk.start();
  return {
    prometheusHandler: prometheus ? (req, res) => prometheus!.getMetricsRequestHandler(req, res) : null,
    shutdown: () => sdk.shutdown().catch(() => undefined),
  };
}
