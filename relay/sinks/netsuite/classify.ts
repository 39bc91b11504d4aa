/**
 * The one place where NetSuite answers become failure kinds.
 *
 * Transient (retry, honouring Retry-After): network errors, timeouts, 408/425/429/5xx,
 * and concurrency governance whatever the status: `SSS_REQUEST_LIMIT_EXCEEDED`
 * (documented with 400 for RESTlets; REST web services answer 429 "Too Many
 * Requests") and the SOAP-era `WS_REQUEST_BLOCKED` / `WS_CONCUR_SESSION_DISALLWD`.
 * NetSuite documents no Retry-After for these, so they carry a default hint: the limit
 * is shared by every integration of the account and frees up within seconds.
 * Permanent (dead-letter, keep for replay): every other 4xx, with `code` = NetSuite's
 * `o:errorCode` (USER_ERROR, INVALID_CONTENT, INVALID_KEY_OR_REF, ...).
 * Refused credentials (token endpoint 4xx, or 401 with a fresh token) are permanent for
 * `start()`, but while delivering they say nothing about the event: the items are
 * `errored` with a long retry hint, so events wait for fixed credentials instead of
 * filling the dead letters.
 *
 * Messages name what was attempted (record type and external id) and NetSuite's own
 * words; they never carry request bodies, assertions, tokens or keys.
 */
import { isRetryableStatus, parseRetryAfter, PermanentError, TransientError } from '../../../protocols/errors.js';
import { describeOAuthError } from '../shared/oauth-error.js';

/** Network failures and added context read the same for every sink (shared/failures.ts). */
export { classifyNetworkError, withContext } from '../shared/failures.js';

export interface NetSuiteErrorDetail {
  detail: string;
  'o:errorCode': string;
  'o:errorPath'?: string;
  'o:urlPath'?: string;
  'o:errorHeader'?: string;
}

const CONCURRENCY_CODES = new Set(['SSS_REQUEST_LIMIT_EXCEEDED', 'WS_REQUEST_BLOCKED', 'WS_CONCUR_SESSION_DISALLWD']);

/** Retry hint for a concurrency refusal without Retry-After. */
export const CONCURRENCY_RETRY_MS = 2_000;

/** How long delivery waits before trying refused credentials again. */
export const AUTH_RETRY_MS = 60_000;

/** NetSuite's error body `{ type, title, status, o:errorDetails: [...] }` -> its details; anything else yields []. */
export function parseErrorDetails(text: string): NetSuiteErrorDetail[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return [];
  }
  const details = typeof body === 'object' && body !== null ? (body as { 'o:errorDetails'?: unknown })['o:errorDetails'] : undefined;
  if (!Array.isArray(details)) return [];
  return details.filter(
    (d): d is NetSuiteErrorDetail =>
      typeof d === 'object' && d !== null && typeof (d as NetSuiteErrorDetail)['o:errorCode'] === 'string' && typeof (d as NetSuiteErrorDetail).detail === 'string',
  );
}

function describeDetails(details: NetSuiteErrorDetail[]): string {
  return details
    .map((d) => {
      const where = d['o:errorPath'] ?? d['o:urlPath'] ?? d['o:errorHeader'];
      return `${d['o:errorCode']}: ${d.detail}${where ? ` [${where}]` : ''}`;
    })
    .join('; ');
}

const snippet = (text: string): string => (text.length > 200 ? `${text.slice(0, 200)}...` : text);

/** Classifies a non-success answer of the REST API to the attempt described by `what`. */
export function classifyApiResponse(what: string, status: number, headers: Headers, text: string): TransientError | PermanentError {
  const details = parseErrorDetails(text);
  const code = details[0]?.['o:errorCode'];
  const detail = details.length > 0 ? describeDetails(details) : text ? snippet(text) : '(no body)';
  const retryAfterMs = parseRetryAfter(headers.get('retry-after'));
  if (status === 429 || details.some((d) => CONCURRENCY_CODES.has(d['o:errorCode']))) {
    return new TransientError(`${what}: HTTP ${status}: ${detail} (the account's concurrency limit is in use)`, { retryAfterMs: retryAfterMs ?? CONCURRENCY_RETRY_MS });
  }
  if (isRetryableStatus(status)) {
    return new TransientError(`${what}: HTTP ${status}: ${detail}`, retryAfterMs === undefined ? {} : { retryAfterMs });
  }
  return new PermanentError(details.length > 0 ? `${what}: ${detail}` : `${what}: HTTP ${status}: ${detail}`, { code: code ?? `http_${status}` });
}

/**
 * Classifies a non-success answer of the token endpoint: `{ error, error_description? }`.
 * NetSuite writes the reason (InvalidSignature, ...) only to the Login Audit Trail.
 */
export function classifyTokenResponse(status: number, headers: Headers, text: string): TransientError | PermanentError {
  const { error, detail } = describeOAuthError(status, text);
  const what = 'requesting a NetSuite access token';
  if (isRetryableStatus(status)) {
    const retryAfterMs = parseRetryAfter(headers.get('retry-after'));
    return new TransientError(`${what}: HTTP ${status}: ${detail}`, retryAfterMs === undefined ? {} : { retryAfterMs });
  }
  return new PermanentError(
    `${what}: ${detail} (see Setup > Users/Roles > User Management > View Login Audit Trail in NetSuite for the reason)`,
    { code: error ?? `http_${status}` },
  );
}

/** A refused credential met while delivering: retry later, the event itself is fine. */
export function authRefused(what: string, error: PermanentError): TransientError {
  return new TransientError(`${what}: NetSuite refused the sink's credentials (${error.message}); events wait until auth is fixed`, {
    cause: error,
    retryAfterMs: AUTH_RETRY_MS,
  });
}
