/**
 * Access tokens by the OAuth 2.0 client credentials flow.
 *
 * Salesforce's token response carries no expiry (`expires_in`), so a token is kept
 * until the REST API answers 401; the caller then invalidates that token and asks
 * again. Concurrent callers share one token request. The access token and the
 * client secret stay inside this module and the Authorization header: they are
 * never logged nor put in error messages.
 */
import { PermanentError, TransientError } from '../../../protocols/errors.js';
import type { Logger } from '../../../protocols/log.js';
import { fetchAnswer, type Answer } from '../shared/timed-fetch.js';
import { TokenCache } from '../shared/token-cache.js';
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

export interface ClientCredentialsOptions {
  loginUrl: string;
  clientId: string;
  clientSecret: string;
  timeoutMs: number;
  /** Aborts token requests when the sink stops. */
  stopSignal: AbortSignal;
}

const isLoopback = (host: string): boolean => host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);

export class ClientCredentialsTokenSource implements TokenSource {
  /** No expiry to watch: a token is fresh until a 401 makes the caller invalidate it. */
  private readonly cache = new TokenCache(() => this.request());

  constructor(
    private readonly options: ClientCredentialsOptions,
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
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: this.options.clientId,
      client_secret: this.options.clientSecret,
    });
    let answer: Answer;
    try {
      // Never follows a redirect (timedFetch), so the client secret goes to loginUrl only.
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
    this.logger.info({ instanceUrl: token.instanceUrl }, 'obtained a Salesforce access token');
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
