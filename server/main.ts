// Process entry: load config, build the app, listen, and shut down cleanly on SIGTERM/SIGINT.
import { loadConfig, ConfigError } from './config.ts';
import { buildApp } from './app.ts';
import { startTelemetry } from '../telemetry/otel.ts';
import pino from 'pino';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  // The SDK must be registered before any instrument is created (buildApp creates them).
  const telemetry = startTelemetry(config.telemetry, pino({ level: config.logLevel }));
  const server = await buildApp(config, { prometheusHandler: telemetry.prometheusHandler });
  await server.app.listen({ host: config.host, port: config.port });
  server.app.log.info(
    { workers: config.mediaWorkers, rtcPorts: config.rtcPortRange.join('-'), demo: `http://localhost:${config.port}/` },
    'voice session server ready',
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      server.app.log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    server.app.log.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'signal received: draining');
    server
      .drain()
      .then(() => telemetry.shutdown())
      .then(
        () => process.exit(0),
        (error) => {
          server.app.log.error({ err: (error as Error).message }, 'drain failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error) => {
  process.stderr.write(`fatal: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
