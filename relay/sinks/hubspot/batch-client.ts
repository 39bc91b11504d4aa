/**
 * One HTTP call to HubSpot: batch upsert (`POST /crm/v3/objects/{objectType}/batch/upsert`),
 * batch read and batch archive (reconciliation, records.ts), or the read probe `start()` makes. Authenticates with the private app token as a
 * bearer token; never follows redirects, so the token goes to `baseUrl` only. Every
 * answer's `X-HubSpot-RateLimit-*` headers are reported to `onQuota`.
 *
 * Returns answers; never throws. A 200/207 is parsed into results and per-input
 * errors; anything else, or no answer at all, comes back as a classified verdict.
 */
import { fetchAnswer } from '../shared/timed-fetch.js';
import { classifyCallAnswer, classifyNetworkError, parseErrorBody, parseRateHeaders, type HubSpotError, type HubSpotQuota, type Verdict } from './classify.js';

export interface BatchInput {
  id: string;
  idProperty: string;
  properties: Record<string, string>;
  /** Unique per input of a call: HubSpot echoes it in results and errors, so answers map back to inputs. */
  objectWriteTraceId: string;
}

export interface UpsertResult {
  /** HubSpot record id (`hs_object_id`). */
  id: string;
  properties?: Record<string, unknown>;
  objectWriteTraceId?: string;
}

export type CallAnswer = { ok: true; results: UpsertResult[]; errors: HubSpotError[] } | { ok: false; verdict: Verdict };

/** A record of a batch read: HubSpot record id and the properties asked for (null where unset). */
export interface ReadResult {
  id: string;
  properties: Record<string, unknown>;
}

export type ReadAnswer = { ok: true; results: ReadResult[]; errors: HubSpotError[] } | { ok: false; verdict: Verdict };

export interface BatchClientOptions {
  /** HTTP client (paced by the sink's rate limiter); defaults to global fetch. */
  fetch?: typeof fetch;
  baseUrl: string;
  token: string;
  timeoutMs: number;
  /** Aborts requests in flight when the sink stops. */
  stopSignal: AbortSignal;
  onQuota: (quota: HubSpotQuota) => void;
}

export class HubSpotBatchClient {
  private readonly base: string;

  constructor(private readonly options: BatchClientOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
  }

  async upsert(objectType: string, inputs: readonly BatchInput[]): Promise<CallAnswer> {
    const answer = await this.request('POST', `/crm/v3/objects/${encodeURIComponent(objectType)}/batch/upsert`, { inputs });
    if (!answer.ok) return answer;
    const { status, headers, text } = answer;
    if (status !== 200 && status !== 207) return { ok: false, verdict: classifyCallAnswer(status, headers, text) };
    const body = parseErrorBody(text) as { results?: unknown; errors?: unknown } | undefined;
    if (!body) return { ok: false, verdict: { kind: 'transient', detail: `HTTP ${status} without a readable JSON body` } };
    const results = Array.isArray(body.results)
      ? body.results.filter((r): r is UpsertResult => typeof r === 'object' && r !== null && typeof (r as UpsertResult).id === 'string')
      : [];
    const errors = Array.isArray(body.errors) ? body.errors.filter((e): e is HubSpotError => typeof e === 'object' && e !== null) : [];
    return { ok: true, results, errors };
  }

  /**
   * `POST /crm/v3/objects/{objectType}/batch/read` by unique property values: found
   * records in `results`, the values not found in a 207's `errors` (OBJECT_NOT_FOUND).
   */
  async read(objectType: string, idProperty: string, ids: readonly string[], properties: readonly string[]): Promise<ReadAnswer> {
    const answer = await this.request('POST', `/crm/v3/objects/${encodeURIComponent(objectType)}/batch/read`, {
      idProperty,
      inputs: ids.map((id) => ({ id })),
      properties,
    });
    if (!answer.ok) return answer;
    const { status, headers, text } = answer;
    if (status !== 200 && status !== 207) return { ok: false, verdict: classifyCallAnswer(status, headers, text) };
    const body = parseErrorBody(text) as { results?: unknown; errors?: unknown } | undefined;
    if (!body) return { ok: false, verdict: { kind: 'transient', detail: `HTTP ${status} without a readable JSON body` } };
    const results = (Array.isArray(body.results) ? body.results : [])
      .filter((r): r is { id: string; properties?: unknown } => typeof r === 'object' && r !== null && typeof (r as { id?: unknown }).id === 'string')
      .map((r) => ({ id: r.id, properties: typeof r.properties === 'object' && r.properties !== null ? { ...(r.properties as Record<string, unknown>) } : {} }));
    const errors = Array.isArray(body.errors) ? body.errors.filter((e): e is HubSpotError => typeof e === 'object' && e !== null) : [];
    return { ok: true, results, errors };
  }

  /** `POST /crm/v3/objects/{objectType}/batch/archive` by HubSpot record ids; undefined when HubSpot answered 204. */
  async archive(objectType: string, ids: readonly string[]): Promise<Verdict | undefined> {
    const answer = await this.request('POST', `/crm/v3/objects/${encodeURIComponent(objectType)}/batch/archive`, { inputs: ids.map((id) => ({ id })) });
    if (!answer.ok) return answer.verdict;
    return answer.status === 204 || answer.status === 200 ? undefined : classifyCallAnswer(answer.status, answer.headers, answer.text);
  }

  /** Reads one record of `objectType` to check the token; undefined when HubSpot answered 200. */
  async probe(objectType: string): Promise<Verdict | undefined> {
    const answer = await this.request('GET', `/crm/v3/objects/${encodeURIComponent(objectType)}?limit=1`);
    if (!answer.ok) return answer.verdict;
    return answer.status === 200 ? undefined : classifyCallAnswer(answer.status, answer.headers, answer.text);
  }

  private async request(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<{ ok: true; status: number; headers: Headers; text: string } | { ok: false; verdict: Verdict }> {
    try {
      const headers = {
        Authorization: `Bearer ${this.options.token}`,
        Accept: 'application/json',
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      };
      const answer = await fetchAnswer(
        this.options.fetch ?? fetch,
        `${this.base}${path}`,
        { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) },
        this.options,
      );
      const quota = parseRateHeaders(answer.headers);
      if (quota) this.options.onQuota(quota);
      return { ok: true, ...answer };
    } catch (error) {
      return { ok: false, verdict: classifyNetworkError(error, this.options.timeoutMs) };
    }
  }
}
