import { describe, expect, it } from 'vitest';
import { AdaptiveRateLimiter, RateLimitConfig } from '../../../relay/delivery/rate-limiter.js';

/** A virtual clock: sleeping advances time instantly, so pacing is checked exactly, without real timing. */
function clock() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms), at: () => t };
}

describe('adaptive rate limiter', () => {
  it('paces requests at the configured rate with the configured burst', async () => {
    const c = clock();
    const limiter = new AdaptiveRateLimiter(RateLimitConfig.parse({ requestsPerSecond: 10, burst: 1 }), c.now, c.sleep);
    const starts: number[] = [];
    for (let i = 0; i < 21; i++) {
      await limiter.acquire();
      starts.push(c.at());
    }
    expect(starts[20]).toBe(2000); // 21 requests at 10/s: the last one 2 s after the first
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBe(100);
  });

  it('on a 429 waits for Retry-After and settles below the rate that drew it', async () => {
    const c = clock();
    const limiter = new AdaptiveRateLimiter(RateLimitConfig.parse({ requestsPerSecond: 20, burst: 1, backoffFactor: 0.5 }), c.now, c.sleep);
    await limiter.acquire();
    limiter.throttled(3000);
    const before = c.at();
    await limiter.acquire();
    expect(c.at() - before).toBeGreaterThanOrEqual(3000);
    expect(limiter.status()).toMatchObject({ currentRps: 10, ceilingRps: 10, throttles: 1 });
  });

  it('without a configured rate passes everything until a 429, then paces at what it observed', async () => {
    const c = clock();
    const limiter = new AdaptiveRateLimiter(RateLimitConfig.parse({ backoffFactor: 0.8 }), c.now, c.sleep);
    for (let i = 0; i < 50; i++) await limiter.acquire();
    expect(c.at()).toBe(0);
    limiter.throttled(undefined);
    expect(limiter.status().currentRps).toBe(40); // 50 in the last second * 0.8
  });

  it('slows to half rate when the daily allocation is nearly spent', () => {
    const limiter = new AdaptiveRateLimiter(RateLimitConfig.parse({ requestsPerSecond: 10 }));
    limiter.quota(95_000, 100_000);
    expect(limiter.status().currentRps).toBe(5);
    limiter.quota(1_000, 100_000);
    expect(limiter.status().currentRps).toBe(10);
  });
});
