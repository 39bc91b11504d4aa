/**
 * Calls to NetSuite's REST web services: upsert of one record by external id
 * (`PUT /services/rest/record/v1/{recordType}/eid:{externalId}`, answered 204 with the
 * record's URL in Location) and the governance limits of the integration
 * (`GET /services/rest/system/v1/governanceLimits`).
 *
 * On 401 the token is invalidated, a new one fetched and the call retried once. A
 * second 401 with a fresh token, or a token endpoint refusing the credentials, means
 * the mapping or role lost access: transient with a long hint (see classify.ts), since
 * no event is at fault. Every upsert sends `X-NetSuite-PropertyNameValidation: Error`,
 * so a field id that does not exist on the record type fails loudly instead of being
 * dropped, whatever the account's default.
 */
import { PermanentError } from '../../../protocols/errors.js';
import { fetchAnswer, type Answer } from '../shared/timed-fetch.js';
import { sendWithTokenRetry } from '../shared/token-retry.js';
import { authRefused, classifyApiResponse, classifyNetworkError, withContext } from './classify.js';
import type { AccessToken, TokenSource } from './oauth.js';

export interface UpsertRequest {
  recordType: string;
  externalId: string;
  body: Record<string, unknown>;
}

export interface UpsertResult {
  /** `{recordType}/{internal id}` from the Location header, or `{recordType}/eid:{externalId}` without one. */
  recordId: string;
}

/** The documented answer of governanceLimits; integrationConcurrencyLimit only for integrationSpecific. */
export interface GovernanceLimits {
  accountConcurrencyLimit?: number;
  accountUnallocatedConcurrencyLimit?: number;
  integrationConcurrencyLimit?: number;
  integrationLimitType?: string;
}

export interface RestClientOptions {
  /** HTTP client (paced by the sink's rate limiter); defaults to global fetch. */
  fetch?: typeof fetch;
  baseUrl: string;
  timeoutMs: number;
  stopSignal: AbortSignal;
}

export class NetSuiteRestClient {
  constructor(
    private readonly tokens: TokenSource,
    private readonly options: RestClientOptions,
  ) {}

  /** Upserts one record; throws TransientError or PermanentError, already classified. */
  async upsert(request: UpsertRequest): Promise<UpsertResult> {
    const what = `upserting ${request.recordType}/eid:${request.externalId}`;
    const path = `/services/rest/record/v1/${encodeURIComponent(request.recordType)}/eid:${encodeURIComponent(request.externalId)}`;
    const answer = await this.call(what, 'PUT', path, request.body);
    if (answer.status < 200 || answer.status > 299) throw classifyApiResponse(what, answer.status, answer.headers, answer.text);
    const internalId = internalIdFrom(answer.headers.get('location'));
    return { recordId: `${request.recordType}/${internalId ?? `eid:${request.externalId}`}` };
  }

  /** Reads the concurrency limits; NetSuite answers only for administrator roles. */
  async governanceLimits(): Promise<GovernanceLimits> {
    const what = 'reading NetSuite governance limits';
    const answer = await this.call(what, 'GET', '/services/rest/system/v1/governanceLimits');
    if (answer.status !== 200) throw classifyApiResponse(what, answer.status, answer.headers, answer.text);
    try {
      const body = JSON.parse(answer.text) as Record<string, unknown>;
      const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
      const limits: GovernanceLimits = {};
      const account = num(body.accountConcurrencyLimit);
      const unallocated = num(body.accountUnallocatedConcurrencyLimit);
      const integration = num(body.integrationConcurrencyLimit);
      if (account !== undefined) limits.accountConcurrencyLimit = account;
      if (unallocated !== undefined) limits.accountUnallocatedConcurrencyLimit = unallocated;
      if (integration !== undefined) limits.integrationConcurrencyLimit = integration;
      if (typeof body.integrationLimitType === 'string') limits.integrationLimitType = body.integrationLimitType;
      return limits;
    } catch (error) {
      throw withContext(what, new PermanentError('the answer is not JSON', { code: 'invalid_response', cause: error }));
    }
  }

  private call(what: string, method: 'PUT' | 'GET', path: string, body?: unknown): Promise<Answer> {
    return sendWithTokenRetry(this.tokens, (token) => this.send(token, method, path, body, what), {
      what,
      authRefused,
      refusedTwice: () => new PermanentError('INVALID_LOGIN: a fresh access token was refused too', { code: 'INVALID_LOGIN' }),
    });
  }

  private async send(token: AccessToken, method: 'PUT' | 'GET', path: string, body: unknown, what: string): Promise<Answer> {
    const headers: Record<string, string> = { Authorization: `Bearer ${token.accessToken}`, Accept: 'application/json' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['X-NetSuite-PropertyNameValidation'] = 'Error';
    }
    try {
      return await fetchAnswer(
        this.options.fetch ?? fetch,
        `${this.options.baseUrl}${path}`,
        { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) },
        this.options,
      );
    } catch (error) {
      throw classifyNetworkError(what, error, this.options.timeoutMs);
    }
  }
}

/** `https://.../record/v1/customrecord_x/123` -> `123`. */
function internalIdFrom(location: string | null): string | undefined {
  if (!location) return undefined;
  const match = /\/([^/?#]+)\/?(?:[?#].*)?$/.exec(location);
  return match?.[1] ? decodeURIComponent(match[1]) : undefined;
}
