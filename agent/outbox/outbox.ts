/**
 * The agent's store-and-forward outbox: SQLite (better-sqlite3), WAL, synchronous=FULL.
 *
 * Invariants
 * - An event is in the outbox from the moment `append` returns `committed` until the relay
 *   acknowledged it (`ack`) or refused it (`reject`, which moves it to `rejected` with its
 *   reason). Nothing else removes a row. A full outbox never drops silently: the default
 *   policy refuses the append (`paused`) and raises an alarm.
 * - `append` writes the events AND the producing source's progress state in one
 *   transaction: after kill -9 at any instant both or neither are on disk.
 * - `plantseq` is assigned at append, strictly increasing, never reused (the high-water mark
 *   lives in `meta`, so deleting acknowledged rows cannot roll it back).
 * - Dedupe: (source, id) is unique among pending rows; a repeat append of the same fact is
 *   counted as a duplicate and consumes no sequence number.
 * - The ledger (for reconciliation: what this plant produced, per day) gets one row per event
 *   newly committed (`stored`) or dropped by the `drop_newest` policy (`dropped`), in the
 *   append's own transaction: a paused or rolled-back append writes none, a duplicate none.
 *   Acks never remove ledger rows; `pruneLedger` removes those whose event time is older than
 *   `ledgerRetentionDays`, and `trimLedger` the oldest (by seq) beyond `ledgerMaxRows`, sent or
 *   not (an old relay never takes them; a row pruned unsent is simply never sent). A row's
 *   time is the event time truncated to whole ms, as the event's `time` is. `ledger_sent` in
 *   `meta` is the ledger seq up to which the relay stored them; it only moves forward.
 *   Ledger seqs are AUTOINCREMENT, so pruning the newest row never lets a seq be reused below
 *   the cursor.
 * - Every event carries `readtime` (when the source read the fact, `EventDraft.readAtMs`, else
 *   the append time) and `outboxtime` (the append time). Neither goes into the event id.
 *
 * Durability: synchronous=FULL with one transaction per append batch or ack frame (never one
 * fsync per event), so a committed append survives power loss, not just a process crash.
 *
 * On-disk format (schema version 1):
 *   outbox(seq PK, id, source, type, subject, created_ms, bytes, body)  body = full CloudEvent JSON
 *   rejected(seq PK, ..., code, reason, rejected_ms)                     operator-visible quarantine
 *   source_state(source, key, value)                                     sources' progress, JSON
 *   ledger(seq PK AUTOINCREMENT, id, source, type, subject, time_ms, status)
 *                                   source = the source's name (not its URI); time_ms = event time;
 *                                   status 'stored' | 'dropped'; indexed on time_ms for pruning.
 *                                   Added to version 1 files in place (CREATE IF NOT EXISTS).
 *   meta(key PK, value)                                                  schema_version, next_seq, ledger_sent
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { openDatabase } from '../../protocols/sqlite.js';
import { deriveEventId } from '../../protocols/events/event-id.js';
import { MAX_EVENT_BYTES, sourceUri, type CloudEventV1 } from '../../protocols/events/envelope.js';
import { validateData } from '../../protocols/events/registry.js';
import type { LedgerEntryWire } from '../../protocols/uplink/frames.js';
import type { CommitOutcome, EventDraft, StateWrite } from '../sources/source.js';

const SCHEMA_VERSION = 1;

export type OnFullPolicy = 'pause' | 'drop_newest';

export interface OutboxOptions {
  path: string;
  plant: string;
  /** Pending body bytes allowed before the on-full policy applies. */
  maxBytes: number;
  /** Pending events allowed before the on-full policy applies. */
  maxEvents: number;
  onFull: OnFullPolicy;
  /** Fraction of the quota pending must fall under before paused sources resume (hysteresis). */
  resumeBelow?: number;
  /** Days the ledger keeps an entry, by event time (default 35). */
  ledgerRetentionDays?: number;
  /** Rows the ledger keeps at most; `trimLedger` removes the oldest beyond it (default 2,000,000). */
  ledgerMaxRows?: number;
  now?: () => number;
}

export interface PendingEvent {
  seq: number;
  id: string;
  body: string;
}

export interface RejectedEvent {
  seq: number;
  id: string;
  source: string;
  type: string;
  subject: string;
  code: string;
  reason: string;
  rejectedMs: number;
  body: string;
}

