// The docker-compose stack is consistent without a Docker engine: every mounted file exists, every
// host:port one service dials is a service listening on that port, the collector's pipelines are
// complete, and every PromQL name in the dashboard and the alert rules is one the server exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { ATTR } from '../../../telemetry/attributes.ts';
import { ERRORS } from '../../../signaling/errors.ts';
import { describeInstruments, prometheusLabelName, prometheusMetricName, prometheusNames } from '../../helpers/prometheus-names.ts';
import { promqlNames } from '../../helpers/promql.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
type Obj = Record<string, any>;

/** Compose's ${VAR:-default} / ${VAR-default} interpolation with an empty environment. */
function interpolate(text: string): string {
  return text.replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_m, _name, fallback) => fallback ?? '');
}
const readYaml = (path: string): Obj => parseYaml(interpolate(readFileSync(path, 'utf8')));

const compose = readYaml(join(ROOT, 'docker-compose.yml'));
const services: Record<string, Obj> = compose.services;

interface Mount {
  host: string;
  target: string;
}
function bindMounts(service: string): Mount[] {
  return (services[service].volumes ?? []).flatMap((v: string | Obj) => {
    const [source, target] = typeof v === 'string' ? v.split(':') : [v.source, v.target];
    const bind = typeof v === 'string' ? /^[./~]/.test(source) : v.type === 'bind';
    return bind ? [{ host: resolve(ROOT, source), target }] : [];
  });
}
/** The host path behind a path inside a service's container, through its bind mounts. */
function hostPath(service: string, containerPath: string): string {
  for (const { host, target } of bindMounts(service)) {
    if (containerPath === target) return host;
    if (containerPath.startsWith(`${target}/`)) return join(host, containerPath.slice(target.length + 1));
  }
  throw new Error(`${service}: ${containerPath} is not under a bind mount`);
}

function expandPorts(spec: string): number[] {
  const [lo, hi = lo] = spec.split('-').map(Number);
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}
interface Published {
  host: string;
  container: string;
  protocol: string;
}
function publishedPorts(service: string): Published[] {
  return (services[service].ports ?? []).map((p: string) => {
    const [ports, protocol = 'tcp'] = String(p).split('/');
    const parts = ports.split(':');
    return { host: parts.at(-2) ?? parts[0], container: parts.at(-1)!, protocol };
  });
}
function commandFlag(service: string, flag: string): string | undefined {
  const command: string[] = [].concat(services[service].command ?? []);
  return command.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
}

// Collector config, found through the --config flag and the mounts.
const collectorConfigPath = hostPath('otel-collector', commandFlag('otel-collector', '--config')!);
const collector = readYaml(collectorConfigPath);
const endpointPort = (endpoint: string) => Number(/:(\d+)$/.exec(endpoint)?.[1]);
const collectorListens = new Map<number, string>([
  [endpointPort(collector.receivers.otlp.protocols.grpc.endpoint), 'otlp grpc receiver'],
  [endpointPort(collector.receivers.otlp.protocols.http.endpoint), 'otlp http receiver'],
  [endpointPort(collector.exporters.prometheus.endpoint), 'prometheus exporter'],
  ...Object.values<Obj>(collector.extensions ?? {}).filter((e) => e?.endpoint).map((e) => [endpointPort(e.endpoint), 'extension'] as [number, string]),
]);

/** Ports a service's container listens on: published, exposed, or set in its own config. */
function listeningPorts(service: string): Set<number> {
  const ports = new Set<number>();
  for (const p of publishedPorts(service)) expandPorts(p.container).forEach((n) => ports.add(n));
  for (const e of services[service].expose ?? []) expandPorts(String(e).split('/')[0]).forEach((n) => ports.add(n));
  const listen = commandFlag(service, '--web.listen-address');
  if (listen) ports.add(endpointPort(listen));
  return ports;
}

function assertReachable(from: string, what: string, hostPort: string): { service: string; port: number } {
  const m = /^(?:[a-z]+:\/\/)?([^/:]+):(\d+)/.exec(hostPort);
  assert.ok(m, `${from}: ${what} "${hostPort}" has no host:port`);
  const [, service, port] = m;
  assert.ok(services[service], `${from}: ${what} points at "${service}", not a compose service (${Object.keys(services).join(', ')})`);
  assert.ok(listeningPorts(service).has(Number(port)), `${from}: ${what} dials ${service}:${port}, but ${service} listens on ${[...listeningPorts(service)].join(', ')}`);
  return { service, port: Number(port) };
}

