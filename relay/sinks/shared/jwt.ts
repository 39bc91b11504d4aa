/**
 * JWS compact signing (RFC 7515/7518) and private key loading for sinks that trade a
 * signed JWT for an access token (NetSuite's client assertion, Salesforce's JWT bearer
 * assertion). node:crypto only.
 *
 * Invariants:
 * - ES256 signatures are the JWS raw r||s form; PS256 is RSA-PSS with SHA-256 and a
 *   32-byte salt; RS256 is RSASSA-PKCS1-v1_5 with SHA-256.
 * - Key material never appears in an error message: parser messages, which may quote
 *   the input, are replaced by a plain description.
 */
import { constants, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PermanentError } from '../../../protocols/errors.js';

export type JwsAlgorithm = 'ES256' | 'PS256' | 'RS256';

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

/** `header.payload.signature`; `header` is sent as given, so it must name `alg`. */
export function signJws(algorithm: JwsAlgorithm, privateKey: KeyObject, header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const signingInput = `${base64url(header)}.${base64url(payload)}`;
  const data = Buffer.from(signingInput, 'utf8');
  const signature =
    algorithm === 'ES256'
      ? sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })
      : algorithm === 'PS256'
        ? sign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
        : sign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PADDING });
  return `${signingInput}.${signature.toString('base64url')}`;
}

export interface PrivateKeySource {
  privateKey?: string | undefined;
  privateKeyFile?: string | undefined;
}

/**
 * Loads the private key from PEM text or a PEM file and checks that it suits
 * `algorithm`, so a wrong key fails when the config loads instead of on every token
 * request. `owner` starts every message, e.g. "NetSuite sink private key".
 */
export function loadPrivateKey(source: PrivateKeySource, algorithm: JwsAlgorithm, owner: string): KeyObject {
  const keyError = (message: string, cause?: unknown): PermanentError =>
    new PermanentError(`${owner}: ${message}`, { code: 'invalid_private_key', ...(cause === undefined ? {} : { cause }) });
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
  const mismatch = keyMismatch(algorithm, key);
  if (mismatch) throw keyError(mismatch);
  return key;
}

/** Why `key` cannot sign `algorithm`, or undefined when it can. */
function keyMismatch(algorithm: JwsAlgorithm, key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  if (algorithm === 'ES256') {
    if (type !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      return `ES256 needs an EC P-256 key, got ${type === 'ec' ? `an EC ${key.asymmetricKeyDetails?.namedCurve ?? ''} key` : `a ${type ?? 'unknown'} key`}`;
    }
    return undefined;
  }
  // RS256 (PKCS#1 v1.5) cannot use an RSA-PSS-only key; PS256 can use either.
  const rsaTypes = algorithm === 'PS256' ? ['rsa', 'rsa-pss'] : ['rsa'];
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (!rsaTypes.includes(type ?? '') || bits < 2048) {
    return `${algorithm} needs an RSA key of 2048 bits or more, got ${rsaTypes.includes(type ?? '') ? `a ${bits}-bit RSA key` : `a ${type ?? 'unknown'} key`}`;
  }
  return undefined;
}
