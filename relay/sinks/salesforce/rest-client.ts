/**
 * One REST call: upsert a record by external id
 * (`PATCH /services/data/vXX.X/sobjects/{Object}/{Field}/{value}`).
 *
 * On 401 the token is invalidated, a new one fetched and the call retried once. A
 * second 401 with a fresh token, or a token endpoint refusing the credentials, means
 * the integration user or app lost access: transient with a long hint (see
 * classify.ts), since no event is at fault. Every answer's `Sforce-Limit-Info` is
 * reported to `onLimitInfo`.
 */
import { PermanentError } from '../../../protocols/errors.js';
import { authRefused, classifyApiResponse, classifyNetworkError, parseLimitInfo, withContext } from './classify.js';
import type { AccessToken, TokenSource } from './oauth.js';

export interface UpsertRequest {
  object: string;
  externalIdField: string;
  externalId: string;
  body: Record<string, unknown>;
}

export interface UpsertResult {
  /** Salesforce record id (18 characters). */
  id: string;
  created: boolean;
}

export interface RestClientOptions {
  apiVersion: string;
  timeoutMs: number;
  stopSignal: AbortSignal;
  onLimitInfo: (usage: { used: number; max: number }) => void;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

export class SalesforceRestClient {
  constructor(
    private readonly tokens: TokenSource,
    private readonly options: RestClientOptions,
  ) {}

  /** Upserts one record; throws TransientError or PermanentError, already classified. */
  async upsert(request: UpsertRequest): Promise<UpsertResult> {
    const what = `upserting ${request.object}/${request.externalId}`;
    let token = await this.token(what);
    let answer = await this.send(token, request, what);
    if (answer.status === 401) {
      this.tokens.invalidate(token);
      token = await this.token(what);
      answer = await this.send(token, request, what);
      if (answer.status === 401) {
        throw authRefused(what, new PermanentError('INVALID_SESSION_ID: a fresh access token was refused too', { code: 'INVALID_SESSION_ID' }));
      }
    }
    if (answer.status < 200 || answer.status > 299) throw classifyApiResponse(what, answer.status, answer.headers, answer.text);
    return this.result(answer, request);
  }

  private async token(what: string): Promise<AccessToken> {
    try {
      return await this.tokens.get();
    } catch (error) {
      throw error instanceof PermanentError ? authRefused(what, error) : withContext(what, error);
    }
  }

  private async send(token: AccessToken, request: UpsertRequest, what: string): Promise<Answer> {
    const path = [request.object, request.externalIdField, request.externalId].map(encodeURIComponent).join('/');
    const url = `${token.instanceUrl}/services/data/v${this.options.apiVersion}/sobjects/${path}`;
    try {
      const res = await fetch(url, {
        method: 'PATCH',
        headers: { Authorization: `Bearer ${token.accessToken}`, 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(request.body),
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(this.options.timeoutMs), this.options.stopSignal]),
      });
      const text = await res.text();
      const usage = parseLimitInfo(res.headers.get('sforce-limit-info'));
      if (usage) this.options.onLimitInfo(usage);
      return { status: res.status, headers: res.headers, text };
    } catch (error) {
      throw classifyNetworkError(what, error, this.options.timeoutMs);
    }
  }

  private result(answer: Answer, request: UpsertRequest): UpsertResult {
    let body: { id?: unknown; created?: unknown; success?: unknown } = {};
    try {
      if (answer.text) body = JSON.parse(answer.text) as typeof body;
    } catch {
      // A 2xx without JSON still means written; the id is then unknown.
    }
    return {
      id: typeof body.id === 'string' ? body.id : `${request.object}/${request.externalId}`,
      created: body.created === true || answer.status === 201,
    };
  }
}
