/**
 * Reads over the inbox for people and for reconciliation, not for the delivery hot path: the
 * event trace (find events by business key, sales order, correlation id or time, with every
 * lane's delivery), the agents' ledgers, re-sends and applied versions.
 *
 * Invariants
 * - Queries are bounded: every list takes a limit and pages on seq.
 * - `resend` moves only `delivered` rows back to `pending` (dead letters have replay); the
 *   subject's order holds because a pending row is due only as its subject's head.
 * - Ledger entries are idempotent on (source, id): an agent resending its ledger after a lost
 *   ack adds nothing; an entry first `dropped` and later `stored` ends `stored`.
 */
import type Database from 'better-sqlite3';
import type {
  AppliedVersion,
  EventQuery,
  LedgerEntry,
  LedgerQuery,
  LedgerRow,
  SubjectAt,
  TracedDelivery,
  TracedEvent,
} from '../store/store.js';
import { subjectsForKey } from '../store/store.js';

/** An inbox row as read, before its body is parsed and its deliveries attached. */
export type EventRow = Omit<TracedEvent, 'event' | 'deliveries'> & { body: string };

/** A deliveries row as read: record_ids still JSON text. */
export interface DeliveryRowRaw {
  inboxSeq: number;
  lane: string;
  status: TracedDelivery['status'];
  attempts: number;
  updatedMs: number;
  nextAttemptMs: number;
  recordIds: string | null;
  lastError: string | null;
  errorCode: string | null;
}

/** record_ids holds a JSON array; anything else (never written by us) reads as none. */
function parseRecordIds(text: string | null): string[] {
  if (!text) return [];
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

export function toTracedDelivery(r: DeliveryRowRaw): TracedDelivery {
  return {
    lane: r.lane,
    status: r.status,
    attempts: r.attempts,
    updatedMs: r.updatedMs,
    nextAttemptMs: r.nextAttemptMs,
    recordIds: parseRecordIds(r.recordIds),
    lastError: r.lastError,
    errorCode: r.errorCode,
  };
}

/** An inbox row as `EventRow`. */
const EVENT_COLUMNS = `seq, id, source, type, subject, plant, agent, time_ms AS timeMs, plantseq, correlation_id AS correlationId,
  sales_order AS salesOrder, received_ms AS receivedMs, body`;

export class InboxHistory {
  private readonly stmts;

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number,
  ) {
    this.stmts = {
      deliveriesOf: db.prepare(
        `SELECT inbox_seq AS inboxSeq, sink AS lane, status, attempts, updated_ms AS updatedMs, next_attempt_ms AS nextAttemptMs,
                record_ids AS recordIds, last_error AS lastError, error_code AS errorCode
           FROM deliveries WHERE inbox_seq = ? ORDER BY sink`,
      ),
      eventsAt: db.prepare(`SELECT ${EVENT_COLUMNS} FROM inbox WHERE subject = ? AND plant = ? AND time_ms = ? ORDER BY seq`),
      resend: db.prepare(
        `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_ms = 0, last_error = NULL, error_code = NULL, updated_ms = ?
          WHERE sink = ? AND inbox_seq = ? AND status = 'delivered'`,
      ),
      version: db.prepare<[string, string], { timeMs: number; plantseq: number }>(
        'SELECT time_ms AS timeMs, plantseq FROM subject_versions WHERE sink = ? AND subject = ?',
      ),
      addLedger: db.prepare(
        // A fact first dropped (outbox full) and later stored counts as stored.
        `INSERT INTO ledger (plant, agent, source, id, type, subject, time_ms, status, received_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (source, id) DO UPDATE SET status = 'stored' WHERE ledger.status = 'dropped' AND excluded.status = 'stored'`,
      ),
    };
  }

  findEvents(q: EventQuery): TracedEvent[] {
    const where: string[] = ['seq > ?'];
    const args: (string | number)[] = [q.afterSeq ?? 0];
    if (q.key !== undefined) {
      const subjects = subjectsForKey(q.key);
      where.push(`(subject IN (${subjects.map(() => '?').join(', ')}) OR sales_order = ? OR correlation_id = ? OR id = ?)`);
      args.push(...subjects, q.key, q.key, q.key);
    }
    if (q.plant !== undefined) {
      where.push('plant = ?');
      args.push(q.plant);
    }
    if (q.fromMs !== undefined) {
      where.push('time_ms >= ?');
      args.push(q.fromMs);
    }
    if (q.toMs !== undefined) {
      where.push('time_ms < ?');
      args.push(q.toMs);
    }
    args.push(q.limit);
    const rows = this.db
      .prepare(
        `SELECT ${EVENT_COLUMNS} FROM inbox WHERE ${where.join(' AND ')} ORDER BY seq ${q.newestFirst ? 'DESC' : ''} LIMIT ?`,
      )
      .all(...args) as EventRow[];
    return rows.map((r) => this.traced(r));
  }

  eventsAt(versions: readonly SubjectAt[]): TracedEvent[] {
    // In process, one indexed lookup each costs microseconds: no need to batch them.
    return versions.flatMap((v) => (this.stmts.eventsAt.all(v.subject, v.plant, v.timeMs) as EventRow[]).map((r) => this.traced(r)));
  }

  private traced({ body, ...r }: EventRow): TracedEvent {
    return {
      ...r,
      event: JSON.parse(body) as Record<string, unknown>,
      deliveries: (this.stmts.deliveriesOf.all(r.seq) as DeliveryRowRaw[]).map(toTracedDelivery),
    };
  }

  resend(lane: string, inboxSeqs: readonly number[]): number {
    const now = this.now();
    let n = 0;
    this.db.transaction(() => {
      for (const seq of inboxSeqs) n += this.stmts.resend.run(now, lane, seq).changes;
    })();
    return n;
  }

  appliedVersions(lane: string, orderKeys: readonly string[]): AppliedVersion[] {
    const out: AppliedVersion[] = [];
    for (const orderKey of orderKeys) {
      const v = this.stmts.version.get(lane, orderKey);
      if (v) out.push({ orderKey, ...v });
    }
    return out;
  }

  addLedger(agent: string, plant: string, entries: readonly LedgerEntry[]): number {
    const now = this.now();
    let added = 0;
    this.db.transaction(() => {
      for (const e of entries) added += this.stmts.addLedger.run(plant, agent, e.source, e.id, e.type, e.subject, e.timeMs, e.status, now).changes;
    })();
    return added;
  }

  ledger(q: LedgerQuery): LedgerRow[] {
    const where = ['seq > ?', 'time_ms >= ?', 'time_ms < ?'];
    const args: (string | number)[] = [q.afterSeq ?? 0, q.fromMs, q.toMs];
    if (q.plant !== undefined) {
      where.push('plant = ?');
      args.push(q.plant);
    }
    args.push(q.limit);
    return this.db
      .prepare(
        `SELECT seq, plant, agent, source, id, type, subject, time_ms AS timeMs, status, received_ms AS receivedMs
           FROM ledger WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`,
      )
      .all(...args) as LedgerRow[];
  }
}
