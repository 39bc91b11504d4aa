/**
 * The relay's state in a PostgreSQL database shared by several relay replicas.
 *
 * Invariants (beyond the store contract in ../store.ts)
 * - Durability: every connection runs with synchronous_commit = on, and `store` resolves
 *   only after its COMMIT, so an ack never gets ahead of the WAL flush.
 * - Dedupe: the unique (id, source) constraint with ON CONFLICT DO NOTHING; two replicas
 *   storing the same event at once serialize on the index entry, one stores it.
 * - Claims: `claim` leases subject heads (oldest pending delivery of its (lane, subject)) with
 *   `FOR UPDATE SKIP LOCKED`, setting lease_owner (this instance) and lease_until. A head
 *   leased by another replica whose lease has not run out is not claimable, and nothing
 *   behind it is (it is not a head), so per-subject order holds across replicas and no two
 *   replicas hold the same delivery at once. The worker renews its leases while the sink
 *   works (`renewLeases`, every third of `leaseMs`). A replica that dies leaves its leases to
 *   run out; then the deliveries are claimable again and redelivered (sinks upsert by external
 *   id, so the target sees each record once).
 * - Outcomes are recorded only where lease_owner is still this instance; otherwise another
 *   replica took the delivery over and the outcome is discarded.
 * - subject_versions only moves forward: INSERT ... ON CONFLICT DO UPDATE ... WHERE newer, in
 *   the outcome's transaction, so concurrent outcomes can never write an older version.
 * - Lease and due times are the replicas' clocks (epoch ms): replicas need synchronized
 *   clocks, and `leaseMs` far above their skew.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import { toTracedDelivery, type DeliveryRowRaw, type EventRow } from '../../inbox/history.js';
import { salesOrderOf, subjectsForKey, type PruneResult, type SubjectAt } from '../store.js';
import type {
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
import { migrate } from './schema.js';

export interface PostgresStoreOptions {
  url: string;
  poolSize?: number;
  leaseMs?: number;
  /** This instance's name in lease_owner; unique per process by default. */
  owner?: string;
  now?: () => number;
}

const PRUNE_SLICE = 5000;
/** Subjects looked up per `eventsAt` query. */
const EVENTS_AT_SLICE = 1000;
/** An inbox row as `EventRow`; `table`: the inbox's alias in a join. */
const eventColumns = (table = 'inbox') =>
  `${table}.seq, ${table}.id, ${table}.source, ${table}.type, ${table}.subject, ${table}.plant, ${table}.agent, ${table}.time_ms AS "timeMs",
   ${table}.plantseq, ${table}.correlation_id AS "correlationId", ${table}.sales_order AS "salesOrder", ${table}.received_ms AS "receivedMs", ${table}.body`;
/** /readyz follows the database within about this long. */
const PING_EVERY_MS = 2000;
const PING_TIMEOUT_MS = 3000;

/** bigint (20) and numeric (1700, from sum()) as numbers: every value we keep fits in 2^53. */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

export class PostgresStore implements RelayStore {
  readonly kind = 'postgres' as const;
  readonly owner: string;
  private readonly pool: pg.Pool;
  private readonly leaseMs: number;
  readonly leaseRenewalMs: number;
  private readonly now: () => number;
  private closed = false;
  private lastPing: { ok: true } | { ok: false; reason: string } = { ok: true };
  private pinger: NodeJS.Timeout | undefined;

