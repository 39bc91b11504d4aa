/**
 * Agent-to-sink latency per minute over the last hour, for the console's chart: from the
 * moment the agent read the fact at its source (the event's `readtime`) to the sink
 * confirming the write.
 *
 * Per minute it keeps a histogram of fixed log-spaced buckets (about 9% wide, 1 ms to
 * ~1 day), not the samples: memory is constant whatever the rate, and a quantile is read
 * back to within a bucket's width. In memory only: a relay restart starts an empty chart.
 */

const MINUTES = 60;
/** Bucket i holds latencies below BASE^(i+1) ms. */
const BASE = 1.09;
const BUCKETS = Math.ceil(Math.log(86_400_000) / Math.log(BASE)) + 1;

export interface LatencyMinute {
  /** Start of the minute, Unix ms. */
  minuteMs: number;
  count: number;
  /** Milliseconds; null when nothing was delivered in the minute. */
  p50: number | null;
  p95: number | null;
  max: number | null;
}

interface Bucketed {
  counts: Uint32Array;
  count: number;
  max: number;
}

function bucketOf(ms: number): number {
  if (ms < 1) return 0;
  return Math.min(BUCKETS - 1, Math.floor(Math.log(ms) / Math.log(BASE)));
}

function quantile(b: Bucketed, q: number): number {
  const rank = Math.ceil(q * b.count);
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += b.counts[i]!;
    // The bucket's upper bound, but never above the largest latency actually seen.
    if (seen >= rank) return Math.min(b.max, Math.round(BASE ** (i + 1)));
  }
  return b.max;
}

export class LatencyWindow {
  private readonly minutes = new Map<number, Bucketed>();

  constructor(private readonly now: () => number = Date.now) {}

  record(latencyMs: number): void {
    const ms = Math.max(0, latencyMs);
    const minuteMs = Math.floor(this.now() / 60_000) * 60_000;
    let b = this.minutes.get(minuteMs);
    if (!b) {
      this.minutes.set(minuteMs, (b = { counts: new Uint32Array(BUCKETS), count: 0, max: 0 }));
      for (const m of this.minutes.keys()) if (m <= minuteMs - MINUTES * 60_000) this.minutes.delete(m);
    }
    b.counts[bucketOf(ms)]!++;
    b.count++;
    if (ms > b.max) b.max = ms;
  }

  /** The last 60 minutes, oldest first, one entry per minute. */
  lastHour(): LatencyMinute[] {
    const current = Math.floor(this.now() / 60_000) * 60_000;
    const out: LatencyMinute[] = [];
    for (let i = MINUTES - 1; i >= 0; i--) {
      const minuteMs = current - i * 60_000;
      const b = this.minutes.get(minuteMs);
      out.push(
        b && b.count > 0
          ? { minuteMs, count: b.count, p50: quantile(b, 0.5), p95: quantile(b, 0.95), max: Math.round(b.max) }
          : { minuteMs, count: 0, p50: null, p95: null, max: null },
      );
    }
    return out;
  }
}

/**
 * When the agent read the event at its source (`readtime`), or undefined for an agent that does
 * not stamp it: its event time would measure the plant's history (an outage, a late file), not
 * the agent-to-CRM path, so such events stay out of the chart.
 */
export function readTimeMs(event: Readonly<Record<string, unknown>>): number | undefined {
  if (typeof event.readtime !== 'string') return undefined;
  const t = Date.parse(event.readtime);
  return Number.isFinite(t) ? t : undefined;
}