/** One ledger row: an event this outbox committed or dropped (`source` is the event's source URI), as a ledger frame carries it, with its row id. */
export type LedgerRecord = LedgerEntryWire & { seq: number };

export const DEFAULT_LEDGER_RETENTION_DAYS = 35;
export const DEFAULT_LEDGER_MAX_ROWS = 2_000_000;
const DAY_MS = 86_400_000;

export interface OutboxStats {
  pending: number;
  pendingBytes: number;
  oldestPendingMs: number | undefined;
  rejected: number;
  full: boolean;
  dropped: number;
  nextSeq: number;
}

interface OutboxEvents {
  appended: [count: number, source: string];
  full: [reason: string];
  resumed: [];
  /** An event failed validation at append and went straight to `rejected`. */
  quarantined: [event: { id: string; code: string; reason: string; source: string }];
  /** Events removed after the relay committed them, counted per source name. */
  acked: [bySource: ReadonlyMap<string, number>];
  /** Events the relay refused, moved to `rejected`, counted per source name. */
  rejected: [bySource: ReadonlyMap<string, number>];
}

export class Outbox extends EventEmitter<OutboxEvents> {
  private readonly db: Database.Database;
  private readonly now: () => number;
  private pendingCount = 0;
  private pendingBytes = 0;
  private nextSeq = 1;
  private full = false;
  private dropped = 0;
  private ledgerSent = 0;
  /** Source URI -> source name, for per-source counts on ack. */
  private readonly sourceNames = new Map<string, string>();
  private readonly stmts;