  /** Creates the pool (no connection yet); `init` connects and migrates. */
  constructor(options: PostgresStoreOptions) {
    this.owner = options.owner ?? `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
    this.leaseMs = options.leaseMs ?? 60_000;
    // Three renewals per lease: one lost or late round trip does not lose the lease.
    this.leaseRenewalMs = Math.max(100, Math.floor(this.leaseMs / 3));
    this.now = options.now ?? Date.now;
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      // The ack to an agent means "committed and flushed": never let a server default weaken that.
      options: '-c synchronous_commit=on',
      // pg types getTypeParser as an overload set our one function cannot name; it is what pg calls.
      types: types as never,
      application_name: `plantlink-relay ${this.owner}`.slice(0, 63),
    });
    // A client losing its server (restart, failover, a killed backend) must not crash the
    // process. Idle in the pool, the pool reports it here and drops it. Checked out (a
    // transaction between two statements, or waiting on one), pg also emits 'error' on the
    // client itself, where the pool listens no more: the listener every new client gets below
    // catches that; the statement in progress fails on its own and the caller retries.
    this.pool.on('error', () => undefined);
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /** A store that is connected, its schema created or migrated. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    try {
      await store.init();
    } catch (e) {
      await store.close().catch(() => undefined);
      throw e;
    }
    return store;
  }

  /** Connects and creates or migrates the schema (safe when replicas start at once). */
  async init(): Promise<void> {
    try {
      await migrate(this.pool);
    } catch (e) {
      throw new Error(`opening the PostgreSQL store: ${(e as Error).message}`, { cause: e });
    }
    this.pinger ??= setInterval(() => void this.ping(), PING_EVERY_MS);
    this.pinger.unref();
  }

  /** Whether the server answered the last ping (every PING_EVERY_MS, within PING_TIMEOUT_MS). */
  health(): { ok: true } | { ok: false; reason: string } {
    return this.lastPing;
  }

  private async ping(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.pool.query('SELECT 1'),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS))),
      ]);
      this.lastPing = { ok: true };
    } catch (e) {
      if (!this.closed) this.lastPing = { ok: false, reason: `PostgreSQL store unreachable: ${(e as Error).message}` };
    } finally {
      clearTimeout(timer);
    }
  }

  get open(): boolean {
    return !this.closed;
  }

  private async tx<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }

  async store(agent: string, events: readonly IncomingEvent[], rejections: readonly IngressRejection[]): Promise<StoreResult> {
    const now = this.now();
    return this.tx(async (c) => {
      let stored = 0;
      if (events.length > 0) {
        const col = <T>(f: (e: IncomingEvent, i: number) => T) => events.map(f);
        // One statement for the batch; WITH ORDINALITY keeps seq in batch order (per-subject order).
        const inserted = await c.query<{ seq: number; id: string; source: string }>(
          `INSERT INTO inbox (source, id, type, subject, plant, agent, time_ms, plantseq, correlation_id, body, received_ms, sales_order)
           SELECT source, id, type, subject, plant, $11, time_ms, plantseq, correlation_id, body, $12, sales_order
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::int[], $13::text[])
                  AS b(source, id, type, subject, plant, time_ms, plantseq, correlation_id, body, ord, sales_order)
            ORDER BY ord
           ON CONFLICT (id, source) DO NOTHING
           RETURNING seq, id, source`,
          [
            col((e) => e.event.source),
            col((e) => e.event.id),
            col((e) => e.event.type),
            col((e) => e.event.subject),
            col((e) => e.event.plant),
            col((e) => Date.parse(e.event.time)),
            col((e) => e.event.plantseq),
            col((e) => e.event.correlationid),
            col((e) => e.body),
            col((_, i) => i),
            agent,
            now,
            col((e) => salesOrderOf(e.event)),
          ],
        );
        stored = inserted.rowCount ?? 0;
        const byKey = new Map(events.map((e) => [`${e.event.id}\u0000${e.event.source}`, e]));
        const seqs: number[] = [];
        const lanes: string[] = [];
        const subjects: string[] = [];
        for (const row of inserted.rows) {
          const e = byKey.get(`${row.id}\u0000${row.source}`)!;
          // Order and versions are per plant and subject, as in the SQLite inbox.
          for (const sink of e.sinks) {
            seqs.push(row.seq);
            lanes.push(sink);
            subjects.push(`${e.event.plant}/${e.event.subject}`);
          }
        }
        if (seqs.length > 0) {
          await c.query(
            `INSERT INTO deliveries (inbox_seq, sink, subject, status, attempts, next_attempt_ms, updated_ms)
             SELECT seq, sink, subject, 'pending', 0, 0, $4 FROM unnest($1::bigint[], $2::text[], $3::text[]) AS d(seq, sink, subject)`,
            [seqs, lanes, subjects, now],
          );
        }
      }
      if (rejections.length > 0) {
        // A refused event's id or reason may quote the agent's bytes, NUL included, which
        // PostgreSQL text cannot hold: replaced, so the refusal is still recorded.
        const text = (v: string) => v.replaceAll('\u0000', '\uFFFD');
        await c.query(
          `INSERT INTO ingress_rejections (agent, plant, event_id, code, reason, body, received_ms)
           SELECT agent, plant, event_id, code, reason, body, $7
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS r(agent, plant, event_id, code, reason, body)`,
          [
            rejections.map((r) => text(r.agent)),
            rejections.map((r) => text(r.plant)),
            rejections.map((r) => (r.id === undefined ? null : text(r.id))),
            rejections.map((r) => text(r.code)),
            rejections.map((r) => text(r.reason)),
            rejections.map((r) => text(r.body)),
            now,
          ],
        );
      }
      return { stored, duplicates: events.length - stored };
    });
  }

  async claim(lane: string, limit: number): Promise<ClaimedDelivery[]> {
    const now = this.now();
    // Heads only: a delivery with an older pending one in its subject waits, whoever holds
    // that one. SKIP LOCKED passes over heads another replica is claiming this instant; the
    // lease condition over those it already holds (re-checked on the locked row version).
    const { rows } = await this.pool.query<ClaimedDelivery & { vTime: number | null; vSeq: number | null }>(
      `WITH heads AS (
         SELECT d.sink, d.inbox_seq FROM deliveries d
          WHERE d.sink = $1 AND d.status = 'pending' AND d.next_attempt_ms <= $2
            AND (d.lease_until IS NULL OR d.lease_until <= $2)
            AND NOT EXISTS (SELECT 1 FROM deliveries e
                             WHERE e.sink = $1 AND e.status = 'pending' AND e.subject = d.subject AND e.inbox_seq < d.inbox_seq)
          ORDER BY d.inbox_seq LIMIT $3
          FOR UPDATE OF d SKIP LOCKED)
       UPDATE deliveries d SET lease_owner = $4, lease_until = $5
         FROM heads h, inbox i
        WHERE d.sink = h.sink AND d.inbox_seq = h.inbox_seq AND i.seq = d.inbox_seq
       RETURNING d.inbox_seq AS "inboxSeq", d.subject, d.attempts, i.body, i.time_ms AS "timeMs", i.plantseq,
                 (SELECT v.time_ms FROM subject_versions v WHERE v.sink = d.sink AND v.subject = d.subject) AS "vTime",
                 (SELECT v.plantseq FROM subject_versions v WHERE v.sink = d.sink AND v.subject = d.subject) AS "vSeq"`,
      [lane, now, limit, this.owner, now + this.leaseMs],
    );
    return rows
      .sort((a, b) => a.inboxSeq - b.inboxSeq)
      .map(({ vTime, vSeq, ...d }) => ({
        ...d,
        stale: vTime !== null && vSeq !== null && (d.timeMs < vTime || (d.timeMs === vTime && d.plantseq < vSeq)),
      }));
  }

  async renewLeases(lane: string, inboxSeqs: readonly number[]): Promise<number> {
    if (inboxSeqs.length === 0) return 0;
    const { rowCount } = await this.pool.query(
      `UPDATE deliveries SET lease_until = $4
        WHERE sink = $1 AND inbox_seq = ANY($2::bigint[]) AND status = 'pending' AND lease_owner = $3`,
      [lane, inboxSeqs, this.owner, this.now() + this.leaseMs],
    );
    return rowCount ?? 0;
  }

  async record(lane: string, outcomes: readonly DeliveryOutcome[]): Promise<RecordResult> {
    if (outcomes.length === 0) return { recorded: 0, discarded: 0 };
    const now = this.now();
    return this.tx(async (c) => {
      let recorded = 0;
      // Ours only: where the lease changed hands, the new holder decides (and redelivers).
      const mine = 'sink = $1 AND inbox_seq = $2 AND status = \'pending\' AND lease_owner = $3';
      for (const o of outcomes) {
        let n: number;
        if (o.kind === 'delivered') {
          n = (await c.query(
            `UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, record_ids = $4, last_error = NULL, error_code = NULL,
                    updated_ms = $5, lease_owner = NULL, lease_until = NULL WHERE ${mine}`,
            [lane, o.d.inboxSeq, this.owner, JSON.stringify(o.recordIds), now],
          )).rowCount ?? 0;
          if (n > 0) {
            // Every delivered outcome touches seen_ms (a stale one too); only a newer event moves the version.
            const newer = '(excluded.time_ms > v.time_ms OR (excluded.time_ms = v.time_ms AND excluded.plantseq > v.plantseq))';
            await c.query(
              `INSERT INTO subject_versions AS v (sink, subject, time_ms, plantseq, seen_ms) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (sink, subject) DO UPDATE SET
                 time_ms = CASE WHEN ${newer} THEN excluded.time_ms ELSE v.time_ms END,
                 plantseq = CASE WHEN ${newer} THEN excluded.plantseq ELSE v.plantseq END,
                 seen_ms = GREATEST(v.seen_ms, excluded.seen_ms)`,
              [lane, o.subject, o.d.timeMs, o.d.plantseq, now],
            );
          }
        } else if (o.kind === 'dead') {
          n = (await c.query(
            `UPDATE deliveries SET status = 'dead', attempts = attempts + 1, last_error = $4, error_code = $5, updated_ms = $6,
                    lease_owner = NULL, lease_until = NULL WHERE ${mine}`,
            [lane, o.d.inboxSeq, this.owner, o.error, o.code, now],
          )).rowCount ?? 0;
        } else {
          n = (await c.query(
            `UPDATE deliveries SET attempts = attempts + 1, next_attempt_ms = $4, last_error = $5, error_code = $6, updated_ms = $7,
                    lease_owner = NULL, lease_until = NULL WHERE ${mine}`,
            [lane, o.d.inboxSeq, this.owner, o.nextAttemptMs, o.error, o.code, now],
          )).rowCount ?? 0;
        }
        recorded += n;
      }
      return { recorded, discarded: outcomes.length - recorded };
    });
  }

  async nextDueMs(lane: string): Promise<number | undefined> {
    // A head held by another replica becomes ours to take when its lease runs out.
    const { rows } = await this.pool.query<{ t: number | null }>(
      `SELECT min(greatest(d.next_attempt_ms, coalesce(d.lease_until, 0))) AS t FROM deliveries d
        WHERE d.sink = $1 AND d.status = 'pending'
          AND NOT EXISTS (SELECT 1 FROM deliveries e
                           WHERE e.sink = $1 AND e.status = 'pending' AND e.subject = d.subject AND e.inbox_seq < d.inbox_seq)`,
      [lane],
    );
    return rows[0]?.t ?? undefined;
  }

  async listDeliveries(filter: DeadLetterFilter & { status?: DeliveryStatus; limit?: number } = {}): Promise<DeliveryRow[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (column: string, value: string | number | undefined) => {
      if (value === undefined) return;
      args.push(value);
      where.push(`${column} = $${args.length}`);
    };
    add('d.status', filter.status);
    add('d.sink', filter.sink);
    add('d.inbox_seq', filter.inboxSeq);
    add('d.error_code', filter.code);
    add('i.subject', filter.subject);
    add('i.plant', filter.plant);
    add('i.correlation_id', filter.correlationId);
    args.push(filter.limit ?? 100);
    const { rows } = await this.pool.query<DeliveryRow>(
      `SELECT d.inbox_seq AS "inboxSeq", d.sink, i.subject, d.status, d.attempts, d.next_attempt_ms AS "nextAttemptMs",
              d.last_error AS "lastError", d.error_code AS "errorCode", d.record_ids AS "recordIds", d.updated_ms AS "updatedMs",
              i.id, i.type, i.plant, i.correlation_id AS "correlationId"
         FROM deliveries d JOIN inbox i ON i.seq = d.inbox_seq
        ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY d.inbox_seq, d.sink LIMIT $${args.length}`,
      args,
    );
    return rows;
  }

  async getDelivery(lane: string, inboxSeq: number): Promise<DeliveryDetail | undefined> {
    const row = (await this.listDeliveries({ sink: lane, inboxSeq, limit: 1 }))[0];
    if (!row) return undefined;
    const extra = (await this.pool.query<{ body: string; receivedMs: number; agent: string }>(
      'SELECT body, received_ms AS "receivedMs", agent FROM inbox WHERE seq = $1',
      [inboxSeq],
    )).rows[0]!;
    return { ...row, event: JSON.parse(extra.body), receivedMs: extra.receivedMs, agent: extra.agent };
  }

  async replayDead(filter: DeadLetterFilter & { all?: boolean }): Promise<number> {
    const { all, ...rest } = filter;
    if (!all && Object.values(rest).every((v) => v === undefined)) return 0;
    const rows = await this.listDeliveries({ ...rest, status: 'dead', limit: 1_000_000 });
    if (rows.length === 0) return 0;
    const { rowCount } = await this.pool.query(
      `UPDATE deliveries d SET status = 'pending', next_attempt_ms = 0, updated_ms = $3, lease_owner = NULL, lease_until = NULL
         FROM unnest($1::text[], $2::bigint[]) AS r(sink, seq)
        WHERE d.sink = r.sink AND d.inbox_seq = r.seq AND d.status = 'dead'`,
      [rows.map((r) => r.sink), rows.map((r) => r.inboxSeq), this.now()],
    );
    return rowCount ?? 0;
  }

  async listIngressRejections(limit = 100): Promise<IngressRejectionRow[]> {
    const { rows } = await this.pool.query<IngressRejectionRow>(
      `SELECT seq, agent, plant, event_id AS "eventId", code, reason, received_ms AS "receivedMs"
         FROM ingress_rejections ORDER BY seq DESC LIMIT $1`,
      [limit],
    );
    return rows;
  }

  async counts(): Promise<StoreCounts> {
    const { rows } = await this.pool.query<StoreCounts>(
      `SELECT (SELECT count(*) FROM inbox) AS events,
              count(*) FILTER (WHERE status = 'pending') AS pending,
              count(*) FILTER (WHERE status = 'delivered') AS delivered,
              count(*) FILTER (WHERE status = 'dead') AS dead,
              (SELECT count(*) FROM ingress_rejections) AS "ingressRejections"
         FROM deliveries`,
    );
    return rows[0]!;
  }

  async deliveryBacklog(): Promise<DeliveryBacklogRow[]> {
    const { rows } = await this.pool.query<DeliveryBacklogRow>(
      `SELECT d.sink, count(*) FILTER (WHERE d.status = 'pending') AS pending, count(*) FILTER (WHERE d.status = 'dead') AS dead,
              min(i.received_ms) FILTER (WHERE d.status = 'pending') AS "oldestPendingReceivedMs"
         FROM deliveries d JOIN inbox i ON i.seq = d.inbox_seq
        WHERE d.status != 'delivered'
        GROUP BY d.sink`,
    );
    return rows;
  }

  async pendingByPlant(filter: { types?: readonly string[]; sinks?: readonly string[] } = {}): Promise<PlantPendingRow[]> {
    if (filter.types?.length === 0 || filter.sinks?.length === 0) return [];
    const { rows } = await this.pool.query<PlantPendingRow>(
      `SELECT i.plant, count(DISTINCT i.seq) AS events, min(i.time_ms) AS "oldestTimeMs"
         FROM deliveries d JOIN inbox i ON i.seq = d.inbox_seq
        WHERE d.status = 'pending' AND ($1::text[] IS NULL OR d.sink = ANY($1)) AND ($2::text[] IS NULL OR i.type = ANY($2))
        GROUP BY i.plant`,
      [filter.sinks ?? null, filter.types ?? null],
    );
    return rows;
  }

  async findEvents(q: EventQuery): Promise<TracedEvent[]> {
    const where: string[] = ['seq > $1'];
    const args: unknown[] = [q.afterSeq ?? 0];
    const arg = (v: unknown) => {
      args.push(v);
      return `$${args.length}`;
    };
    if (q.key !== undefined) {
      const k = arg(q.key);
      where.push(`(subject = ANY(${arg(subjectsForKey(q.key))}::text[]) OR sales_order = ${k} OR correlation_id = ${k} OR id = ${k})`);
    }
    if (q.plant !== undefined) where.push(`plant = ${arg(q.plant)}`);
    if (q.fromMs !== undefined) where.push(`time_ms >= ${arg(q.fromMs)}`);
    if (q.toMs !== undefined) where.push(`time_ms < ${arg(q.toMs)}`);
    const { rows } = await this.pool.query<EventRow>(`SELECT ${eventColumns()} FROM inbox WHERE ${where.join(' AND ')} ORDER BY seq ${q.newestFirst ? 'DESC' : ''} LIMIT ${arg(q.limit)}`, args);
    return this.traced(rows);
  }

  async eventsAt(versions: readonly SubjectAt[]): Promise<TracedEvent[]> {
    const out: TracedEvent[] = [];
    // One round trip per slice instead of one per subject (a day can touch thousands of work orders).
    for (let i = 0; i < versions.length; i += EVENTS_AT_SLICE) {
      const slice = versions.slice(i, i + EVENTS_AT_SLICE);
      const { rows } = await this.pool.query<EventRow>(
        `SELECT ${eventColumns('i')}
           FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(subject, plant, time_ms)
           JOIN inbox i ON i.subject = k.subject AND i.plant = k.plant AND i.time_ms = k.time_ms
          ORDER BY i.seq`,
        [slice.map((v) => v.subject), slice.map((v) => v.plant), slice.map((v) => v.timeMs)],
      );
      out.push(...(await this.traced(rows)));
    }
    return out;
  }

  /** Parses the rows' bodies and attaches every lane's delivery, in one more query. */
  private async traced(rows: EventRow[]): Promise<TracedEvent[]> {
    if (rows.length === 0) return [];
    const deliveries = await this.pool.query<DeliveryRowRaw>(
      `SELECT inbox_seq AS "inboxSeq", sink AS lane, status, attempts, updated_ms AS "updatedMs", next_attempt_ms AS "nextAttemptMs",
              record_ids AS "recordIds", last_error AS "lastError", error_code AS "errorCode"
         FROM deliveries WHERE inbox_seq = ANY($1::bigint[]) ORDER BY sink`,
      [rows.map((r) => r.seq)],
    );
    const bySeq = new Map<number, TracedEvent['deliveries']>();
    for (const d of deliveries.rows) {
      let list = bySeq.get(d.inboxSeq);
      if (!list) bySeq.set(d.inboxSeq, (list = []));
      list.push(toTracedDelivery(d));
    }
    return rows.map(({ body, ...r }) => ({ ...r, event: JSON.parse(body) as Record<string, unknown>, deliveries: bySeq.get(r.seq) ?? [] }));
  }

  async resend(lane: string, inboxSeqs: readonly number[]): Promise<number> {
    if (inboxSeqs.length === 0) return 0;
    const { rowCount } = await this.pool.query(
      `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_ms = 0, last_error = NULL, error_code = NULL,
              lease_owner = NULL, lease_until = NULL, updated_ms = $3
        WHERE sink = $1 AND inbox_seq = ANY($2::bigint[]) AND status = 'delivered'`,
      [lane, inboxSeqs, this.now()],
    );
    return rowCount ?? 0;
  }

  async appliedVersions(lane: string, orderKeys: readonly string[]): Promise<AppliedVersion[]> {
    if (orderKeys.length === 0) return [];
    const { rows } = await this.pool.query<AppliedVersion>(
      'SELECT subject AS "orderKey", time_ms AS "timeMs", plantseq FROM subject_versions WHERE sink = $1 AND subject = ANY($2::text[])',
      [lane, orderKeys],
    );
    return rows;
  }

  async addLedger(agent: string, plant: string, entries: readonly LedgerEntry[]): Promise<number> {
    if (entries.length === 0) return 0;
    const col = <T>(f: (e: LedgerEntry) => T) => entries.map(f);
    const { rowCount } = await this.pool.query(
      `INSERT INTO ledger (plant, agent, source, id, type, subject, time_ms, status, received_ms)
       SELECT $1, $2, source, id, type, subject, time_ms, status, $9
         FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[]) AS l(source, id, type, subject, time_ms, status)
       ON CONFLICT (source, id) DO UPDATE SET status = 'stored' WHERE ledger.status = 'dropped' AND excluded.status = 'stored'`,
      [plant, agent, col((e) => e.source), col((e) => e.id), col((e) => e.type), col((e) => e.subject), col((e) => e.timeMs), col((e) => e.status), this.now()],
    );
    return rowCount ?? 0;
  }

  async ledger(q: LedgerQuery): Promise<LedgerRow[]> {
    const args: unknown[] = [q.afterSeq ?? 0, q.fromMs, q.toMs];
    let plant = '';
    if (q.plant !== undefined) {
      args.push(q.plant);
      plant = ` AND plant = $${args.length}`;
    }
    args.push(q.limit);
    const { rows } = await this.pool.query<LedgerRow>(
      `SELECT seq, plant, agent, source, id, type, subject, time_ms AS "timeMs", status, received_ms AS "receivedMs"
         FROM ledger WHERE seq > $1 AND time_ms >= $2 AND time_ms < $3${plant} ORDER BY seq LIMIT $${args.length}`,
      args,
    );
    return rows;
  }

  async prune(cutoffMs: number): Promise<PruneResult> {
    let events = 0;
    for (;;) {
      // Slices, so no transaction holds many row locks for long.
      const n = await this.tx(async (c) => {
        const { rows } = await c.query<{ seq: number }>(
          `SELECT i.seq FROM inbox i WHERE i.received_ms < $1
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.inbox_seq = i.seq AND d.status != 'delivered')
           ORDER BY i.seq LIMIT $2 FOR UPDATE SKIP LOCKED`,
          [cutoffMs, PRUNE_SLICE],
        );
        const seqs = rows.map((r) => r.seq);
        if (seqs.length === 0) return 0;
        await c.query('DELETE FROM deliveries WHERE inbox_seq = ANY($1::bigint[])', [seqs]);
        await c.query('DELETE FROM inbox WHERE seq = ANY($1::bigint[])', [seqs]);
        return seqs.length;
      });
      events += n;
      if (n < PRUNE_SLICE) break;
    }
    const { rowCount } = await this.pool.query('DELETE FROM ingress_rejections WHERE received_ms < $1', [cutoffMs]);
    // By event time, through its index, in slices: a day older than the inbox keeps cannot be reconciled anyway.
    while (((await this.pool.query('DELETE FROM ledger WHERE seq IN (SELECT seq FROM ledger WHERE time_ms < $1 LIMIT $2)', [cutoffMs, PRUNE_SLICE])).rowCount ?? 0) === PRUNE_SLICE);
    return { events, rejections: rowCount ?? 0, versions: await this.pruneVersions(cutoffMs) };
  }

  /**
   * As the SQLite inbox does (VERSIONS_TO_FORGET in relay/inbox/inbox.ts says why), in key
   * order, one slice at a time. The DELETE checks again: a replica recording a delivery of the
   * subject meanwhile (seen_ms moves) keeps its row. A delivery stored by another replica while
   * the statement runs is not seen by it; its event then counts as the subject's newest, which
   * is right unless it is older than a version quiet for the whole window.
   */
  private async pruneVersions(cutoffMs: number): Promise<number> {
    const quiet = `v.seen_ms < $1
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.sink = v.sink AND d.subject = v.subject AND d.status = 'pending')
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.sink = v.sink AND d.subject = v.subject AND d.status = 'dead')`;
    let after: [string, string] = ['', ''];
    let versions = 0;
    for (;;) {
      const { rows } = await this.pool.query<{ sink: string; subject: string }>(
        `SELECT v.sink, v.subject FROM subject_versions v WHERE (v.sink, v.subject) > ($2, $3) AND ${quiet} ORDER BY v.sink, v.subject LIMIT $4`,
        [cutoffMs, after[0], after[1], PRUNE_SLICE],
      );
      if (rows.length > 0) {
        const { rowCount } = await this.pool.query(
          `DELETE FROM subject_versions v USING unnest($2::text[], $3::text[]) AS k(sink, subject)
            WHERE v.sink = k.sink AND v.subject = k.subject AND ${quiet}`,
          [cutoffMs, rows.map((r) => r.sink), rows.map((r) => r.subject)],
        );
        versions += rowCount ?? 0;
      }
      if (rows.length < PRUNE_SLICE) return versions;
      after = [rows.at(-1)!.sink, rows.at(-1)!.subject];
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pinger);
    await this.pool.end();
  }

  /**
   * Ends every connection at once without settling anything: the leases this instance holds
   * stay until they run out, as if the process had died. For crash tests.
   */
  async abandon(): Promise<void> {
    this.closed = true;
    clearInterval(this.pinger);
    await this.pool.end().catch(() => undefined);
  }
}
