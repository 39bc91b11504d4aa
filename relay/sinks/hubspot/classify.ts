/**
 * The one place where HubSpot answers become failure kinds.
 *
 * A whole call:
 * - Transient (retry, honouring the hint): network errors, timeouts, 3xx (never
 *   followed: the token must not travel elsewhere), 408, 423 (record locked, at least
 *   2 s), 425, 429, 477 (portal migration), 5xx. A 429's hint is Retry-After when sent,
 *   else by `policyName`: TEN_SECONDLY_ROLLING waits one rolling window
 *   (`X-HubSpot-RateLimit-Interval-Milliseconds`, 10 s), DAILY an hour.
 * - 401: the private app's token was refused. No event is at fault, so the items are
 *   errored with a long hint, and wait for a fixed token instead of filling the dead letters.
 * - Other 4xx: permanent, `code` = HubSpot's category (e.g. VALIDATION_ERROR,
 *   MISSING_SCOPES) or `http_<status>`. A 400 that lists invalid property values
 *   ("Property values were not valid: [...]") is about some inputs, not the call:
 *   `splittable`, so the sink can find which.
 * One input of a 200/207 answer: permanent with HubSpot's category, unless the category
 * says "not now" (rate limits, locks, internal errors).
 *
 * Messages name what was attempted and HubSpot's own words; they never carry request
 * bodies or the token.
 */
import { parseRetryAfter, PermanentError, TransientError } from '../../../protocols/errors.js';
import { describeNetworkFailure, notAttempted as notAttemptedAfter } from '../shared/failures.js';

/** HubSpot's error body; every field optional, as HubSpot's docs advise. */
export interface HubSpotError {
  status?: string;
  category?: string;
  message?: string;
  correlationId?: string;
  policyName?: string;
  context?: Record<string, unknown>;
  errors?: { message?: string; code?: string; in?: string; context?: Record<string, unknown> }[];
}

export type Verdict =
  | { kind: 'transient'; detail: string; retryAfterMs?: number; cause?: unknown; /** The token was refused (401). */ auth?: true }
  | { kind: 'permanent'; detail: string; code: string; splittable: boolean };

/** Rate-limit state from the last `X-HubSpot-RateLimit-*` headers seen. */
export interface HubSpotQuota {
  /** Requests allowed per rolling window, and left in the current one. */
  max?: number;
  remaining?: number;
  intervalMs?: number;
  /** Requests allowed per day for the portal, and left today (private apps only). */
  daily?: number;
  dailyRemaining?: number;
}

/** How long delivery waits before trying a refused token again. */
export const AUTH_RETRY_MS = 60_000;
/** HubSpot resets the daily limit at midnight in the portal's time zone, which the sink does not know: try again hourly. */
export const DAILY_RETRY_MS = 60 * 60_000;
/** HubSpot answers 423 while a record is locked; its docs ask for at least two seconds. */
const LOCKED_RETRY_MS = 2_000;
const DEFAULT_WINDOW_MS = 10_000;

const TRANSIENT_STATUS = new Set([408, 423, 425, 429, 477]);
const TRANSIENT_CATEGORIES = new Set(['RATE_LIMITS', 'RATE_LIMIT', 'LOCKED', 'INTERNAL_ERROR']);
const PER_INPUT_VALIDATION = /^Property values were not valid\b/;

export function parseErrorBody(text: string): HubSpotError | undefined {
  try {
    const body = JSON.parse(text) as unknown;
    return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as HubSpotError) : undefined;
  } catch {
    return undefined;
  }
}

const snippet = (text: string): string => (text.length > 300 ? `${text.slice(0, 300)}...` : text);

