import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, base64url, exportJWK, exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import { AccessTokens, authorize, DEV_AUTH_SECRET, mayActFor, type AccessClaims } from '../../../signaling/auth.ts';
import { SignalingError } from '../../../signaling/errors.ts';
import type { AuthConfig } from '../../../server/access-config.ts';
import { TEST_AUTH_CONFIG, TEST_AUTH_SECRET } from '../../helpers/auth.ts';

const SECRET = TEST_AUTH_SECRET;
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);
const config = (overrides: Partial<AuthConfig> = {}): AuthConfig => ({ ...TEST_AUTH_CONFIG, ...overrides });
const tokens = (overrides: Partial<AuthConfig> = {}, now = NOW) => new AccessTokens(config(overrides), { now: () => now });
const key = (secret: string) => new TextEncoder().encode(secret);
const seconds = (ms: number) => Math.floor(ms / 1000);

/** A token built claim by claim, for the refusals the server's own mint() would never produce. */
function jwt(claims: Record<string, unknown> = {}, header: Record<string, unknown> = { alg: 'HS256' }) {
  return new SignJWT({ sub: 'alice', exp: seconds(NOW) + 600, grants: ['join'], ...claims }).setProtectedHeader(header as { alg: string });
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof SignalingError, `a SignalingError, not ${String(error)}`);
    return error.code;
  }
}

function syncCodeOf(action: () => void): string {
  try {
    action();
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof SignalingError);
    return error.code;
  }
}

