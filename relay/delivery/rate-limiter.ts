/**
 * Per-sink request pacing: a token bucket from config, adapted by what the API says.
 *
 * - `acquire()` resolves when a request may go out: at most `burst` at once, refilled at
 *   the current rate.
 * - `throttled(retryAfterMs)` (a 429, REQUEST_LIMIT_EXCEEDED, SSS_REQUEST_LIMIT_EXCEEDED):
 *   nothing goes out until Retry-After has passed, and the rate drops to `backoffFactor`
 *   of what it was. The rate that drew the 429 becomes a ceiling, so pacing settles just
 *   under the API's real limit instead of probing into it again and again (a 429 costs
 *   the integration user quota and, at HubSpot, counts against its error budget).
 * - `quota(used, max)`: a daily allocation nearly spent (Sforce-Limit-Info) slows pacing
 *   down before the API starts refusing.
 * Without a configured rate the limiter passes everything until the first 429 and then
 * paces at the rate it observed when throttled.
 */
import { z } from 'zod';

export const RateLimitConfig = z
  .object({
    requestsPerSecond: z.number().positive().optional().describe('Requests per second this sink may send (the API\'s limit for this integration). Unset: unlimited until the API answers 429.'),
    burst: z.number().int().min(1).default(1).describe('Requests that may go out back to back. Keep it small when the API counts in a rolling window.'),
    backoffFactor: z.number().gt(0).lt(1).default(0.8).describe('On a 429 the rate drops to this fraction of the current rate.'),
    quotaSlowdownAbove: z.number().gt(0).max(1).default(0.9).describe('Slow to half rate once this fraction of the daily API allocation is used.'),
  })
  .strict()
  .describe('Request pacing for a sink.');
export type RateLimitConfig = z.infer<typeof RateLimitConfig>;

/** What a sink calls around each API request. */
export interface RequestGate {
  acquire(): Promise<void>;
  throttled(retryAfterMs: number | undefined): void;
  quota?(used: number, max: number): void;
}

export interface RateLimiterStatus {
  configuredRps: number | undefined;
  currentRps: number | undefined;
  ceilingRps: number | undefined;
  pausedUntilMs: number | undefined;
  throttles: number;
  /** Daily API allocation from the last quota report (Sforce-Limit-Info), if any. */
  quota: { used: number; max: number } | undefined;
}

export class AdaptiveRateLimiter implements RequestGate {
  private tokens: number;
  private last: number;
  private rate: number | undefined;
  private ceiling: number | undefined;
  private pausedUntil = 0;
  private throttles = 0;
  private quotaFactor = 1;
  private lastQuota: { used: number; max: number } | undefined;
  /** Request start times over the last second, to learn a rate from the first 429. */
  private readonly recent: number[] = [];
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: RateLimitConfig,
    private readonly now: () => number = Date.now,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {
    this.rate = config.requestsPerSecond;
    this.tokens = config.burst;
    this.last = now();
  }

  /** Requests wait in line: order of acquire calls is the order of release. */
  acquire(): Promise<void> {
    const next = this.queue.then(() => this.take());
    this.queue = next.catch(() => undefined);
    return next;
  }

  private effectiveRate(): number | undefined {
    return this.rate === undefined ? undefined : this.rate * this.quotaFactor;
  }

  private async take(): Promise<void> {
    for (;;) {
      const now = this.now();
      if (this.pausedUntil > now) {
        await this.sleep(this.pausedUntil - now);
        continue;
      }
      const rate = this.effectiveRate();
      if (rate === undefined) break;
      this.tokens = Math.min(this.config.burst, this.tokens + ((now - this.last) / 1000) * rate);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        break;
      }
      await this.sleep(Math.ceil(((1 - this.tokens) / rate) * 1000));
    }
    const t = this.now();
    this.recent.push(t);
    while (this.recent.length > 0 && this.recent[0]! < t - 1000) this.recent.shift();
  }

  throttled(retryAfterMs: number | undefined): void {
    const now = this.now();
    this.throttles++;
    // Learn from the 429: the rate we were sending at is too much.
    const observed = this.rate ?? Math.max(1, this.recent.filter((t) => t >= now - 1000).length);
    this.ceiling = observed * this.config.backoffFactor;
    this.rate = this.ceiling;
    this.tokens = 0;
    this.last = now;
    this.pausedUntil = Math.max(this.pausedUntil, now + (retryAfterMs ?? Math.ceil(1000 / this.rate)));
  }

  quota(used: number, max: number): void {
    if (max <= 0) return;
    this.lastQuota = { used, max };
    this.quotaFactor = used / max >= this.config.quotaSlowdownAbove ? 0.5 : 1;
  }

  status(): RateLimiterStatus {
    return {
      configuredRps: this.config.requestsPerSecond,
      currentRps: this.effectiveRate(),
      ceilingRps: this.ceiling,
      pausedUntilMs: this.pausedUntil > this.now() ? this.pausedUntil : undefined,
      throttles: this.throttles,
      quota: this.lastQuota && { ...this.lastQuota },
    };
  }
}
