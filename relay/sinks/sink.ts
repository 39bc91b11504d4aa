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

/** One record a delivery writes: what reconciliation expects to find in the target. */
export interface ExpectedRecord {
  object: string; // Salesforce sObject, HubSpot object type, NetSuite record type
  externalIdField: string; // Salesforce external id field, HubSpot idProperty, NetSuite 'externalId'
  externalId: string;
  /** Fields as we last wrote them (the mapped body; never the external id field itself). */
  fields: Record<string, unknown>;
  /** 'latest' when the mapping writes the subject's latest state (overwritten by newer events), else 'event'. */
  apply: 'event' | 'latest';
}

/** What names a record in its target: reconciliation reads records back by it. */
export type RecordRef = Pick<ExpectedRecord, 'object' | 'externalIdField' | 'externalId'>;

/** The records an item writes, or why it cannot be written (the sink's plan error). */
export type ExpectedRecords = { ok: true; records: ExpectedRecord[] } | { ok: false; error: PermanentError };

export interface FoundRecord {
  id: string;
  fields: Record<string, unknown>;
}

/**
 * Optional capability of a sink whose target can be read back: reconciliation asks
 * which records a delivery wrote, what the target holds now, and removes duplicates.
 */
export interface RecordReader {
  /** The records `item` would write (the sink's own mapping plan, nothing sent). Same errors as deliver's plan. */
  expectedRecords(item: DeliveryItem): ExpectedRecords;
  /** For each ref (same order), every record the target holds with that external id (0, 1 or, where the target allows it, several). Batches calls within the target's limits; throws TransientError/PermanentError like deliver's calls. */
  readRecords(refs: readonly RecordRef[]): Promise<FoundRecord[][]>;
  /** Deletes records by the target's own record id (used to remove duplicates). */
  deleteRecords(object: string, ids: readonly string[]): Promise<void>;
}

/** True when the sink can read back and delete what it writes (checks the methods exist). */
export function isRecordReader(s: Sink): s is Sink & RecordReader {
  const candidate = s as Partial<RecordReader>;
  return typeof candidate.expectedRecords === 'function' && typeof candidate.readRecords === 'function' && typeof candidate.deleteRecords === 'function';
}
