/**
 * The contract between the relay's delivery engine and a target system (CRM, ERP).
 *
 * `deliver` gets a batch and returns exactly one outcome per item, in the same order,
 * so one bad record never fails or duplicates its neighbours. It must not throw for
 * per-record problems; a thrown error counts as `errored` for the whole batch.
 * Writes must be idempotent (upsert by external id): the engine redelivers after a
 * crash between the target's success and the engine's own commit.
 */
import type { CloudEventV1 } from '../../protocols/events/envelope.js';
import type { PermanentError, TransientError } from '../../protocols/errors.js';

export interface DeliveryItem {
  event: CloudEventV1;
  /**
   * True when a newer event for the same subject was already applied by this sink.
   * The sink still writes per-event records, but must skip "latest state" writes,
   * so an older update never overwrites a newer one.
   */
  stale: boolean;
}

export type Outcome =
  | { status: 'delivered'; /** Target record ids written, for tracing. */ recordIds: string[] }
  | { status: 'errored'; error: TransientError }
  | { status: 'rejected'; error: PermanentError };

export interface Sink {
  readonly name: string;
  readonly kind: string;
  start(): Promise<void>;
  deliver(items: DeliveryItem[]): Promise<Outcome[]>;
  stop(): Promise<void>;
}