const prometheusConfigPath = hostPath('prometheus', commandFlag('prometheus', '--config.file')!);
const prometheusConfig = readYaml(prometheusConfigPath);
const datasourceDir = hostPath('grafana', '/etc/grafana/provisioning/datasources');
const datasources: Obj[] = readdirSync(datasourceDir).flatMap((f) => readYaml(join(datasourceDir, f)).datasources ?? []);
const providerDir = hostPath('grafana', '/etc/grafana/provisioning/dashboards');
const providers: Obj[] = readdirSync(providerDir).flatMap((f) => readYaml(join(providerDir, f)).providers ?? []);
const dashboardFiles = providers.flatMap((p) => {
  const dir = hostPath('grafana', p.options.path);
  return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => join(dir, f));
});
const ruleFiles = (prometheusConfig.rule_files as string[]).map((f) => hostPath('prometheus', posix.resolve(posix.dirname(commandFlag('prometheus', '--config.file')!), f)));

/** Every host:port one service's configuration dials. */
const REFERENCES: { from: string; what: string; url: string }[] = [
  { from: 'voice-server', what: 'OTEL_EXPORTER_OTLP_ENDPOINT', url: services['voice-server'].environment.OTEL_EXPORTER_OTLP_ENDPOINT },
  { from: 'voice-server', what: 'REDIS_URL', url: services['voice-server'].environment.REDIS_URL },
  ...Object.entries<Obj>(collector.exporters)
    .filter(([, e]) => typeof e?.endpoint === 'string' && !e.endpoint.startsWith('0.0.0.0'))
    .map(([id, e]) => ({ from: 'otel-collector', what: `exporter ${id}`, url: e.endpoint as string })),
  ...prometheusConfig.scrape_configs.flatMap((s: Obj) =>
    s.static_configs.flatMap((c: Obj) => c.targets.map((t: string) => ({ from: 'prometheus', what: `scrape target of job ${s.job_name}`, url: t }))),
  ),
  ...datasources.map((d) => ({ from: 'grafana', what: `datasource ${d.name}`, url: d.url as string })),
];

test('every bind-mounted host path exists, and every image is pinned', () => {
  for (const name of Object.keys(services)) {
    for (const { host } of bindMounts(name)) assert.ok(existsSync(host), `${name}: mounted ${host} does not exist`);
    const image: string | undefined = services[name].image;
    if (services[name].build) continue;
    assert.match(image ?? '', /^[\w./-]+:[\w.-]*\d[\w.-]*$/, `${name}: image "${image}" must carry a version tag`);
  }
  for (const [name, service] of Object.entries(services)) {
    for (const value of Object.values<string>(service.environment ?? {})) {
      if (typeof value === 'string' && value.startsWith('/') && bindMounts(name).some((m) => value.startsWith(`${m.target}/`))) {
        assert.ok(existsSync(hostPath(name, value)), `${name}: environment points at ${value}, missing on the host`);
      }
    }
  }
});

