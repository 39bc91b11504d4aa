/**
 * One REST call: upsert up to 200 records of one object by one external id field with
 * sObject Collections (API 46.0+):
 * `PATCH /services/data/vXX.X/composite/sobjects/{Object}/{ExternalIdField}` with
 * `{ allOrNone: false, records: [{ attributes: { type }, <ExternalIdField>: value, ...fields }] }`.
 *
 * Salesforce answers a well-formed call 200 with one result per record, in request order,
 * whatever the records' fate; each record is written or refused on its own (allOrNone
 * false). Any other answer is a failure of the whole call, classified in classify.ts.
 *
 * On 401 the token is invalidated, a new one fetched and the call retried once. A
 * second 401 with a fresh token, or a token endpoint refusing the credentials, means
 * the integration user or app lost access: transient with a long hint (see
 * classify.ts), since no event is at fault. Every answer's `Sforce-Limit-Info` is
 * reported to `onLimitInfo`.
 */
import { PermanentError, TransientError } from '../../../protocols/errors.js';
import {
  authRefused,
  classifyApiResponse,
  classifyNetworkError,
  parseLimitInfo,
  parseRecordErrors,
  type SalesforceErrorItem,
} from './classify.js';
import { fetchAnswer, type Answer } from '../shared/timed-fetch.js';
import { sendWithTokenRetry } from '../shared/token-retry.js';
import type { AccessToken, TokenSource } from './oauth.js';

/** Salesforce's documented maximum of records in one sObject Collections request. */
export const MAX_RECORDS_PER_CALL = 200;

export interface CollectionUpsertRequest {
  object: string;
  externalIdField: string;
  /** Distinct external ids: Salesforce fails every record sharing one within a request. */
  records: readonly { externalId: string; body: Record<string, unknown> }[];
}

/** The fate of one record, in request order. */
export type RecordResult = { success: true; id: string; created: boolean } | { success: false; errors: SalesforceErrorItem[] };

export interface RestClientOptions {
  /** HTTP client (paced by the sink's rate limiter); defaults to global fetch. */
  fetch?: typeof fetch;
  apiVersion: string;
  timeoutMs: number;
  stopSignal: AbortSignal;
  onLimitInfo: (usage: { used: number; max: number }) => void;
}

export class SalesforceRestClient {
  constructor(
    private readonly tokens: TokenSource,
    private readonly options: RestClientOptions,
  ) {}

  /**
   * Upserts the records in one call and returns one result per record, in order.
   * Throws TransientError or PermanentError, already classified, when the call as a
   * whole fails (then no record was written).
   */
  async upsertCollection(request: CollectionUpsertRequest): Promise<RecordResult[]> {
    const count = request.records.length;
    if (count === 0 || count > MAX_RECORDS_PER_CALL) throw new RangeError(`an sObject Collections call carries 1 to ${MAX_RECORDS_PER_CALL} records, not ${count}`);
    const what = `sObject Collections call of ${count} record${count === 1 ? '' : 's'}`;
    const path = `composite/sobjects/${encodeURIComponent(request.object)}/${encodeURIComponent(request.externalIdField)}`;
    const body = JSON.stringify({
      allOrNone: false,
      records: request.records.map((r) => ({ attributes: { type: request.object }, ...r.body, [request.externalIdField]: r.externalId })),
    });
    const answer = await this.call('PATCH', path, what, body);
    if (answer.status < 200 || answer.status > 299) throw classifyApiResponse(what, answer.status, answer.headers, answer.text);
    return parseResults(what, answer, request);
  }

  /**
   * Sends a request with the current token; on 401, once more with a fresh one.
   * `path` is relative to `/services/data/vXX.X/`, or absolute (`/services/data/...`,
   * as a query's `nextRecordsUrl` is); either way it goes to the token's instance.
   */
  call(method: 'GET' | 'PATCH' | 'DELETE', path: string, what: string, body?: string): Promise<Answer> {
    return sendWithTokenRetry(this.tokens, (token) => this.send(token, method, path, body, what), {
      what,
      authRefused,
      refusedTwice: () => new PermanentError('INVALID_SESSION_ID: a fresh access token was refused too', { code: 'INVALID_SESSION_ID' }),
    });
  }

  private async send(token: AccessToken, method: 'GET' | 'PATCH' | 'DELETE', path: string, body: string | undefined, what: string): Promise<Answer> {
    const url = path.startsWith('/') ? `${token.instanceUrl}${path}` : `${token.instanceUrl}/services/data/v${this.options.apiVersion}/${path}`;
    const headers: Record<string, string> = { Authorization: `Bearer ${token.accessToken}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      const answer = await fetchAnswer(this.options.fetch ?? fetch, url, { method, headers, ...(body === undefined ? {} : { body }) }, this.options);
      const usage = parseLimitInfo(answer.headers.get('sforce-limit-info'));
      if (usage) this.options.onLimitInfo(usage);
      return answer;
    } catch (error) {
      throw classifyNetworkError(what, error, this.options.timeoutMs);
    }
  }
}

/**
 * One result per record or a TransientError: a 2xx whose body is not that list leaves
 * unknown which records were written, and rewriting them is harmless (upserts).
 */
function parseResults(what: string, answer: Answer, request: CollectionUpsertRequest): RecordResult[] {
  let body: unknown;
  try {
    body = JSON.parse(answer.text);
  } catch {
    body = undefined;
  }
  if (!Array.isArray(body) || body.length !== request.records.length) {
    const got = Array.isArray(body) ? `${body.length} results` : 'no result list';
    throw new TransientError(`${what}: HTTP ${answer.status} with ${got} for ${request.records.length} records`);
  }
  return body.map((raw: unknown, i): RecordResult => {
    const result = (typeof raw === 'object' && raw !== null ? raw : {}) as { id?: unknown; success?: unknown; created?: unknown; errors?: unknown };
    if (result.success !== true) return { success: false, errors: parseRecordErrors(result.errors) };
    const record = request.records[i]!;
    return { success: true, id: typeof result.id === 'string' ? result.id : `${request.object}/${record.externalId}`, created: result.created === true };
  });
}
