/**
 * The HTTP client every sink uses for its API calls: `fetch`, paced by the sink's
 * RequestGate (relay/delivery/rate-limiter.ts). Each call waits for a token first; a 429
 * teaches the gate (Retry-After, lower rate); a Salesforce `Sforce-Limit-Info` header
 * reports daily quota use. Token endpoints are not paced (they are not API calls).
 */
import { parseRetryAfter } from '../../protocols/errors.js';
import type { RequestGate } from '../delivery/rate-limiter.js';

export type Fetch = typeof fetch;

export interface SinkRuntime {
  /** Paces the sink's API calls; absent = unpaced. */
  gate?: RequestGate;
}

const LIMIT_INFO = /api-usage=(\d+)\/(\d+)/;

export function pacedFetch(gate: RequestGate | undefined, base: Fetch = fetch): Fetch {
  if (!gate) return base;
  return async (input, init) => {
    await gate.acquire();
    const res = await base(input, init);
    if (res.status === 429) gate.throttled(parseRetryAfter(res.headers.get('retry-after')));
    const info = LIMIT_INFO.exec(res.headers.get('sforce-limit-info') ?? '');
    if (info && gate.quota) gate.quota(Number(info[1]), Number(info[2]));
    return res;
  };
}
