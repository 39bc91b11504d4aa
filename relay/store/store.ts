/**
 * The relay's state behind one async interface, so replicas can share it (PostgreSQL) or a
 * single relay can keep it embedded (SQLite, the default).
 *
 * Contract (every implementation; test/relay/store/store-contract.ts checks it)
 * - `store` commits a whole batch (new events, their routed deliveries, the ingress
 *   rejections) in one durable transaction and resolves only after the commit: the ingress
 *   acks the agent after that, never before.
 * - Dedupe: (id, source) is unique for the life of the store (until pruned). A duplicate
 *   creates no delivery.
 * - `claim` hands out only subject heads (the oldest pending delivery of its (lane, plant,
 *   subject)) that are due, oldest first. A claimed delivery is held by this store instance
 *   (a lease, where several instances share the state) until `record` settles it or the lease
 *   runs out; while held, nobody else can claim it or anything behind it in its subject.
 * - `record` settles claimed deliveries in one transaction: delivered (and the subject's
 *   applied version advances, never backwards), dead (a dead letter, replayable) or retry
 *   (with its next attempt time). An outcome for a delivery this instance no longer holds
 *   (its lease ran out and another instance took it) is discarded and counted as such.
 * - `stale` on a claimed delivery: the event is older than the version already applied for
 *   its subject on that lane; the sink writes per-event records only, never "latest" state.
 */
import type {
  DeadLetterFilter,
  DeliveryRow,
  DeliveryStatus,
  DueDelivery,
  IncomingEvent,
  IngressRejection,
  StoreResult,
} from '../inbox/inbox.js';
import type { LedgerEntryWire } from '../../protocols/uplink/frames.js';

export type { DeadLetterFilter, DeliveryRow, DeliveryStatus, DueDelivery, IncomingEvent, IngressRejection, StoreResult };

export interface ClaimedDelivery extends DueDelivery {
  /** Older than the version its lane already applied for the subject. */
  stale: boolean;
}

/** What happened to one claimed delivery. */
export type DeliveryOutcome =
  | { kind: 'delivered'; d: DueDelivery; subject: string; recordIds: string[]; stale: boolean }
  | { kind: 'dead'; d: DueDelivery; error: string; code: string }
  | { kind: 'retry'; d: DueDelivery; error: string; code: string; nextAttemptMs: number };

export interface RecordResult {
  recorded: number;
  /** Outcomes dropped because this instance no longer held the delivery (lease expired). */
  discarded: number;
}

export interface StoreCounts {
  events: number;
  pending: number;
  delivered: number;
  dead: number;
  ingressRejections: number;
}

export interface IngressRejectionRow {
  seq: number;
  agent: string;
  plant: string;
  eventId: string | null;
  code: string;
  reason: string;
  receivedMs: number;
}

export interface DeliveryBacklogRow {
  sink: string;
  pending: number;
  dead: number;
  oldestPendingReceivedMs: number | null;
}

export interface PlantPendingRow {
  plant: string;
  events: number;
  oldestTimeMs: number;
}

export type DeliveryDetail = DeliveryRow & { event: unknown; receivedMs: number; agent: string };

/** One lane's delivery of a traced event: where it stands, and what the target answered. */
export interface TracedDelivery {
  lane: string;
  status: DeliveryStatus;
  attempts: number;
  /** When the status last changed: delivered or dead-lettered at, or the last failed attempt. */
  updatedMs: number;
  nextAttemptMs: number;
  /** Record ids the target returned (the CRM record id), once delivered. */
  recordIds: string[];
  lastError: string | null;
  errorCode: string | null;
}

/** An event as the relay holds it, with every lane's delivery: the relay's part of a trace. */
export interface TracedEvent {
  seq: number;
  id: string;
  source: string;
  type: string;
  subject: string;
  plant: string;
  agent: string;
  timeMs: number;
  plantseq: number;
  correlationId: string;
  salesOrder: string | null;
  receivedMs: number;
  /** The CloudEvent as received (its `readtime` and `outboxtime` carry the agent's hops). */
  event: Record<string, unknown>;
  deliveries: TracedDelivery[];
}

/**
 * Which events to find. `key` matches a business key or id: a work order or shipment number
 * (the subject without its `work-order/` or `shipment/` prefix, or the whole subject), a sales
 * order, a correlation id or an event id. `fromMs`/`toMs` bound the event time (time_ms);
 * `afterSeq` pages on (events come oldest seq first).
 */
export interface EventQuery {
  key?: string | undefined;
  plant?: string | undefined;
  fromMs?: number | undefined;
  toMs?: number | undefined;
  afterSeq?: number | undefined;
  /** Newest seq first (for "the latest N"); `afterSeq` then still bounds from below. */
  newestFirst?: boolean | undefined;
  limit: number;
}

/** A subject of a plant at one event time. */
export interface SubjectAt {
  plant: string;
  subject: string;
  timeMs: number;
}

/** One event an agent's ledger says it produced (or dropped when its outbox was full), as its ledger frame carried it. */
export type LedgerEntry = LedgerEntryWire;

