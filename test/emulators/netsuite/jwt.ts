/**
 * JWS compact tokens for the emulator, written independently of the sink's signer so
 * a bug there cannot be mirrored here: verification of client assertions (PS256/384/512,
 * ES256/384/512, the algorithms NetSuite documents for the client credentials flow) and
 * signing of the emulator's own access tokens (PS256, as NetSuite's access tokens are).
 */
import { constants, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

export type AssertionAlgorithm = 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

const ALGORITHMS: Record<AssertionAlgorithm, { hash: string; hashBytes: number; curve?: string }> = {
  PS256: { hash: 'sha256', hashBytes: 32 },
  PS384: { hash: 'sha384', hashBytes: 48 },
  PS512: { hash: 'sha512', hashBytes: 64 },
  ES256: { hash: 'sha256', hashBytes: 32, curve: 'prime256v1' },
  ES384: { hash: 'sha384', hashBytes: 48, curve: 'secp384r1' },
  ES512: { hash: 'sha512', hashBytes: 64, curve: 'secp521r1' },
};

export interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

function decodePart(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function decodeJwt(token: string): DecodedJwt | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return undefined;
  const header = decodePart(parts[0]!);
  const payload = decodePart(parts[1]!);
  if (!header || !payload) return undefined;
  return { header, payload, signingInput: `${parts[0]}.${parts[1]}`, signature: Buffer.from(parts[2]!, 'base64url') };
}

export const isAssertionAlgorithm = (alg: unknown): alg is AssertionAlgorithm => typeof alg === 'string' && Object.hasOwn(ALGORITHMS, alg);

/** True when `jwt` carries a valid `alg` signature by `publicKey` (and the key suits the algorithm). */
export function verifyJwtSignature(jwt: DecodedJwt, alg: AssertionAlgorithm, publicKey: KeyObject): boolean {
  const spec = ALGORITHMS[alg];
  const data = Buffer.from(jwt.signingInput, 'utf8');
  try {
    if (spec.curve) {
      if (publicKey.asymmetricKeyType !== 'ec' || publicKey.asymmetricKeyDetails?.namedCurve !== spec.curve) return false;
      return verify(spec.hash, data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, jwt.signature);
    }
    if (publicKey.asymmetricKeyType !== 'rsa' && publicKey.asymmetricKeyType !== 'rsa-pss') return false;
    return verify(spec.hash, data, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: spec.hashBytes }, jwt.signature);
  } catch {
    return false;
  }
}

export function toPublicKey(key: KeyObject | string): KeyObject {
  return typeof key === 'string' ? createPublicKey(key) : key.type === 'private' ? createPublicKey(key) : key;
}

let issuerKey: KeyObject | undefined;

/**
 * The emulator's own PS256 key for access tokens, generated once per process. Nobody
 * verifies these signatures (clients treat access tokens as opaque), so a 1024-bit key
 * keeps generation, which can take seconds for 2048 bits on a busy machine, out of tests.
 */
function accessTokenKey(): KeyObject {
  issuerKey ??= generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  return issuerKey;
}

/** Signs an access token shaped like NetSuite's (header kid/typ/alg PS256; claims sub, aud, scope, iss, exp, iat). */
export function signAccessToken(payload: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
  const signingInput = `${encode({ kid: 'emulator.PS256.1', typ: 'JWT', alg: 'PS256' })}.${encode(payload)}`;
  const signature = sign('sha256', Buffer.from(signingInput, 'utf8'), {
    key: accessTokenKey(),
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: 32,
  });
  return `${signingInput}.${signature.toString('base64url')}`;
}
