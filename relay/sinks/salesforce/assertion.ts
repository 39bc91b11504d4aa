/**
 * The assertion of Salesforce's OAuth 2.0 JWT bearer flow: a JWT signed RS256 with
 * the private key whose certificate is uploaded to the connected app (external client
 * app).
 *
 * Header `{"alg":"RS256"}`, as documented. Claims: `iss` = consumer key, `sub` =
 * username of the integration user, `aud` = the login URL (https://login.salesforce.com,
 * https://test.salesforce.com, or the My Domain / Experience Cloud site URL), `exp` =
 * seconds since the epoch, at most 3 minutes ahead. A fresh assertion is made for every
 * token request and sent once. The key never appears in an error message (shared/jwt.ts).
 */
import type { KeyObject } from 'node:crypto';
import { loadPrivateKey, signJws, type PrivateKeySource } from '../shared/jwt.js';

/**
 * Lifetime of one assertion. Salesforce wants exp within 3 minutes; 2 minutes (the
 * default Salesforce's own named credentials use) leaves a minute for the relay's
 * clock running ahead of Salesforce's.
 */
export const ASSERTION_LIFETIME_S = 120;

export interface JwtBearerClaims {
  /** Consumer key of the app. */
  clientId: string;
  /** Username of the integration user the tokens act as. */
  username: string;
  audience: string;
  nowMs: number;
}

export function signJwtBearerAssertion(privateKey: KeyObject, claims: JwtBearerClaims): string {
  const exp = Math.floor(claims.nowMs / 1000) + ASSERTION_LIFETIME_S;
  return signJws('RS256', privateKey, { alg: 'RS256' }, { iss: claims.clientId, sub: claims.username, aud: claims.audience, exp });
}

/** Loads the RSA private key (2048 bits or more) from PEM text or a PEM file; throws PermanentError invalid_private_key. */
export function loadSalesforcePrivateKey(source: PrivateKeySource): KeyObject {
  return loadPrivateKey(source, 'RS256', 'Salesforce sink private key');
}

/**
 * The `aud` to send: `audience`, else the login URL, without a trailing slash
 * (Salesforce compares it with https://login.salesforce.com and the like as a string).
 */
export function assertionAudience(audience: string | undefined, loginUrl: string): string {
  return (audience ?? loginUrl).replace(/\/+$/, '');
}
