/**
 * The relay's durable inbox and delivery ledger: SQLite (better-sqlite3), WAL, synchronous=FULL.
 *
 * Invariants
 * - `store` commits a whole batch (new events, their routed deliveries, the ingress rejections)
 *   in one fsync'd transaction; the ingress acks the agent only after it returns.
 * - Dedupe: (source, id) is unique for the life of the inbox, across restarts. A duplicate
 *   creates no delivery.
 * - Every stored event has exactly one `deliveries` row per routed sink. A row leaves
 *   `pending` only to `delivered` or `dead` (dead letter, with its reason), in the same
 *   transaction that records the outcome; a crash before that commit redelivers, which the
 *   sinks' idempotent upserts make harmless.
 * - Order per (sink, plant, subject): only the oldest pending delivery of a subject is
 *   eligible (`due`), so a subject waiting on a retry holds back only itself. The
 *   `deliveries.subject` column holds the ordering key `<plant>/<subject>`, so two plants'
 *   WO-1 never wait on or outdate each other.
 * - `subject_versions` holds, per (sink, ordering key), the newest event version applied; an
 *   event older than it is delivered as `stale` (per-event records only, no "latest" write).
 *   It is forgotten only with the subject's events (see VERSIONS_TO_FORGET).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { openDatabase } from '../../protocols/sqlite.js';
import type { CloudEventV1 } from '../../protocols/events/envelope.js';
import { salesOrderOf, type PruneResult } from '../store/store.js';

/** Step n takes the schema from version n to n + 1 (0: an empty file). */
const SCHEMA_STEPS: readonly string[] = [
  `
  CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    subject TEXT NOT NULL, plant TEXT NOT NULL, agent TEXT NOT NULL, time_ms INTEGER NOT NULL,
    plantseq INTEGER NOT NULL, correlation_id TEXT NOT NULL, body TEXT NOT NULL, received_ms INTEGER NOT NULL);
  CREATE UNIQUE INDEX IF NOT EXISTS inbox_dedupe ON inbox (id, source);
  CREATE TABLE IF NOT EXISTS deliveries (
    inbox_seq INTEGER NOT NULL REFERENCES inbox(seq), sink TEXT NOT NULL, subject TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')), attempts INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL, last_error TEXT, error_code TEXT, record_ids TEXT, updated_ms INTEGER NOT NULL,
    PRIMARY KEY (sink, inbox_seq));
  CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (sink, status, subject, inbox_seq);
  -- Walks pending deliveries oldest first, so 'due' stops after LIMIT rows instead of sorting the backlog.
  CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (sink, status, inbox_seq);
  CREATE TABLE IF NOT EXISTS subject_versions (
    sink TEXT NOT NULL, subject TEXT NOT NULL, time_ms INTEGER NOT NULL, plantseq INTEGER NOT NULL, PRIMARY KEY (sink, subject));
  CREATE TABLE IF NOT EXISTS ingress_rejections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT NOT NULL, plant TEXT NOT NULL, event_id TEXT, code TEXT NOT NULL,
    reason TEXT NOT NULL, body TEXT NOT NULL, received_ms INTEGER NOT NULL);
  `,
  // 2: the event trace (search by business key, sales order, correlation id) and the agents' ledgers.
  `
  ALTER TABLE inbox ADD COLUMN sales_order TEXT;
  UPDATE inbox SET sales_order = json_extract(body, '$.data.salesOrder')
   WHERE json_valid(body) AND json_type(body, '$.data.salesOrder') = 'text'
     AND length(json_extract(body, '$.data.salesOrder')) BETWEEN 1 AND 256;
  -- Added during version 1, when every open re-ran CREATE IF NOT EXISTS: a file from before has not got them.
  CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (sink, status, subject, inbox_seq);
  CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (sink, status, inbox_seq);
  CREATE INDEX inbox_subject ON inbox (subject);
  CREATE INDEX inbox_correlation ON inbox (correlation_id);
  CREATE INDEX inbox_sales_order ON inbox (sales_order) WHERE sales_order IS NOT NULL;
  CREATE INDEX inbox_time ON inbox (time_ms);
  CREATE INDEX deliveries_seq ON deliveries (inbox_seq);
  CREATE TABLE ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, plant TEXT NOT NULL, agent TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL,
    type TEXT NOT NULL, subject TEXT NOT NULL, time_ms INTEGER NOT NULL, status TEXT NOT NULL CHECK (status IN ('stored', 'dropped')),
    received_ms INTEGER NOT NULL);
  CREATE UNIQUE INDEX ledger_entry ON ledger (source, id);
  CREATE INDEX ledger_time ON ledger (time_ms);
  `,
  // 3: when a delivery of each subject was last recorded, so versions can be pruned (see prune).
  `
  ALTER TABLE subject_versions ADD COLUMN seen_ms INTEGER NOT NULL DEFAULT 0;
  UPDATE subject_versions SET seen_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
  `,
];

