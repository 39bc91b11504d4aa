/**
 * Calls to NetSuite's REST web services: upsert of one record by external id
 * (`PUT /services/rest/record/v1/{recordType}/eid:{externalId}`, answered 204 with the
 * record's URL in Location), reading one record by external id and deleting one by
 * internal id (reconciliation, records.ts), and the governance limits of the integration
 * (`GET /services/rest/system/v1/governanceLimits`).
 *
 * On 401 the token is invalidated, a new one fetched and the call retried once. A
 * second 401 with a fresh token, or a token endpoint refusing the credentials, means
 * the mapping or role lost access: transient with a long hint (see classify.ts), since
 * no event is at fault. Every upsert sends `X-NetSuite-PropertyNameValidation: Error`,
 * so a field id that does not exist on the record type fails loudly instead of being
 * dropped, whatever the account's default.
 */
import { PermanentError, TransientError } from '../../../protocols/errors.js';
import { fetchAnswer, type Answer } from '../shared/timed-fetch.js';
import { sendWithTokenRetry } from '../shared/token-retry.js';
import { authRefused, classifyApiResponse, classifyNetworkError, parseErrorDetails, withContext } from './classify.js';
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

  /**
   * Reads one record by external id with only `fields` (`GET .../{recordType}/eid:{externalId}?fields=a,b`):
   * its internal id and the fields NetSuite returned, or undefined when no record has
   * that external id (404 NONEXISTENT_ID). Any other failure is thrown, classified.
   */
  async get(recordType: string, externalId: string, fields: readonly string[]): Promise<{ id: string; fields: Record<string, unknown> } | undefined> {
    const what = `reading ${recordType}/eid:${externalId}`;
    const query = fields.length > 0 ? `?fields=${fields.map(encodeURIComponent).join(',')}` : '';
    const answer = await this.call(what, 'GET', `/services/rest/record/v1/${encodeURIComponent(recordType)}/eid:${encodeURIComponent(externalId)}${query}`);
    if (answer.status === 404 && parseErrorDetails(answer.text).some((d) => d['o:errorCode'] === 'NONEXISTENT_ID')) return undefined;
    if (answer.status !== 200) throw classifyApiResponse(what, answer.status, answer.headers, answer.text);
    let body: unknown;
    try {
      body = JSON.parse(answer.text);
    } catch (error) {
      throw new TransientError(`${what}: HTTP 200 with a body that is not JSON`, { cause: error });
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TransientError(`${what}: HTTP 200 without a record`);
    const { links, id, ...rest } = body as Record<string, unknown>;
    const internalId = typeof id === 'string' ? id : internalIdFrom(selfLink(links) ?? null);
    if (internalId === undefined) throw new TransientError(`${what}: HTTP 200 without the record's internal id`);
    return { id: internalId, fields: rest };
  }

  /** Deletes one record by internal id (`DELETE .../{recordType}/{id}`, 204); a record already gone (404 NONEXISTENT_ID) counts as deleted. */
  async delete(recordType: string, id: string): Promise<void> {
    const what = `deleting ${recordType}/${id}`;
    const answer = await this.call(what, 'DELETE', `/services/rest/record/v1/${encodeURIComponent(recordType)}/${encodeURIComponent(id)}`);
    if (answer.status === 404 && parseErrorDetails(answer.text).some((d) => d['o:errorCode'] === 'NONEXISTENT_ID')) return;
    if (answer.status < 200 || answer.status > 299) throw classifyApiResponse(what, answer.status, answer.headers, answer.text);
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

  private call(what: string, method: 'PUT' | 'GET' | 'DELETE', path: string, body?: unknown): Promise<Answer> {
    return sendWithTokenRetry(this.tokens, (token) => this.send(token, method, path, body, what), {
      what,
      authRefused,
      refusedTwice: () => new PermanentError('INVALID_LOGIN: a fresh access token was refused too', { code: 'INVALID_LOGIN' }),
    });
  }

  private async send(token: AccessToken, method: 'PUT' | 'GET' | 'DELETE', path: string, body: unknown, what: string): Promise<Answer> {
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

/** The `href` of a record's `links: [{ rel: 'self', href }]`. */
function selfLink(links: unknown): string | undefined {
  if (!Array.isArray(links)) return undefined;
  const self = links.find((l): l is { rel: string; href: string } => typeof l === 'object' && l !== null && (l as { rel?: unknown }).rel === 'self');
  return typeof self?.href === 'string' ? self.href : undefined;
}

/** `https://.../record/v1/customrecord_x/123` -> `123`. */
function internalIdFrom(location: string | null): string | undefined {
  if (!location) return undefined;
  const match = /\/([^/?#]+)\/?(?:[?#].*)?$/.exec(location);
  return match?.[1] ? decodeURIComponent(match[1]) : undefined;
}
