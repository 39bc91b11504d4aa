/**
 * The one place where Salesforce answers become failure kinds.
 *
 * Transient (retry, honouring Retry-After): network errors, timeouts, 408/425/429/5xx,
 * and the error codes that mean "not now" whatever the status: REQUEST_LIMIT_EXCEEDED
 * (documented with 403), UNABLE_TO_LOCK_ROW, SERVER_UNAVAILABLE.
 * Permanent (dead-letter, keep for replay): 300 (external id matches several records),
 * 400/404 and every other 4xx, with `code` = Salesforce's errorCode.
 * Per-record errors of an sObject Collections answer (200 overall) follow the same code
 * rules: the "not now" codes above, and ALL_OR_NONE_OPERATION_ROLLED_BACK (the record
 * was fine, another one failed), are transient; every other statusCode is permanent.
 * Refused credentials (token endpoint 4xx, or 401 with a fresh token) are permanent for
 * `start()`, but while delivering they say nothing about the event: the items are
 * `errored` with a long retry hint, so events wait for fixed credentials instead of
 * filling the dead letters.
 *
 * Messages name what was attempted and Salesforce's own words; they never carry
 * request bodies, tokens or secrets.
 */
import { isRetryableStatus, parseRetryAfter, PermanentError, TransientError } from '../../../protocols/errors.js';
import { describeOAuthError } from '../shared/oauth-error.js';

/** Network failures and added context read the same for every sink (shared/failures.ts). */
export { classifyNetworkError, withContext } from '../shared/failures.js';

export interface SalesforceErrorItem {
  message: string;
  errorCode: string;
  fields?: string[];
}

const TRANSIENT_CODES = new Set(['REQUEST_LIMIT_EXCEEDED', 'UNABLE_TO_LOCK_ROW', 'SERVER_UNAVAILABLE']);
/** Only in per-record results: the record was rolled back because another one failed (allOrNone). */
const ROLLED_BACK = 'ALL_OR_NONE_OPERATION_ROLLED_BACK';

/** Salesforce's error body: `[{ message, errorCode, fields }]`; anything else yields []. */
export function parseErrorArray(text: string): SalesforceErrorItem[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(body)) return [];
  return body.filter(
    (e): e is SalesforceErrorItem =>
      typeof e === 'object' && e !== null && typeof (e as SalesforceErrorItem).errorCode === 'string' && typeof (e as SalesforceErrorItem).message === 'string',
  );
}

/**
 * The `errors` of one sObject Collections result: `[{ statusCode, message, fields }]`
 * (per-record errors say statusCode where error bodies say errorCode); malformed
 * entries are dropped.
 */
export function parseRecordErrors(value: unknown): SalesforceErrorItem[] {
  if (!Array.isArray(value)) return [];
  const out: SalesforceErrorItem[] = [];
  for (const e of value) {
    if (typeof e !== 'object' || e === null) continue;
    const { statusCode, errorCode, message, fields } = e as Record<string, unknown>;
    const code = typeof statusCode === 'string' ? statusCode : typeof errorCode === 'string' ? errorCode : undefined;
    if (code === undefined) continue;
    const names = Array.isArray(fields) ? fields.filter((f): f is string => typeof f === 'string') : [];
    out.push({ errorCode: code, message: typeof message === 'string' ? message : '', fields: names });
  }
  return out;
}

/** Classifies the failure of one record in an sObject Collections answer. */
export function classifyRecordErrors(what: string, errors: SalesforceErrorItem[]): TransientError | PermanentError {
  if (errors.length === 0) {
    // success:false without a reason: nothing says a retry would fare better; keep it for replay.
    return new PermanentError(`${what}: Salesforce reported a failure without an error`, { code: 'UNKNOWN_RECORD_ERROR' });
  }
  const detail = describeErrors(errors);
  if (errors.some((e) => TRANSIENT_CODES.has(e.errorCode) || e.errorCode === ROLLED_BACK)) return new TransientError(`${what}: ${detail}`);
  return new PermanentError(`${what}: ${detail}`, { code: errors[0]!.errorCode });
}

function describeErrors(errors: SalesforceErrorItem[]): string {
  return errors
    .map((e) => `${e.errorCode}: ${e.message}${e.fields && e.fields.length > 0 ? ` [${e.fields.join(', ')}]` : ''}`)
    .join('; ');
}

const snippet = (text: string): string => (text.length > 200 ? `${text.slice(0, 200)}...` : text);

/** Classifies a non-success answer of the REST API to the attempt described by `what`. */
export function classifyApiResponse(what: string, status: number, headers: Headers, text: string): TransientError | PermanentError {
  const errors = parseErrorArray(text);
  const code = errors[0]?.errorCode;
  const detail = errors.length > 0 ? describeErrors(errors) : text ? snippet(text) : '(no body)';
  if ((code !== undefined && TRANSIENT_CODES.has(code)) || isRetryableStatus(status)) {
    return new TransientError(`${what}: HTTP ${status}: ${detail}`, { retryAfterMs: parseRetryAfter(headers.get('retry-after')) });
  }
  if (status === 300) {
    return new PermanentError(`${what}: DUPLICATE_EXTERNAL_ID: the external id matches several records, so Salesforce wrote none (${detail})`, {
      code: 'DUPLICATE_EXTERNAL_ID',
    });
  }
  return new PermanentError(errors.length > 0 ? `${what}: ${detail}` : `${what}: HTTP ${status}: ${detail}`, { code: code ?? `http_${status}` });
}

/** Classifies a non-success answer of the OAuth token endpoint: `{ error, error_description }`. */
export function classifyTokenResponse(status: number, headers: Headers, text: string): TransientError | PermanentError {
  const { error, detail } = describeOAuthError(status, text);
  const what = 'requesting a Salesforce access token';
  if (isRetryableStatus(status)) return new TransientError(`${what}: HTTP ${status}: ${detail}`, { retryAfterMs: parseRetryAfter(headers.get('retry-after')) });
  return new PermanentError(`${what}: ${detail}`, { code: error ?? `http_${status}` });
}

/** How long delivery waits before trying refused credentials again. */
export const AUTH_RETRY_MS = 60_000;

/** A refused credential met while delivering: retry later, the event itself is fine. */
export function authRefused(what: string, error: PermanentError): TransientError {
  return new TransientError(`${what}: Salesforce refused the sink's credentials (${error.message}); events wait until auth is fixed`, {
    cause: error,
    retryAfterMs: AUTH_RETRY_MS,
  });
}

/** `Sforce-Limit-Info: api-usage=18/5000[; per-app-api-usage=...]` -> { used, max }. */
export function parseLimitInfo(value: string | null): { used: number; max: number } | undefined {
  const match = value ? /(?:^|[;\s])api-usage=(\d+)\/(\d+)/.exec(value) : null;
  return match ? { used: Number(match[1]), max: Number(match[2]) } : undefined;
}
