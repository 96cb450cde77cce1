// Ed25519 keys for EdDSA access tokens, from configuration text: PEM (SPKI public / PKCS#8 private,
// with real newlines or "\n" escapes, as env files tend to have them) or a JWK as JSON. Synchronous,
// so that config.ts can validate a key at start and fail naming the variable. Error messages never
// quote the key (parsers' own messages may).
import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

export function parseEd25519Key(text: string, kind: 'public' | 'private'): KeyObject {
  const trimmed = text.trim();
  let jwk: JsonWebKey | null = null;
  if (trimmed.startsWith('{')) {
    try {
      jwk = JSON.parse(trimmed) as JsonWebKey;
    } catch {
      throw new Error('not valid JSON');
    }
  }
  // A private key where a public one belongs would put a secret into a variable treated as public.
  if (kind === 'public' && (/PRIVATE KEY/.test(trimmed) || (jwk !== null && 'd' in jwk))) {
    throw new Error('a private key was given where the public key belongs');
  }
  let key: KeyObject;
  try {
    const pem = trimmed.replaceAll('\\n', '\n');
    if (kind === 'public') key = jwk ? createPublicKey({ key: jwk, format: 'jwk' }) : createPublicKey(pem);
    else key = jwk ? createPrivateKey({ key: jwk, format: 'jwk' }) : createPrivateKey(pem);
  } catch {
    throw new Error(`not a readable ${kind} key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`not an Ed25519 key (${key.asymmetricKeyType ?? 'unknown type'})`);
  return key;
}
