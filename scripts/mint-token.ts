// `npm run token -- --identity alice --room kitchen [--mode stt_tts] [--grants join,publish] [--ttl 600]`: mints an
// access token with the key the server is configured with (the same environment: AUTH_JWT_SECRET,
// or AUTH_JWT_PRIVATE_KEY for EdDSA; the fixed dev key when nothing is configured). The token alone
// goes to stdout, so it can be captured: TOKEN=$(npm run -s token -- --identity alice).
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from '../server/config.ts';
import { AccessTokens, DEFAULT_GRANTS, GRANTS, type Grant } from '../signaling/auth.ts';
import { SESSION_MODES, type SessionMode } from '../signaling/protocol.ts';

const USAGE = `usage: npm run token -- --identity <sub> [--room <room>] [--mode <mode>] [--grants ${GRANTS.join(',')}] [--ttl <seconds>]
  --identity  who the token is for (its "sub" claim)
  --room      bind the token to one room (default: any room)
  --mode      the session mode when the join or WHIP request names none: ${SESSION_MODES.join(', ')}
  --grants    comma-separated (default: ${DEFAULT_GRANTS.join(',')}; "admin" allows everything)
  --ttl       lifetime in seconds (default: AUTH_TOKEN_TTL_MS, 600)`;

function fail(message: string, code: number): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

let values: { identity?: string; room?: string; mode?: string; grants?: string; ttl?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: { identity: { type: 'string' }, room: { type: 'string' }, mode: { type: 'string' }, grants: { type: 'string' }, ttl: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  }));
} catch (error) {
  fail(`${(error as Error).message}\n${USAGE}`, 64); // EX_USAGE
}
if (values.help) fail(USAGE, 0);
if (!values.identity) fail(`--identity is required\n${USAGE}`, 64);

const grants = values.grants === undefined ? [...DEFAULT_GRANTS] : values.grants.split(',').map((g) => g.trim()).filter(Boolean);
const unknown = grants.filter((g) => !(GRANTS as readonly string[]).includes(g));
if (unknown.length > 0 || grants.length === 0) fail(`--grants: unknown or empty (${unknown.join(', ')}); use ${GRANTS.join(', ')}`, 64);
const ttlS = values.ttl === undefined ? undefined : Number(values.ttl);
if (values.mode !== undefined && !(SESSION_MODES as readonly string[]).includes(values.mode)) fail(`--mode: one of ${SESSION_MODES.join(', ')}`, 64);
if (ttlS !== undefined && (!Number.isInteger(ttlS) || ttlS < 1 || ttlS > 7 * 86_400)) fail('--ttl: whole seconds, 1 to 604800', 64);

let config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) fail(error.message, 78); // EX_CONFIG
  throw error;
}
const tokens = new AccessTokens(config.auth);
if (!tokens.canMint) fail('no key to sign with: set AUTH_JWT_SECRET, or AUTH_JWT_PRIVATE_KEY for EdDSA', 78);
const { jwtSecret, jwtPublicKey, jwtPrivateKey } = config.auth;
if (!jwtSecret && !jwtPublicKey && !jwtPrivateKey) {
  process.stderr.write('warning: no AUTH_* key configured: signed with the fixed development key; only a server in development mode accepts it\n');
}
try {
  const token = await tokens.mint({ identity: values.identity, room: values.room ?? null, mode: (values.mode as SessionMode | undefined) ?? null, grants: grants as Grant[], ...(ttlS ? { ttlMs: ttlS * 1000 } : {}) });
  process.stdout.write(`${token}\n`);
} catch (error) {
  fail((error as Error).message, 64);
}
