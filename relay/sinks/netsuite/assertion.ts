/**
 * The client assertion of NetSuite's OAuth 2.0 client credentials (M2M) flow: a JWT
 * signed with the private key of the certificate uploaded in the M2M setup.
 *
 * Header: `typ: JWT`, `alg` (ES256 or PS256 here), `kid` = certificate id. Claims:
 * `iss` = client id, `scope`, `aud` = the token endpoint URL, `iat`, `exp` (NetSuite
 * requires exp less than 60 minutes after iat; a short-lived assertion is used once).
 * Signing uses node:crypto only; ES256 signatures are the JWS raw r||s form, PS256
 * uses RSA-PSS with SHA-256 and a 32-byte salt (RFC 7518). The key never leaves this
 * module and never appears in an error message.
 */
import { constants, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PermanentError } from '../../../protocols/errors.js';

export type AssertionAlgorithm = 'ES256' | 'PS256';

/** Lifetime of one assertion: it is sent once, right after it is made. */
export const ASSERTION_LIFETIME_S = 300;

export interface AssertionClaims {
  clientId: string;
  certificateId: string;
  scopes: readonly string[];
  /** The token endpoint URL. */
  audience: string;
  nowMs: number;
}

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

export function signClientAssertion(algorithm: AssertionAlgorithm, privateKey: KeyObject, claims: AssertionClaims): string {
  const iat = Math.floor(claims.nowMs / 1000);
  const header = { typ: 'JWT', alg: algorithm, kid: claims.certificateId };
  // The documented example assertion carries scope as an array; one scope is sent as a one-element array.
  const payload = { iss: claims.clientId, scope: [...claims.scopes], aud: claims.audience, iat, exp: iat + ASSERTION_LIFETIME_S };
  const signingInput = `${base64url(header)}.${base64url(payload)}`;
  const data = Buffer.from(signingInput, 'utf8');
  const signature =
    algorithm === 'ES256'
      ? sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })
      : sign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  return `${signingInput}.${signature.toString('base64url')}`;
}

const keyError = (message: string, cause?: unknown): PermanentError =>
  new PermanentError(`NetSuite sink private key: ${message}`, { code: 'invalid_private_key', ...(cause === undefined ? {} : { cause }) });

/**
 * Loads the private key from PEM text or a PEM file and checks that it suits the
 * algorithm (ES256: EC P-256; PS256: RSA of 2048 bits or more), so a wrong key fails
 * when the config loads instead of on every token request.
 */
export function loadPrivateKey(source: { privateKey?: string | undefined; privateKeyFile?: string | undefined }, algorithm: AssertionAlgorithm): KeyObject {
  let pem: string;
  if (source.privateKey !== undefined) {
    pem = source.privateKey;
  } else if (source.privateKeyFile !== undefined) {
    try {
      pem = readFileSync(source.privateKeyFile, 'utf8');
    } catch (error) {
      throw keyError(`cannot read ${source.privateKeyFile}: ${(error as NodeJS.ErrnoException).code ?? 'read error'}`, error);
    }
  } else {
    throw keyError('neither privateKey nor privateKeyFile is set');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    // The parser's message may quote the input; only say what went wrong.
    throw keyError('not a PEM private key (PKCS#8 or traditional format, unencrypted)');
  }
  const type = key.asymmetricKeyType;
  if (algorithm === 'ES256') {
    if (type !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw keyError(`ES256 needs an EC P-256 key, got ${type === 'ec' ? `an EC ${key.asymmetricKeyDetails?.namedCurve ?? ''} key` : `a ${type ?? 'unknown'} key`}`);
    }
  } else if ((type !== 'rsa' && type !== 'rsa-pss') || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
    throw keyError(`PS256 needs an RSA key of 2048 bits or more, got a ${type ?? 'unknown'} key`);
  }
  return key;
}
