/**
 * One worker per sink: claims due deliveries from the store, hands them to the sink, and
 * records each outcome in one transaction. With a shared store (PostgreSQL) every replica
 * runs one per lane; the store's leases keep them off each other's deliveries, and an outcome
 * for a delivery whose lease ran out (another replica took it over) is discarded.
 *
 * - delivered: done; the subject's version advances (unless the item was stale).
 * - rejected (permanent): dead letter with its reason; the subject moves on, so one bad
 *   record never blocks the work order's later milestones. Replayable.
 * - errored (transient): retried with jittered exponential backoff, honouring Retry-After;
 *   the subject waits (order per subject). When a whole batch fails, the sink itself is
 *   paused (an outage or a throttle is sink-wide) and probed with one batch per backoff
 *   step, instead of every subject hammering a down CRM.
 */
import { backoffMs, describeError, TransientError } from '../../protocols/errors.js';
import { readTimeMs } from '../metrics/latency-window.js';
import type { CloudEventV1 } from '../../protocols/events/envelope.js';
import type { Logger } from '../../protocols/log.js';
import { Inbox } from '../inbox/inbox.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import type { ClaimedDelivery, RelayStore } from '../store/store.js';
import type { Outcome, Sink } from '../sinks/sink.js';
import type { DeliveryConfig } from './config.js';

/**
 * What the worker reports per recorded outcome (relay/metrics implements it with pre-bound
 * counters). Called after the outcomes are committed; must be cheap and must not throw.
 */
export interface DeliveryMetrics {
  /** `eventTimeMs`: the event's own time, for plant-to-sink latency; `readTimeMs`: when the agent read it (if it says), for agent-to-sink latency. */
  delivered(eventTimeMs: number, readTimeMs: number | undefined): void;
  /** `errorClass`: `throttled` (the API said when to come back) or `transient`. */
  retried(errorClass: string): void;
  /** `errorClass`: the permanent error's code, e.g. FIELD_CUSTOM_VALIDATION_EXCEPTION. */
  deadLettered(errorClass: string): void;
}

/** Deliveries sent to probe a sink that failed as a whole. */
const PROBE_BATCH = 5;

export interface SinkWorkerStatus {
  sink: string;
  state: 'running' | 'paused' | 'stopped';
  /** Circuit breaker: closed (flowing), open (sink failing: waiting), half-open (probing with a small batch). */
  circuit: 'closed' | 'open' | 'half-open';
  pausedUntilMs?: number;
  consecutiveFailures: number;
  delivered: number;
  deadLettered: number;
  retried: number;
  lastError?: string;
}

export class SinkWorker {
  private stopped = true;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private pausedUntil = 0;
  private failures = 0;
  private readonly counters = { delivered: 0, deadLettered: 0, retried: 0 };
  private lastError: string | undefined;

  constructor(
    private readonly sink: Sink,
    store: RelayStore | Inbox,
    private readonly config: DeliveryConfig,
    private readonly logger: Logger,
    private readonly onDelivered?: (event: CloudEventV1, recordIds: string[]) => void,
    private readonly metrics?: DeliveryMetrics,
  ) {
    // A bare Inbox (benches, older callers) is the embedded store.
    this.store = store instanceof Inbox ? new SqliteStore(store) : store;
  }

  private readonly store: RelayStore;

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  wake(): void {
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.loop;
  }

