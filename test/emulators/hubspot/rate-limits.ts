/**
 * HubSpot's two request limits as the emulator applies them: a rolling window per app
 * (private app token), policy `TEN_SECONDLY_ROLLING`, and a daily count per portal,
 * policy `DAILY`. A request refused with 429 is not counted, so a client that waits
 * out the window gets in again.
 */

export interface RollingWindow {
  /** Requests admitted per window. */
  max: number;
  intervalMs: number;
}

export type Policy = 'TEN_SECONDLY_ROLLING' | 'DAILY';

export type Admission = { admitted: true } | { admitted: false; policy: Policy; retryAfterMs: number };

export class RateLimits {
  private readonly windows = new Map<string, number[]>(); // token -> admission times (ms), oldest first
  private dailyUsed = 0;

  constructor(
    private readonly window: RollingWindow,
    private readonly dailyMax: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts the request against both limits, or says which one refuses it and for how long. */
  admit(token: string): Admission {
    const now = this.now();
    if (this.dailyUsed >= this.dailyMax) return { admitted: false, policy: 'DAILY', retryAfterMs: msToUtcMidnight(now) };
    const times = this.recent(token, now);
    if (times.length >= this.window.max) {
      return { admitted: false, policy: 'TEN_SECONDLY_ROLLING', retryAfterMs: Math.max(1, times[0]! + this.window.intervalMs - now) };
    }
    times.push(now);
    this.dailyUsed++;
    return { admitted: true };
  }

  /** The `X-HubSpot-RateLimit-*` headers for a request made with `token`. */
  headers(token: string): Record<string, string> {
    const used = this.recent(token, this.now()).length;
    return {
      'X-HubSpot-RateLimit-Max': String(this.window.max),
      'X-HubSpot-RateLimit-Remaining': String(Math.max(0, this.window.max - used)),
      'X-HubSpot-RateLimit-Interval-Milliseconds': String(this.window.intervalMs),
      'X-HubSpot-RateLimit-Daily': String(this.dailyMax),
      'X-HubSpot-RateLimit-Daily-Remaining': String(Math.max(0, this.dailyMax - this.dailyUsed)),
    };
  }

  /** Forgets every admission, as a new day and an idle app would. */
  reset(): void {
    this.windows.clear();
    this.dailyUsed = 0;
  }

  private recent(token: string, now: number): number[] {
    let times = this.windows.get(token);
    if (!times) this.windows.set(token, (times = []));
    while (times.length > 0 && times[0]! <= now - this.window.intervalMs) times.shift();
    return times;
  }
}

/** HubSpot resets the daily count at midnight in the portal's time zone; the emulated portal is on UTC. */
function msToUtcMidnight(now: number): number {
  const next = new Date(now);
  next.setUTCHours(24, 0, 0, 0);
  return next.getTime() - now;
}