describe('access tokens (HS256)', () => {
  it('mints and verifies a participant token with a short default lifetime', async () => {
    const t = tokens();
    const token = await t.mint({ identity: 'alice', room: 'kitchen' });
    const claims = await t.verify(token);
    assert.deepEqual(claims, { identity: 'alice', room: 'kitchen', mode: null, grants: ['join', 'publish', 'subscribe'], expiresAt: (seconds(NOW) + 600) * 1000 });
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { iat: number; exp: number };
    assert.equal(payload.exp - payload.iat, 600, '10 minutes');
  });

  it('refuses a missing token', async () => {
    assert.equal(await codeOf(tokens().verify(undefined)), 'AUTH_ERR_MISSING');
    assert.equal(await codeOf(tokens().verify('')), 'AUTH_ERR_MISSING');
  });

  it('refuses malformed tokens', async () => {
    for (const bad of ['abc', 'a.b.c', 'a.b', `${base64url.encode('{"alg":"HS256"}')}.!!!.x`, `${base64url.encode('[1]')}.e30.x`]) {
      assert.equal(await codeOf(tokens().verify(bad)), 'AUTH_ERR_MALFORMED', bad);
    }
  });

  it('refuses an expired token, within the clock tolerance only', async () => {
    const token = await jwt({ exp: seconds(NOW) - 3 }).sign(key(SECRET));
    assert.equal(await codeOf(tokens().verify(token)), 'ok', '3 s late is within the 5 s tolerance');
    assert.equal(await codeOf(tokens({ clockToleranceMs: 0 }).verify(token)), 'AUTH_ERR_EXPIRED');
    const minted = await tokens({}, NOW - 606_000).mint({ identity: 'alice' }); // expired 6 s ago
    assert.equal(await codeOf(tokens().verify(minted)), 'AUTH_ERR_EXPIRED');
  });

  it('refuses a token that is not valid yet', async () => {
    const token = await jwt({ nbf: seconds(NOW) + 60 }).sign(key(SECRET));
    assert.equal(await codeOf(tokens().verify(token)), 'AUTH_ERR_NOT_YET_VALID');
    assert.equal(await codeOf(tokens({}, NOW + 61_000).verify(token)), 'ok');
  });

  it('refuses a wrong signature and a tampered payload', async () => {
    const other = await jwt().sign(key('another-secret-0123456789abcdef-01234'));
    assert.equal(await codeOf(tokens().verify(other)), 'AUTH_ERR_BAD_SIGNATURE');
    const [header, , signature] = (await jwt().sign(key(SECRET))).split('.');
    const admin = base64url.encode(JSON.stringify({ sub: 'alice', exp: seconds(NOW) + 600, grants: ['admin'] }));
    assert.equal(await codeOf(tokens().verify(`${header}.${admin}.${signature}`)), 'AUTH_ERR_BAD_SIGNATURE');
  });

  it('refuses alg none and algorithms the key is not pinned to', async () => {
    const payload = base64url.encode(JSON.stringify({ sub: 'alice', exp: seconds(NOW) + 600, grants: ['admin'] }));
    for (const alg of ['none', 'None', 'HS512', 'RS256', 'EdDSA']) {
      const unsigned = `${base64url.encode(JSON.stringify({ alg, typ: 'JWT' }))}.${payload}.`;
      assert.equal(await codeOf(tokens().verify(unsigned)), 'AUTH_ERR_WRONG_ALG', alg);
    }
    const hs512 = await jwt({}, { alg: 'HS512' }).sign(key(SECRET));
    assert.equal(await codeOf(tokens().verify(hs512)), 'AUTH_ERR_WRONG_ALG');
  });

  it('requires exp and sub, and checks issuer and audience when configured', async () => {
    const noExp = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).sign(key(SECRET));
    assert.equal(await codeOf(tokens().verify(noExp)), 'AUTH_ERR_INVALID_CLAIMS');
    assert.equal(await codeOf(tokens().verify(await jwt({ sub: undefined }).sign(key(SECRET)))), 'AUTH_ERR_INVALID_CLAIMS');
    assert.equal(await codeOf(tokens().verify(await jwt({ grants: 'admin' }).sign(key(SECRET)))), 'AUTH_ERR_INVALID_CLAIMS');
    const scoped = tokens({ issuer: 'https://auth.example', audience: 'voice' });
    assert.equal(await codeOf(scoped.verify(await jwt().sign(key(SECRET)))), 'AUTH_ERR_INVALID_CLAIMS');
    assert.equal(await codeOf(scoped.verify(await jwt({ iss: 'https://auth.example', aud: 'voice' }).sign(key(SECRET)))), 'ok');
    assert.equal(await codeOf(scoped.verify(await scoped.mint({ identity: 'alice' }))), 'ok', 'minted tokens carry iss and aud');
  });

  it('carries a session mode (the default for requests that name none), and refuses an unknown one', async () => {
    const t = tokens();
    assert.equal((await t.verify(await t.mint({ identity: 'bridge', mode: 'echo' }))).mode, 'echo');
    assert.equal(await codeOf(t.verify(await jwt({ mode: 'karaoke' }).sign(key(SECRET)))), 'AUTH_ERR_INVALID_CLAIMS');
    await assert.rejects(t.mint({ identity: 'bridge', mode: 'karaoke' as never }), /mode must be one of/);
  });

  it('ignores grants it does not know', async () => {
    const claims = await tokens().verify(await jwt({ grants: ['join', 'teleport', 'join'] }).sign(key(SECRET)));
    assert.deepEqual(claims.grants, ['join']);
  });
});

describe('access tokens (EdDSA)', () => {
  it('verifies Ed25519 tokens with a PEM or JWK public key, and mints with the private key', async () => {
    const pair = await generateKeyPair('EdDSA', { extractable: true });
    const pem = await exportSPKI(pair.publicKey);
    const jwk = JSON.stringify(await exportJWK(pair.publicKey));
    const signed = await jwt({}, { alg: 'EdDSA' }).sign(pair.privateKey);
    for (const publicKey of [pem, pem.replaceAll('\n', '\\n'), jwk]) {
      const claims = await tokens({ jwtSecret: null, jwtPublicKey: publicKey }).verify(signed);
      assert.equal(claims.identity, 'alice');
    }
    const minter = tokens({ jwtSecret: null, jwtPrivateKey: await exportPKCS8(pair.privateKey) });
    assert.equal((await tokens({ jwtSecret: null, jwtPublicKey: pem }).verify(await minter.mint({ identity: 'bob' }))).identity, 'bob');
  });

  it('refuses HS256 tokens (algorithm confusion) and foreign Ed25519 signatures', async () => {
    const pair = await generateKeyPair('EdDSA', { extractable: true });
    const pem = await exportSPKI(pair.publicKey);
    const eddsaOnly = tokens({ jwtSecret: null, jwtPublicKey: pem });
    // The classic confusion: the public key, known to everyone, used as an HMAC secret.
    const confused = await jwt({ grants: ['admin'] }).sign(key(pem));
    assert.equal(await codeOf(eddsaOnly.verify(confused)), 'AUTH_ERR_WRONG_ALG');
    const stranger = await generateKeyPair('EdDSA');
    assert.equal(await codeOf(eddsaOnly.verify(await jwt({}, { alg: 'EdDSA' }).sign(stranger.privateKey))), 'AUTH_ERR_BAD_SIGNATURE');
    // With both keys configured, each still verifies its own algorithm only.
    const both = tokens({ jwtPublicKey: pem });
    assert.equal(await codeOf(both.verify(confused)), 'AUTH_ERR_BAD_SIGNATURE');
    assert.equal(await codeOf(both.verify(await jwt({}, { alg: 'EdDSA' }).sign(pair.privateKey))), 'ok');
  });
});

