/**
 * Access tokens from `POST {loginUrl}/services/oauth2/token`, by one of two grants:
 * - client credentials: `grant_type=client_credentials` with consumer key and secret;
 * - JWT bearer: `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with a freshly
 *   signed assertion (assertion.ts) for every request.
 *
 * Neither token response carries an expiry (`expires_in`) nor, for these flows, a
 * refresh token, so a token is kept until the REST API answers 401; the caller then
 * invalidates that token and asks again (a new grant). Concurrent callers share one
 * token request. The access token, the client secret, the assertion and the private
 * key stay inside this module and the Authorization header: they are never logged
 * nor put in error messages.
 */
import type { KeyObject } from 'node:crypto';
import { PermanentError, TransientError } from '../../../protocols/errors.js';
import type { Logger } from '../../../protocols/log.js';
import { fetchAnswer, type Answer } from '../shared/timed-fetch.js';
import { TokenCache } from '../shared/token-cache.js';
import { signJwtBearerAssertion } from './assertion.js';
import { classifyNetworkError, classifyTokenResponse } from './classify.js';

export interface AccessToken {
  readonly accessToken: string;
  /** Base URL for REST calls, from the token response. */
  readonly instanceUrl: string;
}

export interface TokenSource {
  get(): Promise<AccessToken>;
  /** Forgets `token` if it is still the current one (another caller may already have replaced it). */
  invalidate(token: AccessToken): void;
}

/** The form of one token request; called for every request (a JWT bearer grant signs a new assertion). */
export interface TokenGrant {
  /** For logs: `client_credentials` or `jwt_bearer`. */
  readonly flow: string;
  form(): URLSearchParams;
}

export function clientCredentialsGrant(auth: { clientId: string; clientSecret: string }): TokenGrant {
  return {
    flow: 'client_credentials',
    form: () => new URLSearchParams({ grant_type: 'client_credentials', client_id: auth.clientId, client_secret: auth.clientSecret }),
  };
}

export const JWT_BEARER_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export interface JwtBearerGrantOptions {
  clientId: string;
  username: string;
  /** The assertion's `aud` (assertionAudience). */
  audience: string;
  privateKey: KeyObject;
  now: () => number;
}

export function jwtBearerGrant(options: JwtBearerGrantOptions): TokenGrant {
  return {
    flow: 'jwt_bearer',
    form: () =>
      new URLSearchParams({
        grant_type: JWT_BEARER_GRANT_TYPE,
        assertion: signJwtBearerAssertion(options.privateKey, {
          clientId: options.clientId,
          username: options.username,
          audience: options.audience,
          nowMs: options.now(),
        }),
      }),
  };
}

export interface TokenSourceOptions {
  loginUrl: string;
  grant: TokenGrant;
  timeoutMs: number;
  /** Aborts token requests when the sink stops. */
  stopSignal: AbortSignal;
}

const isLoopback = (host: string): boolean => host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);

export class OAuthTokenSource implements TokenSource {
  /** No expiry to watch: a token is fresh until a 401 makes the caller invalidate it. */
  private readonly cache = new TokenCache(() => this.request());

  constructor(
    private readonly options: TokenSourceOptions,
    private readonly logger: Logger,
  ) {}

  get(): Promise<AccessToken> {
    return this.cache.get();
  }

  invalidate(token: AccessToken): void {
    this.cache.invalidate(token);
  }

  private async request(): Promise<AccessToken> {
    const url = new URL('/services/oauth2/token', this.options.loginUrl).toString();
    const form = this.options.grant.form();
    let answer: Answer;
    try {
      // Never follows a redirect (timedFetch), so the secret or assertion goes to loginUrl only.
      answer = await fetchAnswer(
        fetch,
        url,
        { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' }, body: form.toString() },
        this.options,
      );
    } catch (error) {
      throw classifyNetworkError('requesting a Salesforce access token', error, this.options.timeoutMs);
    }
    const { status, headers, text } = answer;
    if (status !== 200) throw classifyTokenResponse(status, headers, text);
    const token = this.parse(text);
    this.logger.info({ instanceUrl: token.instanceUrl, flow: this.options.grant.flow }, 'obtained a Salesforce access token');
    return token;
  }

  private parse(text: string): AccessToken {
    let body: { access_token?: unknown; instance_url?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new TransientError('requesting a Salesforce access token: the answer is not JSON');
    }
    if (typeof body.access_token !== 'string' || !body.access_token || typeof body.instance_url !== 'string') {
      throw new TransientError('requesting a Salesforce access token: the answer lacks access_token or instance_url');
    }
    let instance: URL;
    try {
      instance = new URL(body.instance_url);
    } catch {
      throw new PermanentError(`requesting a Salesforce access token: instance_url "${body.instance_url}" is not a URL`, { code: 'invalid_instance_url' });
    }
    if (instance.protocol !== 'https:' && !(instance.protocol === 'http:' && isLoopback(instance.hostname))) {
      // The bearer token would travel in clear text.
      throw new PermanentError(`requesting a Salesforce access token: instance_url "${instance.origin}" is not https`, { code: 'invalid_instance_url' });
    }
    return { accessToken: body.access_token, instanceUrl: instance.origin };
  }
}