/** One line per invalid property, from `errors[]` or else from the JSON list inside the message. */
function propertyProblems(error: HubSpotError): string[] {
  const fromDetails = (error.errors ?? [])
    .filter((d) => typeof d?.message === 'string')
    .map((d) => {
      const names = d.context?.propertyName;
      const name = Array.isArray(names) && typeof names[0] === 'string' ? names[0] : d.in;
      return `${d.code ?? 'ERROR'}${name ? ` (${name})` : ''}: ${d.message}`;
    });
  if (fromDetails.length > 0) return fromDetails;
  const listed = /^[^[]*?: (\[.*\])$/s.exec(error.message ?? '')?.[1];
  if (!listed) return [];
  try {
    const results = JSON.parse(listed) as { message?: unknown; error?: unknown; name?: unknown }[];
    return Array.isArray(results)
      ? results.filter((r) => typeof r?.message === 'string').map((r) => `${String(r.error ?? 'ERROR')}${typeof r.name === 'string' ? ` (${r.name})` : ''}: ${String(r.message)}`)
      : [];
  } catch {
    return [];
  }
}

/** `CATEGORY: headline: problem; problem` in HubSpot's words, without the JSON noise. */
export function describeHubSpotError(error: HubSpotError | undefined, fallback: string): string {
  if (!error || typeof error.message !== 'string') return fallback;
  const problems = propertyProblems(error);
  const headline = problems.length > 0 ? error.message.replace(/: \[.*$/s, '') : snippet(error.message);
  const text = problems.length > 0 ? `${headline}: ${problems.join('; ')}` : headline;
  return error.category ? `${error.category}: ${text}` : text;
}

function rateLimitDelayMs(headers: Headers, body: HubSpotError | undefined): number {
  const retryAfter = parseRetryAfter(headers.get('retry-after'));
  if (retryAfter !== undefined) return retryAfter;
  if (body?.policyName === 'DAILY') return DAILY_RETRY_MS;
  if (body?.policyName === 'SECONDLY') return 1_000;
  const interval = Number(headers.get('x-hubspot-ratelimit-interval-milliseconds'));
  return Number.isFinite(interval) && interval > 0 ? interval : DEFAULT_WINDOW_MS;
}

/** Classifies a whole call's answer that is neither 200 nor 207. */
export function classifyCallAnswer(status: number, headers: Headers, text: string): Verdict {
  const body = parseErrorBody(text);
  const detail = describeHubSpotError(body, text ? `HTTP ${status}: ${snippet(text)}` : `HTTP ${status}`);
  if (status === 401) {
    return {
      kind: 'transient',
      detail: `HubSpot refused the private app token (${detail}); events wait until the token is fixed`,
      retryAfterMs: AUTH_RETRY_MS,
      auth: true,
    };
  }
  if (status === 429) {
    const policy = body?.policyName ? ` (policy ${body.policyName})` : '';
    return { kind: 'transient', detail: `HTTP 429${policy}: ${detail}`, retryAfterMs: rateLimitDelayMs(headers, body) };
  }
  if (status < 400 || status >= 500 || TRANSIENT_STATUS.has(status)) {
    const hint = parseRetryAfter(headers.get('retry-after'));
    const retryAfterMs = status === 423 ? Math.max(hint ?? 0, LOCKED_RETRY_MS) : hint;
    return { kind: 'transient', detail: `HTTP ${status}: ${detail}`, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
  }
  const splittable = status === 400 && body?.category === 'VALIDATION_ERROR' && PER_INPUT_VALIDATION.test(body.message ?? '');
  return { kind: 'permanent', detail, code: body?.category ?? `http_${status}`, splittable };
}

/** Classifies one input's entry in a 207's `errors`. */
export function classifyInputError(error: HubSpotError): Verdict {
  const detail = describeHubSpotError(error, 'HubSpot listed this input among the errors without a message');
  if (error.category && TRANSIENT_CATEGORIES.has(error.category)) return { kind: 'transient', detail };
  return { kind: 'permanent', detail, code: error.category ?? 'hubspot_error', splittable: false };
}

/** Classifies a failure to get any HTTP answer (refused, reset, DNS, timeout, abort). */
export function classifyNetworkError(error: unknown, timeoutMs: number): Verdict {
  return { kind: 'transient', detail: describeNetworkFailure(error, timeoutMs), cause: error };
}

/** The error for the attempt `what` (e.g. "upserting deals/WO-1") that got `verdict`. */
export function toError(what: string, verdict: Verdict): TransientError | PermanentError {
  if (verdict.kind === 'permanent') return new PermanentError(`${what}: ${verdict.detail}`, { code: verdict.code });
  return new TransientError(`${what}: ${verdict.detail}`, {
    ...(verdict.cause === undefined ? {} : { cause: verdict.cause }),
    ...(verdict.retryAfterMs === undefined ? {} : { retryAfterMs: verdict.retryAfterMs }),
  });
}

/** An item not attempted because an earlier call of its batch failed transiently: same hint. */
export function notAttempted(cause: TransientError): TransientError {
  return notAttemptedAfter('HubSpot call', cause);
}

const count = (value: string | null): number | undefined => {
  if (value === null || value.trim() === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
};

/** `X-HubSpot-RateLimit-*` headers -> quota; undefined when none is present (HubSpot leaves them out when it cannot compute them). */
export function parseRateHeaders(headers: Headers): HubSpotQuota | undefined {
  const quota: HubSpotQuota = {};
  const fields: [keyof HubSpotQuota, string][] = [
    ['max', 'x-hubspot-ratelimit-max'],
    ['remaining', 'x-hubspot-ratelimit-remaining'],
    ['intervalMs', 'x-hubspot-ratelimit-interval-milliseconds'],
    ['daily', 'x-hubspot-ratelimit-daily'],
    ['dailyRemaining', 'x-hubspot-ratelimit-daily-remaining'],
  ];
  for (const [key, header] of fields) {
    const value = count(headers.get(header));
    if (value !== undefined) quota[key] = value;
  }
  return Object.keys(quota).length > 0 ? quota : undefined;
}