test('the voice server: media ports, telemetry, Redis, health check and drain fit together', () => {
  const server = services['voice-server'];
  const env: Obj = server.environment;
  const [lo, hi] = env.RTC_PORT_RANGE.split('-').map(Number);
  const udp = publishedPorts('voice-server').filter((p) => p.protocol === 'udp');
  assert.deepEqual(udp.map((p) => [p.host, p.container]), [[`${lo}-${hi}`, `${lo}-${hi}`]], 'publish exactly RTC_PORT_RANGE, same numbers outside and inside (they are in the ICE candidates)');
  assert.ok(Number(env.MAX_SESSIONS) <= hi - lo + 1, 'MAX_SESSIONS must not exceed the number of UDP ports (one per session)');
  assert.match(env.RTC_ANNOUNCED_ADDRESS, /^\d+\.\d+\.\d+\.\d+$/);

  const otlp = assertReachable('voice-server', 'OTEL_EXPORTER_OTLP_ENDPOINT', env.OTEL_EXPORTER_OTLP_ENDPOINT);
  assert.equal(otlp.service, 'otel-collector');
  assert.equal(collectorListens.get(otlp.port), 'otlp http receiver', 'the server speaks OTLP/HTTP: it must reach the http receiver');
  assert.match(env.OTEL_EXPORTER_OTLP_ENDPOINT, /^http:\/\/[^/]+$/, 'the endpoint is a base URL; the SDK appends /v1/metrics and /v1/traces');
  assert.equal(env.ENABLE_TRACING, 'true');
  assert.equal(assertReachable('voice-server', 'REDIS_URL', env.REDIS_URL).service, 'redis');

  assert.ok(publishedPorts('voice-server').some((p) => p.container === '8080' && p.protocol === 'tcp'), 'HTTP/WebSocket port 8080 published');
  const check = server.healthcheck.test.join(' ');
  assert.match(check, /http:\/\/127\.0\.0\.1:8080\/healthz/, 'health check probes /healthz on the server port');
  const grace = /^(\d+)s$/.exec(server.stop_grace_period);
  assert.ok(grace && Number(grace[1]) * 1000 > Number(env.DRAIN_TIMEOUT_MS ?? 30_000), 'stop_grace_period must outlast DRAIN_TIMEOUT_MS, or Docker kills sessions mid-drain');
});

test('the collector: pipelines use defined components, listens where compose says, exports to live services', () => {
  const defined = (kind: string) => new Set(Object.keys(collector[kind] ?? {}));
  const used = { receivers: new Set<string>(), processors: new Set<string>(), exporters: new Set<string>() };
  for (const [name, pipeline] of Object.entries<Obj>(collector.service.pipelines)) {
    for (const kind of ['receivers', 'processors', 'exporters'] as const) {
      for (const id of pipeline[kind] ?? []) {
        assert.ok(defined(kind).has(id), `pipeline ${name} uses ${kind} "${id}", which is not defined`);
        used[kind].add(id);
      }
    }
    assert.ok((pipeline.receivers ?? []).length > 0 && (pipeline.exporters ?? []).length > 0, `pipeline ${name} needs receivers and exporters`);
  }
  for (const kind of ['receivers', 'processors', 'exporters'] as const) {
    for (const id of defined(kind)) assert.ok(used[kind].has(id), `${kind} "${id}" is defined but in no pipeline`);
  }
  for (const id of collector.service.extensions ?? []) assert.ok(defined('extensions').has(id), `extension "${id}" is not defined`);

  const exporterTypes = (pipeline: string) => collector.service.pipelines[pipeline].exporters.map((id: string) => id.split('/')[0]);
  assert.deepEqual(exporterTypes('metrics'), ['prometheus']);
  assert.deepEqual(exporterTypes('traces'), ['otlp']);
  assert.equal(collector.exporters.prometheus.namespace, undefined, 'a namespace would prefix every metric name');
  assert.notEqual(collector.exporters.prometheus.add_metric_suffixes, false, 'dashboards expect unit suffixes');

  for (const [port, what] of collectorListens) {
    assert.ok(listeningPorts('otel-collector').has(port), `collector ${what} listens on ${port}, not declared in docker-compose.yml`);
  }
  assert.deepEqual([...listeningPorts('otel-collector')].sort(), [...collectorListens.keys()].sort(), 'compose declares a collector port the config does not listen on');
  for (const [id, exporter] of Object.entries<Obj>(collector.exporters)) {
    if (id.startsWith('otlp')) assert.equal(assertReachable('otel-collector', `exporter ${id}`, exporter.endpoint).service, 'jaeger');
  }
  const endpoints = [collector.receivers.otlp.protocols.grpc.endpoint, collector.receivers.otlp.protocols.http.endpoint, collector.exporters.prometheus.endpoint];
  for (const e of endpoints) assert.match(e, /^0\.0\.0\.0:\d+$/, `${e}: must listen on all interfaces, or other containers cannot reach it`);
});

