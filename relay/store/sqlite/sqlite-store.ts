/**
 * The embedded default: the SQLite `Inbox` (relay/inbox/inbox.ts) behind the async store
 * interface. Synchronous inside (better-sqlite3), promises outside; every method runs to its
 * commit before its promise settles, so the store contract holds as the Inbox states it.
 *
 * One relay process owns the file, with one delivery worker per lane, so a claim needs no
 * lease: nothing else can take a delivery between `claim` and `record`. (Two relays on one
 * SQLite file are not supported; that is what the PostgreSQL store is for.)
 */
import { InboxHistory } from '../../inbox/history.js';
import { Inbox } from '../../inbox/inbox.js';
import type {
  PruneResult,
  SubjectAt,
  AppliedVersion,
  ClaimedDelivery,
  EventQuery,
  LedgerEntry,
  LedgerQuery,
  LedgerRow,
  TracedEvent,
  DeadLetterFilter,
  DeliveryBacklogRow,
  DeliveryDetail,
  DeliveryOutcome,
  DeliveryRow,
  DeliveryStatus,
  IncomingEvent,
  IngressRejection,
  IngressRejectionRow,
  PlantPendingRow,
  RecordResult,
  RelayStore,
  StoreCounts,
  StoreResult,
} from '../store.js';

export class SqliteStore implements RelayStore {
  readonly kind = 'sqlite' as const;
  readonly inbox: Inbox;
  private readonly history: InboxHistory;

  /** Opens the inbox at `path`, or adapts an Inbox already open (tests that also look inside it). */
  constructor(pathOrInbox: string | Inbox, now?: () => number) {
    this.inbox = typeof pathOrInbox === 'string' ? new Inbox(pathOrInbox, now) : pathOrInbox;
    this.history = new InboxHistory(this.inbox.db, this.inbox.now);
  }

  get open(): boolean {
    return this.inbox.open;
  }

  async store(agent: string, events: readonly IncomingEvent[], rejections: readonly IngressRejection[]): Promise<StoreResult> {
    return this.inbox.store(agent, events, rejections);
  }

  async claim(lane: string, limit: number): Promise<ClaimedDelivery[]> {
    return this.inbox.due(lane, limit).map((d) => ({ ...d, stale: this.inbox.isStale(lane, d.subject, d.timeMs, d.plantseq) }));
  }

  async record(lane: string, outcomes: readonly DeliveryOutcome[]): Promise<RecordResult> {
    this.inbox.record(lane, outcomes);
    return { recorded: outcomes.length, discarded: 0 };
  }

  async nextDueMs(lane: string): Promise<number | undefined> {
    return this.inbox.nextDueMs(lane);
  }

  async listDeliveries(filter: DeadLetterFilter & { status?: DeliveryStatus; limit?: number } = {}): Promise<DeliveryRow[]> {
    return this.inbox.listDeliveries(filter);
  }

  async getDelivery(lane: string, inboxSeq: number): Promise<DeliveryDetail | undefined> {
    return this.inbox.getDelivery(lane, inboxSeq);
  }

  async replayDead(filter: DeadLetterFilter & { all?: boolean }): Promise<number> {
    return this.inbox.replayDead(filter);
  }

  async listIngressRejections(limit?: number): Promise<IngressRejectionRow[]> {
    return this.inbox.listIngressRejections(limit);
  }

  async counts(): Promise<StoreCounts> {
    return this.inbox.counts();
  }

  async deliveryBacklog(): Promise<DeliveryBacklogRow[]> {
    return this.inbox.deliveryBacklog();
  }

  async pendingByPlant(filter?: { types?: readonly string[]; sinks?: readonly string[] }): Promise<PlantPendingRow[]> {
    return this.inbox.pendingByPlant(filter);
  }

  async findEvents(query: EventQuery): Promise<TracedEvent[]> {
    return this.history.findEvents(query);
  }

  async eventsAt(versions: readonly SubjectAt[]): Promise<TracedEvent[]> {
    return this.history.eventsAt(versions);
  }

  async resend(lane: string, inboxSeqs: readonly number[]): Promise<number> {
    return this.history.resend(lane, inboxSeqs);
  }

  async appliedVersions(lane: string, orderKeys: readonly string[]): Promise<AppliedVersion[]> {
    return this.history.appliedVersions(lane, orderKeys);
  }

  async addLedger(agent: string, plant: string, entries: readonly LedgerEntry[]): Promise<number> {
    return this.history.addLedger(agent, plant, entries);
  }

  async ledger(query: LedgerQuery): Promise<LedgerRow[]> {
    return this.history.ledger(query);
  }

  async prune(cutoffMs: number): Promise<PruneResult> {
    return this.inbox.prune(cutoffMs);
  }

  async close(): Promise<void> {
    this.inbox.close();
  }
}
