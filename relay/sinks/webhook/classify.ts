/**
 * The one place where a receiver's answers become failure kinds.
 *
 * Transient (retry, honouring Retry-After): network errors, timeouts, 408/425/429/5xx, and
 * 401/403 (refused signature or credentials: a configuration matter, not the event's).
 * Permanent (dead-letter, keep for replay): 3xx (the CloudEvents webhook spec forbids
 * redirects and forbids following them) and every other 4xx, `code` = `http_<status>`.
 *
 * Messages name what was attempted, the status and a short excerpt of the answer;
 * never the full URL (it may carry an access token), request bodies or headers.
 */
import { isRetryableStatus, parseRetryAfter, PermanentError, TransientError } from '../../../protocols/errors.js';

/** Network failures and added context read the same for every sink (shared/failures.ts). */
export { classifyNetworkError } from '../shared/failures.js';

const EXCERPT_CHARS = 200;
/** Retry delay when the receiver refuses our signature or credentials. */
const CREDENTIALS_RETRY_MS = 60_000;

/** 4xx answers that may be about one event of a batch, so splitting the batch can isolate it. */
const SPLITTABLE_CODES = new Set(['http_400', 'http_413', 'http_422']);

export function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (!flat) return '(no body)';
  return flat.length > EXCERPT_CHARS ? `${flat.slice(0, EXCERPT_CHARS)}...` : flat;
}

/** Classifies a non-2xx answer to the attempt described by `what`. */
export function classifyResponse(what: string, status: number, headers: Headers, text: string): TransientError | PermanentError {
  if (isRetryableStatus(status)) {
    return new TransientError(`${what}: HTTP ${status}: ${excerpt(text)}`, { retryAfterMs: parseRetryAfter(headers.get('retry-after')) });
  }
  if (status >= 300 && status < 400) {
    return new PermanentError(`${what}: HTTP ${status}: webhooks must not redirect; set url to the final address`, { code: `http_${status}` });
  }
  if (status === 401 || status === 403) {
    // No event is at fault: a secret being rotated on one side. Dead-lettering every event
    // until someone notices would mean replaying them all; retry slowly instead, as the
    // other sinks do for refused credentials, and let the sink's status say why.
    return new TransientError(`${what}: HTTP ${status} (the receiver refused the signature or credentials: check secret and headers): ${excerpt(text)}`, {
      retryAfterMs: CREDENTIALS_RETRY_MS,
    });
  }
  return new PermanentError(`${what}: HTTP ${status}: ${excerpt(text)}`, { code: `http_${status}` });
}

/** True when a batch rejected with this error is worth splitting to find the event at fault. */
export function isSplittable(error: PermanentError): boolean {
  return SPLITTABLE_CODES.has(error.code);
}
