/**
 * The client assertion of NetSuite's OAuth 2.0 client credentials (M2M) flow: a JWT
 * signed with the private key of the certificate uploaded in the M2M setup.
 *
 * Header: `typ: JWT`, `alg` (ES256 or PS256 here), `kid` = certificate id. Claims:
 * `iss` = client id, `scope`, `aud` = the token endpoint URL, `iat`, `exp` (NetSuite
 * requires exp less than 60 minutes after iat; a short-lived assertion is used once).
 * Signing and key loading are shared (../shared/jwt.ts). The key never leaves this
 * module and never appears in an error message.
 */
import type { KeyObject } from 'node:crypto';
import { loadPrivateKey as loadKey, signJws, type PrivateKeySource } from '../shared/jwt.js';

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

export function signClientAssertion(algorithm: AssertionAlgorithm, privateKey: KeyObject, claims: AssertionClaims): string {
  const iat = Math.floor(claims.nowMs / 1000);
  const header = { typ: 'JWT', alg: algorithm, kid: claims.certificateId };
  // The documented example assertion carries scope as an array; one scope is sent as a one-element array.
  const payload = { iss: claims.clientId, scope: [...claims.scopes], aud: claims.audience, iat, exp: iat + ASSERTION_LIFETIME_S };
  return signJws(algorithm, privateKey, header, payload);
}

/**
 * Loads the private key from PEM text or a PEM file and checks that it suits the
 * algorithm (ES256: EC P-256; PS256: RSA of 2048 bits or more), so a wrong key fails
 * when the config loads instead of on every token request.
 */
export function loadPrivateKey(source: PrivateKeySource, algorithm: AssertionAlgorithm): KeyObject {
  return loadKey(source, algorithm, 'NetSuite sink private key');
}
