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

export interface RelayStore {
  readonly kind: 'sqlite' | 'postgres';
  /** False once closed. */
  readonly open: boolean;
  /** Connects and prepares the schema; called once before anything else, where present. */
  init?(): Promise<void>;
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
  /** Forgets fully delivered events received before `cutoffMs`, and older ingress rejections. */
  prune(cutoffMs: number): Promise<{ events: number; rejections: number }>;
  close(): Promise<void>;
}