/** The incoming event is newer than the subject's applied version. */
const NEWER = `(excluded.time_ms > subject_versions.time_ms
  OR (excluded.time_ms = subject_versions.time_ms AND excluded.plantseq > subject_versions.plantseq))`;

/**
 * A subject's applied version is forgotten once no delivery of it was recorded for the whole
 * retention window (`seen_ms`, the relay's clock, as the window's receipt times are) and
 * nothing of it is pending or dead in that lane: by then every event of it the relay got has
 * been pruned from the inbox, so the version guards only against what the dedupe window has
 * forgotten too. Walks the table in key order, one slice at a time.
 */
const VERSIONS_TO_FORGET = `
  SELECT v.sink, v.subject FROM subject_versions v
   WHERE (v.sink, v.subject) > (?, ?) AND v.seen_ms < ?
     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.sink = v.sink AND d.status IN ('pending', 'dead') AND d.subject = v.subject)
   ORDER BY v.sink, v.subject LIMIT ?`;
const SCHEMA_VERSION = SCHEMA_STEPS.length;

export interface IncomingEvent {
  event: CloudEventV1;
  /** The event's JSON text, as stored and as delivered. */
  body: string;
  /** Sinks the router chose for it. */
  sinks: readonly string[];
}

export interface IngressRejection {
  agent: string;
  plant: string;
  id?: string | undefined;
  code: string;
  reason: string;
  body: string;
}

export interface StoreResult {
  stored: number;
  duplicates: number;
}

export interface DueDelivery {
  inboxSeq: number;
  subject: string;
  attempts: number;
  body: string;
  timeMs: number;
  plantseq: number;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'dead';

/** Selects dead letters (or deliveries) by what an operator knows about them. */
export interface DeadLetterFilter {
  sink?: string | undefined;
  inboxSeq?: number | undefined;
  /** Error code, e.g. FIELD_CUSTOM_VALIDATION_EXCEPTION. */
  code?: string | undefined;
  /** Business key, e.g. work-order/WO-1001. */
  subject?: string | undefined;
  plant?: string | undefined;
  correlationId?: string | undefined;
}

export interface DeliveryRow {
  inboxSeq: number;
  sink: string;
  subject: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptMs: number;
  lastError: string | null;
  errorCode: string | null;
  recordIds: string | null;
  updatedMs: number;
  id: string;
  type: string;
  plant: string;
  correlationId: string;
}

export class Inbox {
  readonly db: Database.Database;
  private readonly stmts;

