/**
 * Access tokens by NetSuite's OAuth 2.0 client credentials (M2M) flow:
 * `POST {baseUrl}/services/rest/auth/oauth2/v1/token` with grant_type=client_credentials,
 * client_assertion_type=jwt-bearer and a freshly signed client assertion.
 *
 * A token is kept until shortly before it expires (NetSuite issues them for 60
 * minutes, `expires_in` 3600) and then replaced before use, so calls do not meet an
 * expired token; a 401 still makes the caller invalidate it and ask again (revoked
 * mapping, clock skew). Concurrent callers share one token request. The access token,
 * the assertion and the key stay inside this module and the Authorization header:
 * they are never logged nor put in error messages.
 */
import type { KeyObject } from 'node:crypto';
import { TransientError } from '../../../protocols/errors.js';
import type { Logger } from '../../../protocols/log.js';
import { signClientAssertion, type AssertionAlgorithm } from './assertion.js';
import { fetchAnswer, type Answer } from '../shared/timed-fetch.js';
import { TokenCache } from '../shared/token-cache.js';
import { classifyNetworkError, classifyTokenResponse } from './classify.js';

export interface AccessToken {
  readonly accessToken: string;
  /** When NetSuite stops accepting it (ms since epoch, by the sink's clock). */
  readonly expiresAt: number;
  /** When the sink replaces it before use. */
  readonly refreshAt: number;
}

export interface TokenSource {
  get(): Promise<AccessToken>;
  /** Forgets `token` if it is still the current one (another caller may already have replaced it). */
  invalidate(token: AccessToken): void;
}

export interface ClientCredentialsOptions {
  /** `{baseUrl}/services/rest/auth/oauth2/v1/token`; also the assertion's `aud`. */
  tokenUrl: string;
  clientId: string;
  certificateId: string;
  privateKey: KeyObject;
  algorithm: AssertionAlgorithm;
  scopes: readonly string[];
  timeoutMs: number;
  /** Aborts token requests when the sink stops. */
  stopSignal: AbortSignal;
  now: () => number;
}

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Documented lifetime, used when the answer has no usable expires_in. */
const DEFAULT_LIFETIME_S = 3600;
/** Replace a token this long before it expires: at most 5 minutes, at most a quarter of its lifetime. */
const refreshMarginMs = (lifetimeMs: number): number => Math.min(5 * 60_000, lifetimeMs / 4);

export class ClientCredentialsTokenSource implements TokenSource {
  private readonly cache: TokenCache<AccessToken>;

  constructor(
    private readonly options: ClientCredentialsOptions,
    private readonly logger: Logger,
  ) {
    this.cache = new TokenCache(
      () => this.request(),
      (token) => options.now() < token.refreshAt,
    );
  }

  get(): Promise<AccessToken> {
    return this.cache.get();
  }

  invalidate(token: AccessToken): void {
    this.cache.invalidate(token);
  }

  private async request(): Promise<AccessToken> {
    const { options } = this;
    const requestedAt = options.now();
    const assertion = signClientAssertion(options.algorithm, options.privateKey, {
      clientId: options.clientId,
      certificateId: options.certificateId,
      scopes: options.scopes,
      audience: options.tokenUrl,
      nowMs: requestedAt,
    });
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: assertion });
    let answer: Answer;
    try {
      // Never follows a redirect (timedFetch), so the signed assertion goes to tokenUrl only.
      answer = await fetchAnswer(
        fetch,
        options.tokenUrl,
        { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' }, body: form.toString() },
        options,
      );
    } catch (error) {
      throw classifyNetworkError('requesting a NetSuite access token', error, options.timeoutMs);
    }
    const { status, headers, text } = answer;
    if (status !== 200) throw classifyTokenResponse(status, headers, text);
    const token = this.parse(text, requestedAt);
    this.logger.info({ expiresInS: Math.round((token.expiresAt - requestedAt) / 1000) }, 'obtained a NetSuite access token');
    return token;
  }

  /** `{ access_token, expires_in, token_type }`; expires_in arrives as a number or a numeric string. */
  private parse(text: string, requestedAt: number): AccessToken {
    let body: { access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new TransientError('requesting a NetSuite access token: the answer is not JSON');
    }
    if (typeof body.access_token !== 'string' || !body.access_token) {
      throw new TransientError('requesting a NetSuite access token: the answer lacks access_token');
    }
    const seconds = Number(body.expires_in);
    const lifetimeMs = (Number.isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_LIFETIME_S) * 1000;
    // Counted from the request, not the answer: the token may have been issued any time in between.
    const expiresAt = requestedAt + lifetimeMs;
    return { accessToken: body.access_token, expiresAt, refreshAt: expiresAt - refreshMarginMs(lifetimeMs) };
  }
}