test('Prometheus scrapes the collector, Grafana reads Prometheus, and the rule files exist', () => {
  const targets = prometheusConfig.scrape_configs.flatMap((s: Obj) => s.static_configs.flatMap((c: Obj) => c.targets));
  assert.ok(targets.length > 0);
  for (const target of targets) {
    const { service, port } = assertReachable('prometheus', 'scrape target', target);
    assert.equal(service, 'otel-collector');
    assert.equal(collectorListens.get(port), 'prometheus exporter', `scrape target ${target} is not the collector's prometheus exporter`);
  }
  assert.ok(ruleFiles.length > 0, 'prometheus.yml loads the alert rules');
  for (const file of ruleFiles) assert.ok(existsSync(file), `rule file ${file} does not exist`);

  for (const ds of datasources) assertReachable('grafana', `datasource ${ds.name}`, ds.url);
  assert.equal(datasources.find((d) => d.type === 'prometheus')?.url, 'http://prometheus:9090');
  assert.ok(dashboardFiles.some((f) => f.endsWith('voice-server.json')), 'the provider loads voice-server.json');
});

test('every host:port a config dials is a service listening there, started before it (depends_on)', () => {
  for (const [name, service] of Object.entries(services)) {
    const deps = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
    for (const dep of deps) assert.ok(services[dep], `${name} depends on unknown service ${dep}`);
  }
  const dependsOn = (from: string) => {
    const d = services[from].depends_on ?? [];
    return new Set<string>(Array.isArray(d) ? d : Object.keys(d));
  };
  for (const { from, what, url } of REFERENCES) {
    assertReachable(from, what, url);
    const to = /^(?:[a-z]+:\/\/)?([^/:]+)/.exec(url)![1];
    assert.ok(dependsOn(from).has(to), `${from} dials ${url} but does not depend_on ${to}`);
  }
});

// --- PromQL names -----------------------------------------------------------------------------