describe('authorization', () => {
  const claims = (grants: AccessClaims['grants'], room: string | null = null): AccessClaims => ({ identity: 'alice', room, mode: null, grants, expiresAt: NOW + 1000 });

  it('needs the grant, and a room-bound token only in its room', () => {
    assert.equal(syncCodeOf(() => authorize(claims(['join']), 'join', 'kitchen')), 'ok');
    assert.equal(syncCodeOf(() => authorize(claims(['subscribe']), 'join')), 'AUTH_ERR_MISSING_GRANT');
    assert.equal(syncCodeOf(() => authorize(claims(['join'], 'kitchen'), 'join', 'garage')), 'AUTH_ERR_WRONG_ROOM');
    assert.equal(syncCodeOf(() => authorize(claims(['join'], 'kitchen'), 'join', 'kitchen')), 'ok');
    assert.equal(syncCodeOf(() => authorize(claims(['admin']), 'sip')), 'ok', 'admin grants everything');
  });

  it('lets an identity act on its own sessions, and an admin on any', () => {
    assert.equal(mayActFor(claims(['join']), { identity: 'alice', room: 'r' }), true);
    assert.equal(mayActFor(claims(['join']), { identity: 'mallory', room: 'r' }), false);
    assert.equal(mayActFor(claims(['join'], 'other'), { identity: 'alice', room: 'r' }), false, 'a token bound to another room');
    assert.equal(mayActFor(claims(['join']), { identity: null, room: 'r' }), false, 'a session without an owner');
    assert.equal(mayActFor({ ...claims(['admin']), identity: 'ops' }, { identity: 'alice', room: 'r' }), true);
  });
});

describe('development mode', () => {
  it('accepts dev-key tokens from loopback addresses only on the embedded default', async () => {
    const dev = tokens({ jwtSecret: null, devMode: 'loopback' });
    const token = await jwt().sign(key(DEV_AUTH_SECRET));
    for (const address of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
      assert.equal(await codeOf(dev.verify(token, { remoteAddress: address })), 'ok', address);
    }
    for (const address of ['10.0.0.5', '::ffff:192.168.1.2', '2001:db8::1', undefined]) {
      assert.equal(await codeOf(dev.verify(token, { remoteAddress: address })), 'AUTH_ERR_DEV_LOOPBACK_ONLY', String(address));
    }
  });

  it('accepts any address when explicitly on, and never the dev key once a key is configured', async () => {
    const devToken = await jwt().sign(key(DEV_AUTH_SECRET));
    assert.equal(await codeOf(tokens({ jwtSecret: null, devMode: 'on' }).verify(devToken, { remoteAddress: '10.0.0.5' })), 'ok');
    assert.equal(await codeOf(tokens({ devMode: 'on' }).verify(devToken, { remoteAddress: '10.0.0.5' })), 'AUTH_ERR_BAD_SIGNATURE');
    assert.equal(await codeOf(tokens().verify(devToken)), 'AUTH_ERR_BAD_SIGNATURE');
  });
});
