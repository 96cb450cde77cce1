// Process entry: load config, build the app, listen, and shut down cleanly on SIGTERM/SIGINT.
import { loadConfig, ConfigError } from './config.ts';
import { buildApp } from './app.ts';

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
  const server = await buildApp(config);
  await server.app.listen({ host: config.host, port: config.port });
  server.app.log.info(
    { workers: config.mediaWorkers, rtcPorts: config.rtcPortRange.join('-'), demo: `http://localhost:${config.port}/` },
    'voice session server ready',
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    server.app.log.info({ signal }, 'shutting down');
    server.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error) => {
  process.stderr.write(`fatal: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