  status(): SinkWorkerStatus {
    const paused = this.pausedUntil > Date.now();
    return {
      sink: this.sink.name,
      state: this.stopped ? 'stopped' : paused ? 'paused' : 'running',
      circuit: paused ? 'open' : this.failures > 0 ? 'half-open' : 'closed',
      ...(paused ? { pausedUntilMs: this.pausedUntil } : {}),
      consecutiveFailures: this.failures,
      ...this.counters,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = done;
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const now = Date.now();
        if (this.pausedUntil > now) {
          await this.sleep(this.pausedUntil - now);
          continue;
        }
        // Half-open: after a sink-wide failure, probe with a few events, not a full batch.
        const due = await this.store.claim(this.sink.name, this.failures > 0 ? Math.min(PROBE_BATCH, this.config.batchSize) : this.config.batchSize);
        if (due.length === 0) {
          const next = await this.store.nextDueMs(this.sink.name);
          // Floor: never spin, whatever the clock or the ledger says.
          const wait = next === undefined ? this.config.pollMs : Math.max(10, Math.min(this.config.pollMs, next - Date.now()));
          await this.sleep(wait);
          continue;
        }
        await this.deliverBatch(due);
      } catch (e) {
        // A bug or a storage failure: log, back off, keep going. Never a crash loop.
        this.logger.error({ err: describeError(e) }, 'delivery loop failed; retrying');
        await this.sleep(this.config.backoff.initialMs);
      }
    }
  }

  /** Keeps a shared store's leases on `due` while the sink works on them (see RelayStore.renewLeases). */
  private renewLeasesWhile(due: readonly ClaimedDelivery[]): NodeJS.Timeout | undefined {
    const { store } = this;
    if (!store.renewLeases || !store.leaseRenewalMs) return undefined;
    const seqs = due.map((d) => d.inboxSeq);
    return setInterval(() => {
      store.renewLeases!(this.sink.name, seqs).catch((e: unknown) => {
        // The lease may run out: another replica then redelivers; our outcomes are discarded.
        this.logger.warn({ sink: this.sink.name, err: describeError(e) }, 'could not renew delivery leases');
      });
    }, store.leaseRenewalMs);
  }

  private async deliverBatch(due: ClaimedDelivery[]): Promise<void> {
    const items = due.map((d) => ({ event: JSON.parse(d.body) as CloudEventV1, stale: d.stale }));
    let outcomes: Outcome[];
    const renewal = this.renewLeasesWhile(due);
    try {
      outcomes = await this.sink.deliver(items);
      if (outcomes.length !== items.length) throw new Error(`sink returned ${outcomes.length} outcomes for ${items.length} items`);
    } catch (e) {
      const error = e instanceof TransientError ? e : new TransientError(`delivering to ${this.sink.name}: ${describeError(e)}`, { cause: e });
      outcomes = items.map(() => ({ status: 'errored', error }));
    } finally {
      clearInterval(renewal);
    }

    const now = Date.now();
    const allErrored = outcomes.every((o) => o.status === 'errored');
    if (allErrored) {
      const retryAfter = Math.max(0, ...outcomes.map((o) => (o.status === 'errored' ? (o.error.retryAfterMs ?? 0) : 0)));
      this.pausedUntil = now + Math.max(retryAfter, backoffMs(this.failures, this.config.backoff.initialMs, this.config.backoff.maxMs));
      this.failures++;
    } else {
      this.failures = 0;
    }

    const records = outcomes.map((o, i) => {
      const d = due[i]!;
      const item = items[i]!;
      if (o.status === 'delivered') {
        return { kind: 'delivered' as const, d, subject: d.subject, recordIds: o.recordIds, stale: item.stale };
      }
      if (o.status === 'rejected') {
        return { kind: 'dead' as const, d, error: o.error.message, code: o.error.code };
      }
      const perItem = now + Math.max(o.error.retryAfterMs ?? 0, backoffMs(d.attempts, this.config.backoff.initialMs, this.config.backoff.maxMs));
      const errorClass = o.error.retryAfterMs === undefined ? 'transient' : 'throttled';
      return { kind: 'retry' as const, d, error: o.error.message, code: 'transient', errorClass, nextAttemptMs: allErrored ? this.pausedUntil : perItem };
    });
    const { discarded } = await this.store.record(this.sink.name, records);
    if (discarded > 0) {
      // Our lease ran out mid-batch and another replica took those deliveries: it redelivers
      // them (the sinks' upserts make that harmless). Counters below may include them.
      this.logger.warn({ sink: this.sink.name, discarded }, 'outcomes discarded: their lease had passed to another replica');
    }

    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const event = items[i]!.event;
      // `correlationid`, as in the CloudEvent and in the sinks' own logs, so one search finds them all.
      const ctx = { sink: this.sink.name, id: event.id, correlationid: event.correlationid, subject: event.subject };
      if (r.kind === 'delivered') {
        this.counters.delivered++;
        this.metrics?.delivered(r.d.timeMs, readTimeMs(event));
        this.logger.debug({ ...ctx, recordIds: r.recordIds, stale: r.stale }, 'event delivered');
        this.onDelivered?.(event, r.recordIds);
      } else if (r.kind === 'dead') {
        this.counters.deadLettered++;
        this.metrics?.deadLettered(r.code);
        this.lastError = r.error;
        this.logger.error({ ...ctx, code: r.code, reason: r.error }, 'event dead-lettered (permanent failure)');
      } else {
        this.counters.retried++;
        this.metrics?.retried(r.errorClass);
        this.lastError = r.error;
        if (!allErrored) this.logger.warn({ ...ctx, attempt: r.d.attempts + 1, reason: r.error }, 'delivery failed; will retry');
        else this.logger.debug({ ...ctx, attempt: r.d.attempts + 1 }, 'delivery waits for the sink to recover');
      }
    }
    if (allErrored) {
      this.logger.warn(
        { sink: this.sink.name, failures: this.failures, resumeInMs: this.pausedUntil - now, reason: this.lastError },
        'sink unavailable; pausing deliveries',
      );
    }
  }
}