interface Query {
  where: string;
  expr: string;
}
function dashboardQueries(file: string): Query[] {
  const dashboard = JSON.parse(readFileSync(file, 'utf8'));
  const queries: Query[] = [];
  const visit = (panels: Obj[]) => {
    for (const panel of panels ?? []) {
      for (const target of panel.targets ?? []) if (target.expr) queries.push({ where: `panel "${panel.title}"`, expr: target.expr });
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  for (const variable of dashboard.templating?.list ?? []) {
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    const m = /^label_values\((?:([^,]+),\s*)?(\w+)\)$/.exec(query ?? '');
    if (m?.[1]) queries.push({ where: `variable $${variable.name}`, expr: `group by (${m[2]}) (${m[1]})` });
  }
  return queries;
}
function alertQueries(): Query[] {
  return ruleFiles.flatMap((file) => readYaml(file).groups.flatMap((g: Obj) => g.rules.map((r: Obj) => ({ where: `alert ${r.alert ?? r.record}`, expr: r.expr }))));
}

test('the PromQL reader finds the metric and label names of an expression', () => {
  const names = promqlNames(
    'histogram_quantile(0.95, sum by (le, job) (rate(a_bucket{instance=~"$instance",type="X"}[$__rate_interval])))' +
      ' / on(job) group_left b_total offset 5m > bool 0.5 unless max without (thread) (c) or sum(d_count) by (state)',
  );
  assert.deepEqual([...names.metrics].sort(), ['a_bucket', 'b_total', 'c', 'd_count']);
  assert.deepEqual([...names.labels].sort(), ['instance', 'job', 'le', 'state', 'thread', 'type']);
  assert.deepEqual(names.matchers[1], { label: 'type', op: '=', value: 'X' });
});

const KNOWN_METRICS = prometheusNames();
const KNOWN_LABELS = new Set([
  ...Object.values(ATTR).map(prometheusLabelName),
  ...['le', 'job', 'instance', 'otel_scope_name', 'otel_scope_version'],
]);

function assertKnownNames(queries: Query[]): void {
  assert.ok(queries.length > 0);
  for (const { where, expr } of queries) {
    const names = promqlNames(expr);
    assert.ok(names.metrics.size > 0, `${where}: no metric in ${expr}`);
    for (const metric of names.metrics) {
      assert.ok(KNOWN_METRICS.has(metric), `${where}: unknown metric "${metric}" (not derived from telemetry/instruments.ts)`);
    }
    for (const label of names.labels) assert.ok(KNOWN_LABELS.has(label), `${where}: unknown label "${label}" (not in telemetry/attributes.ts)`);
    for (const { label, value } of names.matchers) {
      if (label === 'type') for (const code of value.split('|')) assert.ok(code in ERRORS, `${where}: type="${code}" is not an error code in signaling/errors.ts`);
      if (label === 'success') assert.match(value, /^(true|false)$/, `${where}: success is "true" or "false"`);
    }
  }
}

test('every metric and label in the dashboard is one the server exports', () => {
  for (const file of dashboardFiles) assertKnownNames(dashboardQueries(file));
});

test('every metric and label in the alert rules is one the server exports', () => {
  assertKnownNames(alertQueries());
  for (const file of ruleFiles) {
    for (const rule of readYaml(file).groups.flatMap((g: Obj) => g.rules)) {
      assert.ok(rule.labels?.severity && rule.annotations?.summary, `alert ${rule.alert}: needs labels.severity and annotations.summary`);
    }
  }
});

test('the dashboard shows every instrument, and its panels use the provisioned data sources', () => {
  const used = new Set(dashboardFiles.flatMap((f) => dashboardQueries(f).flatMap((q) => [...promqlNames(q.expr).metrics])));
  for (const d of describeInstruments()) {
    const family = prometheusMetricName(d);
    assert.ok([...used].some((m) => m === family || m.startsWith(`${family}_`)), `no dashboard panel shows ${d.name} (${family})`);
  }
  const uids = new Set(datasources.map((d) => d.uid));
  for (const file of dashboardFiles) {
    const text = readFileSync(file, 'utf8');
    for (const [, uid] of text.matchAll(/"datasource":\s*\{\s*"type":\s*"prometheus",\s*"uid":\s*"([^"]+)"/g)) {
      assert.ok(uids.has(uid), `${file}: data source uid "${uid}" is not provisioned`);
    }
  }
});

test('docs/operations.md documents every metric and every alert', () => {
  const docs = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
  for (const d of describeInstruments()) {
    assert.ok(docs.includes(`\`${d.name}\``), `docs/operations.md does not mention ${d.name}`);
    assert.ok(docs.includes(prometheusMetricName(d)), `docs/operations.md does not give the Prometheus name ${prometheusMetricName(d)}`);
  }
  for (const { where } of alertQueries()) assert.ok(docs.includes(where.replace(/^alert /, '')), `docs/operations.md does not describe ${where}`);
});

test('the Dockerfile runs the server as a non-root user with libopus and builds Silero\'s native kernel', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const buildStage = dockerfile.slice(0, dockerfile.lastIndexOf('\nFROM '));
  assert.match(buildStage, /apt-get install[^\n]*\bgcc\b/);
  assert.match(buildStage, /bash scripts\/build-native\.sh/);
  assert.match(finalStage, /apt-get install[^\n]*libopus0/);
  assert.match(finalStage, /^USER (?!root\b|0\b)\S+/m);
  assert.match(finalStage, /^CMD \["node", ?"--import", ?"tsx", ?"server\/main\.ts"\]/m);
  assert.match(finalStage, /^EXPOSE 8080\/tcp/m);
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  assert.ok(ignored.includes('node_modules'), 'node_modules is rebuilt in the image, never copied');
  assert.ok(ignored.includes('media/vad/native/build'), 'the native kernel is compiled in the image, never copied from the host');
  assert.ok(!ignored.includes('patches'), 'patches/ is needed by npm ci (patch-package)');
});

// promtool comes with Debian's prometheus package, which scripts/setup.sh installs.
test('promtool accepts the Prometheus config and the alert rule tests pass', () => {
  assert.equal(spawnSync('promtool', ['--version']).status, 0, 'promtool is missing: run bash scripts/setup.sh');
  const dir = dirname(prometheusConfigPath);
  for (const file of readdirSync(dir)) {
    const path = join(dir, file);
    if (!statSync(path).isFile() || !/\.ya?ml$/.test(file)) continue;
    if (file.endsWith('.test.yml')) execFileSync('promtool', ['test', 'rules', file], { cwd: dir, stdio: 'pipe' });
    else if (readYaml(path).scrape_configs) execFileSync('promtool', ['check', 'config', file], { cwd: dir, stdio: 'pipe' });
    else if (readYaml(path).groups) execFileSync('promtool', ['check', 'rules', file], { cwd: dir, stdio: 'pipe' });
  }
});