  constructor(path: string, readonly now: () => number = Date.now) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = openDatabase(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.stmts = {
      insert: this.db.prepare(
        `INSERT OR IGNORE INTO inbox (source, id, type, subject, plant, agent, time_ms, plantseq, correlation_id, body, received_ms, sales_order)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertDelivery: this.db.prepare(
        `INSERT INTO deliveries (inbox_seq, sink, subject, status, attempts, next_attempt_ms, updated_ms) VALUES (?, ?, ?, 'pending', 0, 0, ?)`,
      ),
      insertRejection: this.db.prepare(
        `INSERT INTO ingress_rejections (agent, plant, event_id, code, reason, body, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      // The subject's head is the oldest pending delivery; later ones wait behind it only
      // while it is backing off (next_attempt_ms in the future).
      due: this.db.prepare<[string, number, string, number], DueDelivery>(
        `SELECT d.inbox_seq AS inboxSeq, d.subject, d.attempts, i.body, i.time_ms AS timeMs, i.plantseq
           FROM deliveries d JOIN inbox i ON i.seq = d.inbox_seq
          WHERE d.sink = ? AND d.status = 'pending' AND d.next_attempt_ms <= ?
            AND NOT EXISTS (SELECT 1 FROM deliveries e
                             WHERE e.sink = ? AND e.status = 'pending' AND e.subject = d.subject AND e.inbox_seq < d.inbox_seq)
          ORDER BY d.inbox_seq LIMIT ?`,
      ),
      // Only subject heads count: a follower waits for its head, whatever its own next_attempt_ms.
      nextDue: this.db.prepare<[string, string], { t: number | null }>(
        `SELECT min(d.next_attempt_ms) AS t FROM deliveries d
          WHERE d.sink = ? AND d.status = 'pending'
            AND NOT EXISTS (SELECT 1 FROM deliveries e
                             WHERE e.sink = ? AND e.status = 'pending' AND e.subject = d.subject AND e.inbox_seq < d.inbox_seq)`,
      ),
      delivered: this.db.prepare(
        `UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, record_ids = ?, last_error = NULL, error_code = NULL, updated_ms = ?
          WHERE sink = ? AND inbox_seq = ? AND status = 'pending'`,
      ),
      dead: this.db.prepare(
        `UPDATE deliveries SET status = 'dead', attempts = attempts + 1, last_error = ?, error_code = ?, updated_ms = ?
          WHERE sink = ? AND inbox_seq = ? AND status = 'pending'`,
      ),
      retry: this.db.prepare(
        `UPDATE deliveries SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ?, error_code = ?, updated_ms = ?
          WHERE sink = ? AND inbox_seq = ? AND status = 'pending'`,
      ),
      version: this.db.prepare<[string, string], { time_ms: number; plantseq: number }>(
        'SELECT time_ms, plantseq FROM subject_versions WHERE sink = ? AND subject = ?',
      ),
      // Every delivered outcome touches `seen_ms` (a stale one too); only a newer event moves the version.
      setVersion: this.db.prepare(
        `INSERT INTO subject_versions (sink, subject, time_ms, plantseq, seen_ms) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(sink, subject) DO UPDATE SET
           time_ms = iif(${NEWER}, excluded.time_ms, subject_versions.time_ms),
           plantseq = iif(${NEWER}, excluded.plantseq, subject_versions.plantseq),
           seen_ms = max(subject_versions.seen_ms, excluded.seen_ms)`,
      ),
      replay: this.db.prepare(
        `UPDATE deliveries SET status = 'pending', next_attempt_ms = 0, updated_ms = ? WHERE sink = ? AND inbox_seq = ? AND status = 'dead'`,
      ),
    };
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
    const current = row ? Number(row.value) : 0;
    if (current > SCHEMA_VERSION) throw new Error(`inbox has schema version ${current}; this build reads up to ${SCHEMA_VERSION}: upgrade the relay`);
    // Each step runs once, in order, in one transaction with its version bump.
    for (let v = current; v < SCHEMA_VERSION; v++) {
      this.db.transaction(() => {
        this.db.exec(SCHEMA_STEPS[v]!);
        this.db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(v + 1));
      })();
    }
  }

  /** Stores a batch from one agent durably. Returns only after the commit. */
  store(agent: string, events: readonly IncomingEvent[], rejections: readonly IngressRejection[]): StoreResult {
    const now = this.now();
    let stored = 0;
    let duplicates = 0;
    this.db.transaction(() => {
      for (const { event, body, sinks } of events) {
        const info = this.stmts.insert.run(
          event.source, event.id, event.type, event.subject, event.plant, agent,
          Date.parse(event.time), event.plantseq, event.correlationid, body, now, salesOrderOf(event),
        );
        if (info.changes === 0) {
          duplicates++;
          continue;
        }
        stored++;
        // Order and versions are per plant and subject: two plants may both have a WO-1.
        const orderKey = `${event.plant}/${event.subject}`;
        for (const sink of sinks) this.stmts.insertDelivery.run(info.lastInsertRowid, sink, orderKey, now);
      }
      for (const r of rejections) this.stmts.insertRejection.run(r.agent, r.plant, r.id ?? null, r.code, r.reason, r.body, now);
    })();
    return { stored, duplicates };
  }

  /** Deliveries of `sink` that may be attempted now: the head of each subject, oldest first. */
  due(sink: string, limit: number): DueDelivery[] {
    return this.stmts.due.all(sink, this.now(), sink, limit);
  }

  /** Earliest time a pending delivery of `sink` becomes due, if any is pending. */
  nextDueMs(sink: string): number | undefined {
    return this.stmts.nextDue.get(sink, sink)?.t ?? undefined;
  }

  /** Whether an event with this version is older than what `sink` already applied for its subject. */
  isStale(sink: string, subject: string, timeMs: number, plantseq: number): boolean {
    const v = this.stmts.version.get(sink, subject);
    if (!v) return false;
    return timeMs < v.time_ms || (timeMs === v.time_ms && plantseq < v.plantseq);
  }

  /** Records a batch of outcomes in one transaction. */
  record(
    sink: string,
    outcomes: readonly (
      | { kind: 'delivered'; d: DueDelivery; subject: string; recordIds: string[]; stale: boolean }
      | { kind: 'dead'; d: DueDelivery; error: string; code: string }
      | { kind: 'retry'; d: DueDelivery; error: string; code: string; nextAttemptMs: number }
    )[],
  ): void {
    const now = this.now();
    this.db.transaction(() => {
      for (const o of outcomes) {
        if (o.kind === 'delivered') {
          this.stmts.delivered.run(JSON.stringify(o.recordIds), now, sink, o.d.inboxSeq);
          this.stmts.setVersion.run(sink, o.subject, o.d.timeMs, o.d.plantseq, now);
        } else if (o.kind === 'dead') {
          this.stmts.dead.run(o.error, o.code, now, sink, o.d.inboxSeq);
        } else {
          this.stmts.retry.run(o.nextAttemptMs, o.error, o.code, now, sink, o.d.inboxSeq);
        }
      }
    })();
  }

  /**
   * Puts dead letters matching the filter back to pending (a replay, e.g. after a mapping or
   * data fix). An empty filter matches nothing; pass `all: true` to replay every one.
   * Returns how many were replayed.
   */
  replayDead(filter: DeadLetterFilter & { all?: boolean }): number {
    const { all, ...rest } = filter;
    if (!all && Object.values(rest).every((v) => v === undefined)) return 0;
    const rows = this.listDeliveries({ ...rest, status: 'dead', limit: 1_000_000 });
    const now = this.now();
    let n = 0;
    this.db.transaction(() => {
      for (const r of rows) n += this.stmts.replay.run(now, r.sink, r.inboxSeq).changes;
    })();
    return n;
  }

  listDeliveries(filter: DeadLetterFilter & { status?: DeliveryStatus; limit?: number } = {}): DeliveryRow[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (sql: string, value: string | number | undefined) => {
      if (value === undefined) return;
      where.push(sql);
      args.push(value);
    };
    add('d.status = ?', filter.status);
    add('d.sink = ?', filter.sink);
    add('d.inbox_seq = ?', filter.inboxSeq);
    add('d.error_code = ?', filter.code);
    add('i.subject = ?', filter.subject);
    add('i.plant = ?', filter.plant);
    add('i.correlation_id = ?', filter.correlationId);
    args.push(filter.limit ?? 100);
    return this.db
      .prepare(
        `SELECT d.inbox_seq AS inboxSeq, d.sink, i.subject, d.status, d.attempts, d.next_attempt_ms AS nextAttemptMs,
                d.last_error AS lastError, d.error_code AS errorCode, d.record_ids AS recordIds, d.updated_ms AS updatedMs,
                i.id, i.type, i.plant, i.correlation_id AS correlationId
           FROM deliveries d JOIN inbox i ON i.seq = d.inbox_seq
          ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY d.inbox_seq LIMIT ?`,
      )
      .all(...args) as DeliveryRow[];
  }

  /** One delivery with the event it carries, for inspection. */
  getDelivery(sink: string, inboxSeq: number): (DeliveryRow & { event: unknown; receivedMs: number; agent: string }) | undefined {
    const row = this.listDeliveries({ sink, inboxSeq, limit: 1 })[0];
    if (!row) return undefined;
    const extra = this.db.prepare('SELECT body, received_ms AS receivedMs, agent FROM inbox WHERE seq = ?').get(inboxSeq) as { body: string; receivedMs: number; agent: string };
    return { ...row, event: JSON.parse(extra.body), receivedMs: extra.receivedMs, agent: extra.agent };
  }

  listIngressRejections(limit = 100): { seq: number; agent: string; plant: string; eventId: string | null; code: string; reason: string; receivedMs: number }[] {
    return this.db
      .prepare(
        'SELECT seq, agent, plant, event_id AS eventId, code, reason, received_ms AS receivedMs FROM ingress_rejections ORDER BY seq DESC LIMIT ?',
      )
      .all(limit) as never;
  }

  counts(): { events: number; pending: number; delivered: number; dead: number; ingressRejections: number } {
    const d = this.db
      .prepare(
        `SELECT coalesce(sum(status = 'pending'), 0) AS pending, coalesce(sum(status = 'delivered'), 0) AS delivered,
                coalesce(sum(status = 'dead'), 0) AS dead FROM deliveries`,
      )
      .get() as { pending: number; delivered: number; dead: number };
    const events = (this.db.prepare('SELECT count(*) AS n FROM inbox').get() as { n: number }).n;
    const rej = (this.db.prepare('SELECT count(*) AS n FROM ingress_rejections').get() as { n: number }).n;
    return { events, ...d, ingressRejections: rej };
  }

  /**
   * Forgets events received before `cutoffMs` whose deliveries are all `delivered` (dead
   * letters and pending deliveries are kept, however old), and ingress rejections older
   * than that. This bounds the inbox; it also bounds the dedupe window: an agent resending
   * an event after it was pruned gets it delivered again, which the sinks' idempotent
   * upserts make harmless. Works in slices so it never holds the write lock for long.
   */
  prune(cutoffMs: number, slice = 5000): PruneResult {
    let events = 0;
    for (;;) {
      const n = this.db.transaction(() => {
        const seqs = this.db
          .prepare(
            `SELECT i.seq FROM inbox i WHERE i.received_ms < ?
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.inbox_seq = i.seq AND d.status != 'delivered')
             ORDER BY i.seq LIMIT ?`,
          )
          .pluck()
          .all(cutoffMs, slice) as number[];
        const delDeliveries = this.db.prepare('DELETE FROM deliveries WHERE inbox_seq = ?');
        const delEvent = this.db.prepare('DELETE FROM inbox WHERE seq = ?');
        for (const seq of seqs) {
          delDeliveries.run(seq);
          delEvent.run(seq);
        }
        return seqs.length;
      })();
      events += n;
      if (n < slice) break;
    }
    const rejections = this.db.prepare('DELETE FROM ingress_rejections WHERE received_ms < ?').run(cutoffMs).changes;
    // By event time, through its index, in slices: a day older than the inbox keeps cannot be reconciled anyway.
    while (this.db.prepare('DELETE FROM ledger WHERE seq IN (SELECT seq FROM ledger WHERE time_ms < ? LIMIT ?)').run(cutoffMs, slice).changes === slice);
    return { events, rejections, versions: this.pruneVersions(cutoffMs, slice) };
  }

  private pruneVersions(cutoffMs: number, slice: number): number {
    const select = this.db.prepare<[string, string, number, number], { sink: string; subject: string }>(VERSIONS_TO_FORGET);
    const remove = this.db.prepare('DELETE FROM subject_versions WHERE sink = ? AND subject = ?');
    let after = { sink: '', subject: '' };
    let versions = 0;
    for (;;) {
      const page = this.db.transaction(() => {
        const rows = select.all(after.sink, after.subject, cutoffMs, slice);
        for (const r of rows) versions += remove.run(r.sink, r.subject).changes;
        return rows;
      })();
      if (page.length < slice) return versions;
      after = page.at(-1)!;
    }
  }

  /**
   * Pending and dead deliveries per sink, with the receipt time of the oldest pending one.
   * One pass over the deliveries index; meant for scrape time, not the hot path.
   */
  deliveryBacklog(): { sink: string; pending: number; dead: number; oldestPendingReceivedMs: number | null }[] {
    return this.db
      .prepare(
        `SELECT d.sink, coalesce(sum(d.status = 'pending'), 0) AS pending, coalesce(sum(d.status = 'dead'), 0) AS dead,
                min(CASE WHEN d.status = 'pending' THEN i.received_ms END) AS oldestPendingReceivedMs
           FROM deliveries d JOIN inbox i ON i.seq = d.inbox_seq
          WHERE d.status != 'delivered'
          GROUP BY d.sink`,
      )
      .all() as never;
  }

  /**
   * Per plant, events with a pending delivery (each event once, however many sinks wait for
   * it) and the event time of the oldest, optionally only of some types and to some sinks:
   * e.g. "milestones not yet in the CRM". Meant for scrape and API time, not the hot path.
   */
  pendingByPlant(filter: { types?: readonly string[]; sinks?: readonly string[] } = {}): { plant: string; events: number; oldestTimeMs: number }[] {
    if (filter.types?.length === 0 || filter.sinks?.length === 0) return [];
    const marks = (n: number) => Array.from({ length: n }, () => '?').join(', ');
    const where = ["d.status = 'pending'"];
    if (filter.sinks) where.push(`d.sink IN (${marks(filter.sinks.length)})`);
    if (filter.types) where.push(`i.type IN (${marks(filter.types.length)})`);
    return this.db
      .prepare(
        `SELECT i.plant, count(DISTINCT i.seq) AS events, min(i.time_ms) AS oldestTimeMs
           FROM deliveries d JOIN inbox i ON i.seq = d.inbox_seq
          WHERE ${where.join(' AND ')}
          GROUP BY i.plant`,
      )
      .all(...(filter.sinks ?? []), ...(filter.types ?? [])) as never;
  }

  /** False once closed. */
  get open(): boolean {
    return this.db.open;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