export interface LedgerRow extends LedgerEntry {
  seq: number;
  plant: string;
  agent: string;
  receivedMs: number;
}

export interface LedgerQuery {
  plant?: string | undefined;
  fromMs: number;
  toMs: number;
  afterSeq?: number | undefined;
  limit: number;
}

/** The newest version a lane applied for an ordering key (`<plant>/<subject>`). */
export interface AppliedVersion {
  orderKey: string;
  timeMs: number;
  plantseq: number;
}

/** How long a key may be in a query (longer keys match nothing anyway). */
export const MAX_QUERY_KEY = 256;

/** Subjects a business key may stand for: `WO-1` is `work-order/WO-1` or `shipment/WO-1`. */
export function subjectsForKey(key: string): string[] {
  return [key, `work-order/${key}`, `shipment/${key}`];
}

/** The sales order an event names (data.salesOrder), indexed for the trace search. */
export function salesOrderOf(event: { data?: unknown }): string | null {
  const data = event.data;
  if (typeof data !== 'object' || data === null) return null;
  const so = (data as Record<string, unknown>).salesOrder;
  return typeof so === 'string' && so.length > 0 && so.length <= MAX_QUERY_KEY ? so : null;
}

/** What one prune forgot. */
export interface PruneResult {
  events: number;
  rejections: number;
  /** Applied subject versions (the older-never-overwrites-newer guard) of subjects quiet for the whole window. */
  versions: number;
}

export interface RelayStore {
  readonly kind: 'sqlite' | 'postgres';
  /** False once closed. */
  readonly open: boolean;
  /** Connects and prepares the schema; called once before anything else, where present. */
  init?(): Promise<void>;
  /** Where the state lives on a server: whether it answered lately (for /readyz). */
  health?(): { ok: true } | { ok: false; reason: string };
  /** Stores a batch from one agent durably; resolves only after the commit. */
  store(agent: string, events: readonly IncomingEvent[], rejections: readonly IngressRejection[]): Promise<StoreResult>;
  /** Takes up to `limit` due subject heads of `lane`, oldest first, and holds them until `record`. */
  claim(lane: string, limit: number): Promise<ClaimedDelivery[]>;
  /**
   * Where claims are leases (a shared store): how often a worker renews the leases of the
   * deliveries it is still working on, and the renewal. A live replica with a slow sink keeps
   * its deliveries; only a dead (or stalled) one loses them. Returns how many it still holds.
   */
  readonly leaseRenewalMs?: number;
  renewLeases?(lane: string, inboxSeqs: readonly number[]): Promise<number>;
  /** Settles claimed deliveries in one transaction. */
  record(lane: string, outcomes: readonly DeliveryOutcome[]): Promise<RecordResult>;
  /** Earliest time a pending subject head of `lane` becomes due (or its lease ends), if any is pending. */
  nextDueMs(lane: string): Promise<number | undefined>;
  listDeliveries(filter?: DeadLetterFilter & { status?: DeliveryStatus; limit?: number }): Promise<DeliveryRow[]>;
  getDelivery(lane: string, inboxSeq: number): Promise<DeliveryDetail | undefined>;
  /** Dead letters matching the filter back to pending; an empty filter matches nothing unless `all`. */
  replayDead(filter: DeadLetterFilter & { all?: boolean }): Promise<number>;
  listIngressRejections(limit?: number): Promise<IngressRejectionRow[]>;
  counts(): Promise<StoreCounts>;
  deliveryBacklog(): Promise<DeliveryBacklogRow[]>;
  pendingByPlant(filter?: { types?: readonly string[]; sinks?: readonly string[] }): Promise<PlantPendingRow[]>;
  /** Events with their deliveries, for the trace and reconciliation (oldest seq first). */
  findEvents(query: EventQuery): Promise<TracedEvent[]>;
  /**
   * The events of each (plant, subject) at exactly `timeMs` (event time), with their deliveries,
   * oldest seq first per subject: the events behind applied versions, for many subjects at once.
   */
  eventsAt(versions: readonly SubjectAt[]): Promise<TracedEvent[]>;
  /** Delivered deliveries back to pending, so the lane writes them again (a reconciliation repair). */
  resend(lane: string, inboxSeqs: readonly number[]): Promise<number>;
  /** The newest version `lane` applied per ordering key, for those keys that have one. */
  appliedVersions(lane: string, orderKeys: readonly string[]): Promise<AppliedVersion[]>;
  /** Adds an agent's ledger entries (idempotent on (source, id)); returns how many were new. */
  addLedger(agent: string, plant: string, entries: readonly LedgerEntry[]): Promise<number>;
  /** Ledger entries with event time in [fromMs, toMs), oldest seq first. */
  ledger(query: LedgerQuery): Promise<LedgerRow[]>;
  /**
   * Forgets fully delivered events received before `cutoffMs`, older ingress rejections and
   * ledger entries, and the applied versions of subjects no delivery of which was recorded
   * since `cutoffMs` and with nothing pending or dead (their events are all forgotten too).
   */
  prune(cutoffMs: number): Promise<PruneResult>;
  close(): Promise<void>;
}
