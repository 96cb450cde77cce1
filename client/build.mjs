// Builds the browser bundles into client/dist/: the demo page (served at `/`) and the SDK for app developers.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const common = { bundle: true, format: 'esm', target: 'es2020', platform: 'browser', sourcemap: true, logLevel: 'warning' };

try {
  await mkdir(here('./dist'), { recursive: true });
  await Promise.all([
    build({ ...common, entryPoints: [here('./demo/demo.ts')], outfile: here('./dist/demo.js'), minify: true }),
    build({ ...common, entryPoints: [here('./sdk/voice-client.ts')], outfile: here('./dist/voice-client.js') }),
    copyFile(here('./demo/index.html'), here('./dist/index.html')),
  ]);
  console.log('client built into client/dist/');
} catch (err) {
  // esbuild has already printed its diagnostics; anything else gets printed here.
  if (!err?.errors) console.error(err);
  process.exitCode = 1;
}
