/**
 * The request settings every sink call shares: never follow a redirect (a token or
 * secret must not travel to another host), and end the request after `timeoutMs` or
 * when the sink stops, whichever comes first. Errors are thrown unclassified: each
 * sink's classify.ts turns them into failure kinds.
 */
import type { Fetch } from '../http.js';

export interface RequestLimits {
  timeoutMs: number;
  /** The sink's stop signal (SinkLifecycle.stopSignal). */
  stopSignal: AbortSignal;
}

/** An answer read whole. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** `fetch` with `redirect: 'manual'` and the timeout-or-stop signal. */
export function timedFetch(fetchFn: Fetch, url: string, init: Omit<RequestInit, 'redirect' | 'signal'>, limits: RequestLimits): Promise<Response> {
  return fetchFn(url, {
    ...init,
    redirect: 'manual',
    signal: AbortSignal.any([AbortSignal.timeout(limits.timeoutMs), limits.stopSignal]),
  });
}

/** `timedFetch` and the whole body as text; the timeout covers reading the body too. */
export async function fetchAnswer(fetchFn: Fetch, url: string, init: Omit<RequestInit, 'redirect' | 'signal'>, limits: RequestLimits): Promise<Answer> {
  const res = await timedFetch(fetchFn, url, init, limits);
  return { status: res.status, headers: res.headers, text: await res.text() };
}