  constructor(private readonly options: OutboxOptions) {
    super();
    this.now = options.now ?? Date.now;
    mkdirSync(dirname(options.path), { recursive: true });
    this.db = openDatabase(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.stmts = {
      insert: this.db.prepare(
        'INSERT OR IGNORE INTO outbox (seq, id, source, type, subject, created_ms, bytes, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      setMeta: this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      putState: this.db.prepare(
        'INSERT INTO source_state (source, key, value) VALUES (?, ?, ?) ON CONFLICT(source, key) DO UPDATE SET value = excluded.value',
      ),
      deleteState: this.db.prepare('DELETE FROM source_state WHERE source = ? AND key = ?'),
      getState: this.db.prepare<[string, string], { value: string }>('SELECT value FROM source_state WHERE source = ? AND key = ?'),
      pending: this.db.prepare<[number, number], { seq: number; id: string; body: string }>(
        'SELECT seq, id, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?',
      ),
      deleteOne: this.db.prepare<[number], { bytes: number; source: string }>('DELETE FROM outbox WHERE seq = ? RETURNING bytes, source'),
      moveToRejected: this.db.prepare(
        `INSERT OR REPLACE INTO rejected (seq, id, source, type, subject, created_ms, body, code, reason, rejected_ms)
         SELECT seq, id, source, type, subject, created_ms, body, ?, ?, ? FROM outbox WHERE seq = ?`,
      ),
      insertRejected: this.db.prepare(
        `INSERT OR REPLACE INTO rejected (seq, id, source, type, subject, created_ms, body, code, reason, rejected_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      oldest: this.db.prepare<[], { created_ms: number }>('SELECT created_ms FROM outbox ORDER BY seq LIMIT 1'),
      rejectedCount: this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM rejected'),
      insertLedger: this.db.prepare('INSERT INTO ledger (id, source, type, subject, time_ms, status) VALUES (?, ?, ?, ?, ?, ?)'),
      readLedger: this.db.prepare<[number, number], LedgerRecord>(
        'SELECT seq, id, source, type, subject, time_ms AS timeMs, status FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?',
      ),
      pruneLedger: this.db.prepare('DELETE FROM ledger WHERE seq IN (SELECT seq FROM ledger WHERE time_ms < ? ORDER BY time_ms LIMIT ?)'),
      ledgerSpan: this.db.prepare<[], { lo: number | null; hi: number | null }>('SELECT min(seq) AS lo, max(seq) AS hi FROM ledger'),
      /** The seq of the newest row beyond the cap: the (cap+1)-th newest. */
      ledgerCapBoundary: this.db.prepare<[number], { seq: number }>('SELECT seq FROM ledger ORDER BY seq DESC LIMIT 1 OFFSET ?'),
      trimLedger: this.db.prepare<[number, number], { seq: number }>(
        'DELETE FROM ledger WHERE seq IN (SELECT seq FROM ledger WHERE seq <= ? ORDER BY seq LIMIT ?) RETURNING seq',
      ),
      listRejected: this.db.prepare<[number], RejectedEvent>(
        `SELECT seq, id, source, type, subject, code, reason, rejected_ms AS rejectedMs, body FROM rejected ORDER BY seq LIMIT ?`,
      ),
    };
    const totals = this.db.prepare('SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM outbox').get() as { n: number; b: number };
    this.pendingCount = totals.n;
    this.pendingBytes = totals.b;
    this.full = this.overQuota(0, 0);
  }

  private migrate(): void {
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL, type TEXT NOT NULL, subject TEXT NOT NULL,
        created_ms INTEGER NOT NULL, bytes INTEGER NOT NULL, body TEXT NOT NULL);
      CREATE UNIQUE INDEX IF NOT EXISTS outbox_dedupe ON outbox (id, source);
      CREATE TABLE IF NOT EXISTS rejected (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL, type TEXT NOT NULL, subject TEXT NOT NULL,
        created_ms INTEGER NOT NULL, body TEXT NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL, rejected_ms INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS source_state (source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (source, key));
      CREATE TABLE IF NOT EXISTS ledger (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, source TEXT NOT NULL, type TEXT NOT NULL, subject TEXT NOT NULL,
        time_ms INTEGER NOT NULL, status TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS ledger_time ON ledger (time_ms);
    `);
    const version = this.getMeta('schema_version');
    if (version !== undefined && Number(version) !== SCHEMA_VERSION) {
      throw new Error(`outbox ${this.options.path} has schema version ${version}; this build reads ${SCHEMA_VERSION}`);
    }
    this.db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
    this.nextSeq = Number(this.getMeta('next_seq') ?? '1');
    this.ledgerSent = Number(this.getMeta('ledger_sent') ?? '0');
  }

  private getMeta(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  private overQuota(extraEvents: number, extraBytes: number): boolean {
    return this.pendingCount + extraEvents > this.options.maxEvents || this.pendingBytes + extraBytes > this.options.maxBytes;
  }

  /**
   * Appends events and the producing source's state in one durable transaction.
   * Events that fail schema validation or exceed the size limit are quarantined in
   * `rejected` (with the reason) in the same transaction: they can be fixed and replayed,
   * and they never block the good events beside them.
   */
  append(sourceName: string, drafts: readonly EventDraft[], state: readonly StateWrite[] = []): CommitOutcome {
    const now = this.now();
    const source = sourceUri(this.options.plant, sourceName);
    const outboxtime = new Date(now).toISOString();
    const built: { id: string; type: string; subject: string; timeMs: number; body: string; invalid?: { code: string; reason: string } }[] = [];
    let bytes = 0;
    for (const draft of drafts) {
      const id = deriveEventId(draft.fact);
      const event: CloudEventV1 = {
        specversion: '1.0',
        id,
        source,
        type: draft.type,
        subject: draft.subject,
        time: new Date(draft.fact.occurredAtMs).toISOString(),
        datacontenttype: 'application/json',
        plant: this.options.plant,
        plantseq: 1, // placeholder, set below once we know it is not a duplicate
        correlationid: draft.correlationId ?? id,
        readtime: draft.readAtMs === undefined || !Number.isFinite(draft.readAtMs) ? outboxtime : new Date(draft.readAtMs).toISOString(),
        outboxtime,
        data: draft.data,
      };
      // The envelope is ours; the data comes from source mappings and config, so check it.
      const check = validateData(draft.type, draft.data);
      const body = JSON.stringify(event);
      const size = Buffer.byteLength(body);
      const invalid = !check.ok
        ? { code: check.code, reason: check.reason }
        : size > MAX_EVENT_BYTES
          ? { code: 'event_too_large', reason: `event is ${size} bytes; the limit is ${MAX_EVENT_BYTES}` }
          : undefined;
      // A mapping may give a fractional ms (microseconds); the ledger keeps whole ms, truncated as `time` is.
      built.push({ id, type: draft.type, subject: draft.subject, timeMs: Math.trunc(draft.fact.occurredAtMs), body, ...(invalid ? { invalid } : {}) });
      if (!invalid) bytes += size;
    }

    const goodCount = built.filter((b) => !b.invalid).length;
    // An empty outbox always takes a batch, or one batch bigger than the quota would pause forever.
    if (goodCount > 0 && this.pendingCount > 0 && this.overQuota(goodCount, bytes)) {
      if (!this.full) {
        this.full = true;
        this.emit('full', this.quotaReason());
      }
      if (this.options.onFull === 'pause') return { status: 'paused', reason: this.quotaReason() };
    }
    const dropAll = goodCount > 0 && this.pendingCount > 0 && this.options.onFull === 'drop_newest' && this.overQuota(goodCount, bytes);

    let appended = 0;
    let duplicates = 0;
    let addedBytes = 0;
    let dropped = 0;
    let nextSeq = this.nextSeq;
    const quarantined: { id: string; code: string; reason: string; source: string }[] = [];
    this.db.transaction(() => {
      for (const b of built) {
        if (b.invalid) {
          const seq = nextSeq++;
          this.stmts.insertRejected.run(seq, b.id, source, b.type, b.subject, now, b.body, b.invalid.code, b.invalid.reason, now);
          quarantined.push({ id: b.id, ...b.invalid, source: sourceName });
          continue;
        }
        if (dropAll) {
          dropped++;
          this.stmts.insertLedger.run(b.id, sourceName, b.type, b.subject, b.timeMs, 'dropped');
          continue;
        }
        const seq = nextSeq;
        // The seq is spliced into the JSON text rather than re-serialising the event.
        const body = b.body.replace('"plantseq":1,', `"plantseq":${seq},`);
        const bytes = Buffer.byteLength(body);
        const info = this.stmts.insert.run(seq, b.id, source, b.type, b.subject, now, bytes, body);
        if (info.changes === 1) {
          this.stmts.insertLedger.run(b.id, sourceName, b.type, b.subject, b.timeMs, 'stored');
          nextSeq++;
          appended++;
          addedBytes += bytes;
        } else {
          duplicates++;
        }
      }
      for (const s of state) {
        if (s.value === undefined) this.stmts.deleteState.run(sourceName, s.key);
        else this.stmts.putState.run(sourceName, s.key, JSON.stringify(s.value));
      }
      this.stmts.setMeta.run('next_seq', String(nextSeq));
    })();
    // Counters move only once the transaction committed; a rollback (disk full) leaves them true.
    this.nextSeq = nextSeq;
    this.pendingCount += appended;
    this.pendingBytes += addedBytes;
    this.dropped += dropped;
    for (const q of quarantined) this.emit('quarantined', q);
    if (appended > 0) this.emit('appended', appended, sourceName);
    return { status: 'committed', appended, duplicates };
  }

  loadState<T>(sourceName: string, key: string): T | undefined {
    const row = this.stmts.getState.get(sourceName, key);
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  /** Pending events after `afterSeq`, in sequence order, at most `maxEvents` and (past the first) `maxBytes` of bodies. */
  readPending(afterSeq: number, maxEvents: number, maxBytes: number): PendingEvent[] {
    const rows = this.stmts.pending.all(afterSeq, maxEvents);
    let total = 0;
    let i = 0;
    for (; i < rows.length; i++) {
      total += Buffer.byteLength(rows[i]!.body) + 1;
      if (total > maxBytes && i > 0) break;
    }
    return rows.slice(0, i);
  }

  /** Removes events the relay committed. Safe to repeat. */
  ack(seqs: readonly number[]): void {
    if (seqs.length === 0) return;
    const removed = this.db.transaction(() => {
      let count = 0;
      let bytes = 0;
      const bySource = new Map<string, number>();
      for (const seq of seqs) {
        const row = this.stmts.deleteOne.get(seq);
        if (row) {
          count++;
          bytes += row.bytes;
          this.countSource(bySource, row.source);
        }
      }
      return { count, bytes, bySource };
    })();
    this.pendingCount -= removed.count;
    this.pendingBytes -= removed.bytes;
    if (removed.count > 0) this.emit('acked', removed.bySource);
    this.maybeResume();
  }

  private countSource(bySource: Map<string, number>, uri: string): void {
    const name = this.sourceNames.get(uri) ?? decodeURIComponent(uri.slice(uri.lastIndexOf('/') + 1));
    this.sourceNames.set(uri, name);
    bySource.set(name, (bySource.get(name) ?? 0) + 1);
  }

  /** Moves events the relay refused into `rejected`, with the relay's reason. */
  reject(items: readonly { seq: number; code: string; reason: string }[]): void {
    if (items.length === 0) return;
    const now = this.now();
    const removed = this.db.transaction(() => {
      let count = 0;
      let bytes = 0;
      const bySource = new Map<string, number>();
      for (const item of items) {
        this.stmts.moveToRejected.run(item.code, item.reason, now, item.seq);
        const row = this.stmts.deleteOne.get(item.seq);
        if (row) {
          count++;
          bytes += row.bytes;
          this.countSource(bySource, row.source);
        }
      }
      return { count, bytes, bySource };
    })();
    this.pendingCount -= removed.count;
    this.pendingBytes -= removed.bytes;
    if (removed.count > 0) this.emit('rejected', removed.bySource);
    this.maybeResume();
  }

  private maybeResume(): void {
    if (!this.full) return;
    const f = this.options.resumeBelow ?? 0.9;
    if (this.pendingCount <= this.options.maxEvents * f && this.pendingBytes <= this.options.maxBytes * f) {
      this.full = false;
      this.emit('resumed');
    }
  }

  private quotaReason(): string {
    return `outbox full: ${this.pendingCount} events / ${this.pendingBytes} bytes pending (limits ${this.options.maxEvents} events / ${this.options.maxBytes} bytes)`;
  }

  /** Ledger rows after `afterSeq`, oldest first, at most `limit`. */
  readLedger(afterSeq: number, limit: number): LedgerRecord[] {
    const rows = this.stmts.readLedger.all(afterSeq, limit);
    const uris = new Map<string, string>();
    for (const r of rows) {
      let uri = uris.get(r.source);
      if (uri === undefined) uris.set(r.source, (uri = sourceUri(this.options.plant, r.source)));
      r.source = uri;
    }
    return rows;
  }

  /** The ledger seq up to which the relay stored the ledger (0: nothing yet). */
  ledgerCursor(): number {
    return this.ledgerSent;
  }

  /** Records, durably, that the relay stored the ledger up to `upto`; never moves the cursor back. */
  ackLedger(upto: number): void {
    if (upto <= this.ledgerSent) return;
    this.stmts.setMeta.run('ledger_sent', String(upto));
    this.ledgerSent = upto;
  }

  /**
   * Removes up to `limit` ledger rows whose event time is older than the retention (bounded
   * work per call: call it periodically). Returns how many it removed.
   */
  pruneLedger(limit = 10_000): number {
    const days = this.options.ledgerRetentionDays ?? DEFAULT_LEDGER_RETENTION_DAYS;
    return this.stmts.pruneLedger.run(this.now() - days * DAY_MS, limit).changes;
  }

  /**
   * Removes up to `limit` of the oldest ledger rows (by seq) beyond `ledgerMaxRows` (bounded
   * work per call: call it periodically). Returns how many it removed, and how many of those
   * the relay had not stored yet (they will never be sent).
   */
  trimLedger(limit = 10_000): { pruned: number; unsent: number } {
    const max = this.options.ledgerMaxRows ?? DEFAULT_LEDGER_MAX_ROWS;
    // Seqs only grow, so the span bounds the row count: the usual case costs two index lookups,
    // not a count of millions of rows.
    const { lo, hi } = this.stmts.ledgerSpan.get() ?? { lo: null, hi: null };
    if (lo === null || hi === null || hi - lo + 1 <= max) return { pruned: 0, unsent: 0 };
    const boundary = this.stmts.ledgerCapBoundary.get(max);
    if (!boundary) return { pruned: 0, unsent: 0 };
    const removed = this.stmts.trimLedger.all(boundary.seq, limit);
    return { pruned: removed.length, unsent: removed.filter((r) => r.seq > this.ledgerSent).length };
  }

  listRejected(limit = 100): RejectedEvent[] {
    return this.stmts.listRejected.all(limit);
  }

  stats(): OutboxStats {
    return {
      pending: this.pendingCount,
      pendingBytes: this.pendingBytes,
      oldestPendingMs: this.stmts.oldest.get()?.created_ms,
      rejected: this.stmts.rejectedCount.get()?.n ?? 0,
      full: this.full,
      dropped: this.dropped,
      nextSeq: this.nextSeq,
    };
  }

  /** False once closed (or if the database was closed under us). */
  get open(): boolean {
    return this.db.open;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
