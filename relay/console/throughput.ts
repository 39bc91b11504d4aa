/**
 * Events stored and delivered per minute over the last hour, for the console's chart.
 *
 * Fed from the relay's metrics: it samples their running totals (RelayMetrics.totals, plain
 * numbers bumped next to the Prometheus counters) every few seconds and on every read, and
 * adds the difference to the current minute's bucket. A ring of 60 minutes, in memory: a relay
 * restart starts an empty chart.
 */

export interface ThroughputTotals {
  stored: number;
  delivered: number;
  deadLettered: number;
}

export interface ThroughputMinute extends ThroughputTotals {
  /** Start of the minute, Unix ms. */
  minuteMs: number;
}

const MINUTES = 60;
const SAMPLE_EVERY_MS = 5_000;

export class Throughput {
  private readonly buckets = new Map<number, ThroughputMinute>();
  private last: ThroughputTotals;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly totals: () => ThroughputTotals,
    private readonly now: () => number = Date.now,
  ) {
    this.last = { ...totals() };
  }

  start(): void {
    this.timer ??= setInterval(() => this.sample(), SAMPLE_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  sample(): void {
    const t = this.totals();
    const minuteMs = Math.floor(this.now() / 60_000) * 60_000;
    let b = this.buckets.get(minuteMs);
    if (!b) this.buckets.set(minuteMs, (b = { minuteMs, stored: 0, delivered: 0, deadLettered: 0 }));
    b.stored += t.stored - this.last.stored;
    b.delivered += t.delivered - this.last.delivered;
    b.deadLettered += t.deadLettered - this.last.deadLettered;
    this.last = { ...t };
    for (const m of this.buckets.keys()) if (m <= minuteMs - MINUTES * 60_000) this.buckets.delete(m);
  }

  /** The last 60 minutes, oldest first, one entry per minute (0 where nothing happened). */
  lastHour(): ThroughputMinute[] {
    this.sample();
    const current = Math.floor(this.now() / 60_000) * 60_000;
    const out: ThroughputMinute[] = [];
    for (let i = MINUTES - 1; i >= 0; i--) {
      const minuteMs = current - i * 60_000;
      out.push({ ...(this.buckets.get(minuteMs) ?? { minuteMs, stored: 0, delivered: 0, deadLettered: 0 }) });
    }
    return out;
  }
}
