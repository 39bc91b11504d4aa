/**
 * The lifecycle every sink shares: INITIALIZED -> RUNNING -> STOPPING -> STOPPED.
 *
 * Invariants:
 * - `begin` moves INITIALIZED -> RUNNING once; later calls (and calls after a stop)
 *   return false, so `start()` is idempotent.
 * - Once stopping, `run` answers every item `errored` ("<label> is stopped") without
 *   starting the batch; a batch started before is tracked until it settles.
 * - `stop` aborts `stopSignal` (requests in flight end and their items are `errored`),
 *   waits for every tracked batch, and ends in STOPPED; it is idempotent.
 */
import { describeError, PermanentError, TransientError } from '../../../protocols/errors.js';
import type { Logger } from '../../../protocols/log.js';
import type { DeliveryItem, Outcome } from '../sink.js';

export type SinkState = 'INITIALIZED' | 'RUNNING' | 'STOPPING' | 'STOPPED';

export class SinkLifecycle {
  private current: SinkState = 'INITIALIZED';
  private readonly stopController = new AbortController();
  private readonly batches = new Set<Promise<Outcome[]>>();

  /** `label` names the sink in messages, e.g. `NetSuite sink "erp"`. */
  constructor(private readonly label: string) {}

  get state(): SinkState {
    return this.current;
  }

  /** Aborted when the sink stops: pass it to every request the sink makes. */
  get stopSignal(): AbortSignal {
    return this.stopController.signal;
  }

  /** True only for the call that moves the sink from INITIALIZED to RUNNING. */
  begin(): boolean {
    if (this.current !== 'INITIALIZED') return false;
    this.current = 'RUNNING';
    return true;
  }

  /**
   * The first contact of `start()` (a token request, say). A PermanentError (refused
   * credentials) stops the sink and is rethrown as `starting <label>: ...`, since every
   * delivery would fail the same way; any other failure is logged as `<system> is not
   * reachable yet` and deliveries retry later. True when `probe` succeeded.
   */
  async firstContact(probe: () => Promise<unknown>, system: string, logger: Logger): Promise<boolean> {
    try {
      await probe();
      return true;
    } catch (error) {
      if (error instanceof PermanentError) {
        this.current = 'STOPPED';
        throw new PermanentError(`starting ${this.label}: ${error.message}`, { code: error.code, cause: error });
      }
      logger.warn({ err: describeError(error) }, `${system} is not reachable yet; deliveries will retry`);
      return false;
    }
  }

  /** A start that cannot succeed: the sink never delivers. */
  failStart(): void {
    this.current = 'STOPPED';
  }

  /** Runs `deliverBatch(items)` unless the sink is stopping, and tracks it for `stop`. */
  async run(items: DeliveryItem[], deliverBatch: (items: DeliveryItem[]) => Promise<Outcome[]>): Promise<Outcome[]> {
    if (this.current === 'STOPPING' || this.current === 'STOPPED') {
      const error = new TransientError(`${this.label} is stopped`);
      return items.map(() => ({ status: 'errored', error }));
    }
    const batch = deliverBatch(items);
    this.batches.add(batch);
    try {
      return await batch;
    } finally {
      this.batches.delete(batch);
    }
  }

  /** Aborts requests in flight (their items end `errored`) and waits for running batches to return. */
  async stop(): Promise<void> {
    if (this.current === 'STOPPED') return;
    this.current = 'STOPPING';
    this.stopController.abort();
    await Promise.allSettled([...this.batches]);
    this.current = 'STOPPED';
  }
}
