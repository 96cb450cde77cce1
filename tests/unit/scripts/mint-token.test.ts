import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AccessTokens } from '../../../signaling/auth.ts';
import { TEST_AUTH_CONFIG, TEST_AUTH_SECRET } from '../../helpers/auth.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function mint(args: string[], env: Record<string, string> = { AUTH_JWT_SECRET: TEST_AUTH_SECRET }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'scripts/mint-token.ts', ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
  });
}

describe('npm run token', () => {
  it('mints a token the server verifies, with the asked identity, room, grants and lifetime', async () => {
    const { code, stdout } = await mint(['--identity', 'alice', '--room', 'kitchen', '--grants', 'join,publish', '--ttl', '120']);
    assert.equal(code, 0);
    const claims = await new AccessTokens(TEST_AUTH_CONFIG).verify(stdout.trim());
    assert.deepEqual([claims.identity, claims.room, claims.grants], ['alice', 'kitchen', ['join', 'publish']]);
    const lifetimeS = (claims.expiresAt - Date.now()) / 1000;
    assert.ok(lifetimeS > 100 && lifetimeS <= 120, `${lifetimeS} s`);
  });

  it('refuses bad arguments with EX_USAGE and prints nothing on stdout', async () => {
    for (const args of [[], ['--identity', 'a', '--grants', 'fly'], ['--identity', 'a', '--ttl', '-5'], ['--identity', 'a', '--colour', 'red']]) {
      const { code, stdout } = await mint(args);
      assert.equal(code, 64, args.join(' '));
      assert.equal(stdout, '');
    }
  });

  it('warns when it signs with the development key', async () => {
    const { code, stderr } = await mint(['--identity', 'dev'], {});
    assert.equal(code, 0);
    assert.match(stderr, /development key/);
  });
});
