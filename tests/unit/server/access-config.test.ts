import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import { loadConfig, ConfigError } from '../../../server/config.ts';

const SECRET = 'a-configured-secret-0123456789abcdef';

function problem(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.message;
  }
  return 'ok';
}

describe('access config', () => {
  it('runs loopback-only dev mode on the embedded default, and turns it off once a key is set', () => {
    assert.equal(loadConfig({}).auth.devMode, 'loopback');
    assert.equal(loadConfig({ AUTH_JWT_SECRET: SECRET }).auth.devMode, 'off');
    assert.equal(loadConfig({ AUTH_JWT_SECRET: SECRET, AUTH_DEV_MODE: 'true' }).auth.devMode, 'on');
    assert.equal(loadConfig({ AUTH_DEV_MODE: 'true' }).auth.devMode, 'on');
  });

  it('reads the limits with their defaults', () => {
    const { limits, auth } = loadConfig({});
    assert.deepEqual(limits, { sessionsPerIdentity: 5, httpBodyBytes: 65536, httpRate: { max: 120, windowMs: 60_000 }, signalRate: { perSecond: 20, burst: 60 } });
    assert.equal(auth.tokenTtlMs, 600_000);
    const custom = loadConfig({ SESSIONS_PER_IDENTITY_MAX: '2', HTTP_RATE_LIMIT_MAX: '3', SIGNAL_BURST: '7', AUTH_TOKEN_TTL_MS: '60000' });
    assert.equal(custom.limits.sessionsPerIdentity, 2);
    assert.equal(custom.limits.httpRate.max, 3);
    assert.equal(custom.limits.signalRate.burst, 7);
    assert.equal(custom.auth.tokenTtlMs, 60_000);
  });

  it('refuses a short secret without showing it', () => {
    const message = problem({ AUTH_JWT_SECRET: 'short-secret-value' });
    assert.match(message, /AUTH_JWT_SECRET/);
    assert.doesNotMatch(message, /short-secret-value/);
  });

  it('refuses dev mode off with no key, and dev mode with nothing to sign with', async () => {
    assert.match(problem({ AUTH_DEV_MODE: 'false' }), /AUTH_DEV_MODE/);
    const { publicKey } = await generateKeyPair('EdDSA', { extractable: true });
    assert.match(problem({ AUTH_DEV_MODE: 'true', AUTH_JWT_PUBLIC_KEY: await exportSPKI(publicKey) }), /AUTH_DEV_MODE/);
  });

  it('accepts Ed25519 keys as PEM or JWK and refuses anything else without echoing it', async () => {
    const pair = await generateKeyPair('EdDSA', { extractable: true });
    const pem = await exportSPKI(pair.publicKey);
    const privatePem = await exportPKCS8(pair.privateKey);
    assert.equal(problem({ AUTH_JWT_PUBLIC_KEY: pem }), 'ok');
    assert.equal(problem({ AUTH_JWT_PUBLIC_KEY: JSON.stringify(await exportJWK(pair.publicKey)) }), 'ok');
    assert.equal(problem({ AUTH_JWT_PRIVATE_KEY: privatePem }), 'ok');
    const rsa = await generateKeyPair('RS256', { extractable: true });
    assert.match(problem({ AUTH_JWT_PUBLIC_KEY: await exportSPKI(rsa.publicKey) }), /AUTH_JWT_PUBLIC_KEY.*Ed25519/);
    const secretJwk = JSON.stringify(await exportJWK(pair.privateKey));
    for (const [name, value] of [['AUTH_JWT_PUBLIC_KEY', privatePem], ['AUTH_JWT_PUBLIC_KEY', secretJwk], ['AUTH_JWT_PRIVATE_KEY', '{"kty":"OKP", "d": "c2VjcmV0LXZhbHVl"'], ['AUTH_JWT_PRIVATE_KEY', 'not a key at all']] as const) {
      const message = problem({ [name]: value });
      assert.match(message, new RegExp(name));
      assert.ok(!message.includes(value.slice(0, 20)) && !message.includes('c2VjcmV0'), `the value is not echoed: ${message}`);
    }
  });
});
