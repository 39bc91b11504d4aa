/**
 * The PostgreSQL store's schema and its migration at start.
 *
 * Invariants
 * - Replicas may start at once: the whole migration runs in one transaction under a
 *   transaction-level advisory lock, so exactly one creates the tables and the others wait,
 *   then find them (DDL is transactional in PostgreSQL).
 * - `schema_version` holds one row. A database at a newer version than this build knows is
 *   refused (an old replica must not write to a newer layout); an older one is migrated by the
 *   steps below, each run once, in order.
 * - Times are epoch milliseconds (bigint), as in the SQLite inbox.
 * - Indexes on the big tables are built after the transaction, concurrently (CONCURRENT_INDEXES).
 */
import type { Pool } from 'pg';

/** Arbitrary constant: the advisory lock key of plantlink's schema migration. */
const MIGRATION_LOCK = 0x706c616e; // "plan"

/** Step n takes the schema from version n to n + 1. */
export const STEPS: readonly string[] = [
  `
  CREATE TABLE inbox (
    seq bigserial PRIMARY KEY, source text NOT NULL, id text NOT NULL, type text NOT NULL,
    subject text NOT NULL, plant text NOT NULL, agent text NOT NULL, time_ms bigint NOT NULL,
    plantseq bigint NOT NULL, correlation_id text NOT NULL, body text NOT NULL, received_ms bigint NOT NULL,
    CONSTRAINT inbox_dedupe UNIQUE (id, source));
  CREATE INDEX inbox_received ON inbox (received_ms);
  CREATE TABLE deliveries (
    inbox_seq bigint NOT NULL REFERENCES inbox(seq), sink text NOT NULL, subject text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')), attempts integer NOT NULL,
    next_attempt_ms bigint NOT NULL, last_error text, error_code text, record_ids text, updated_ms bigint NOT NULL,
    -- The replica holding the delivery while it is with the sink, and until when.
    lease_owner text, lease_until bigint,
    PRIMARY KEY (sink, inbox_seq));
  -- Subject heads: the oldest pending delivery per (sink, subject).
  CREATE INDEX deliveries_pending_subject ON deliveries (sink, subject, inbox_seq) WHERE status = 'pending';
  -- Claims walk pending deliveries oldest first and stop after LIMIT rows.
  CREATE INDEX deliveries_pending_seq ON deliveries (sink, inbox_seq) WHERE status = 'pending';
  CREATE INDEX deliveries_status ON deliveries (status, sink);
  CREATE TABLE subject_versions (
    sink text NOT NULL, subject text NOT NULL, time_ms bigint NOT NULL, plantseq bigint NOT NULL, PRIMARY KEY (sink, subject));
  CREATE TABLE ingress_rejections (
    seq bigserial PRIMARY KEY, agent text NOT NULL, plant text NOT NULL, event_id text, code text NOT NULL,
    reason text NOT NULL, body text NOT NULL, received_ms bigint NOT NULL);
  `,
  // 2: the event trace (search by business key, sales order, correlation id) and the agents' ledgers.
  `
  ALTER TABLE inbox ADD COLUMN sales_order text;
  CREATE TABLE ledger (
    seq bigserial PRIMARY KEY, plant text NOT NULL, agent text NOT NULL, source text NOT NULL, id text NOT NULL,
    type text NOT NULL, subject text NOT NULL, time_ms bigint NOT NULL, status text NOT NULL CHECK (status IN ('stored', 'dropped')),
    received_ms bigint NOT NULL,
    CONSTRAINT ledger_entry UNIQUE (source, id));
  CREATE INDEX ledger_time ON ledger (time_ms);
  `,
  // 3: when a delivery of each subject was last recorded, so versions can be pruned. A stable
  // default: existing rows take the migration's time without a table rewrite, and rows an
  // older replica inserts during a rolling upgrade take their insert time.
  `
  ALTER TABLE subject_versions ADD COLUMN seen_ms bigint NOT NULL DEFAULT (extract(epoch from now()) * 1000)::bigint;
  `,
];

export const SCHEMA_VERSION = STEPS.length;

/**
 * Indexes on tables that may be large and busy, built after the migration's transaction with
 * CREATE INDEX CONCURRENTLY: replicas still running the previous version keep reading and
 * writing while they build (inside the transaction they would wait behind its lock). Until
 * they exist, the queries they serve (trace search, reconciliation, pruning) are slower, never
 * wrong.
 */
export const CONCURRENT_INDEXES: readonly { name: string; sql: string }[] = [
  { name: 'inbox_subject', sql: 'ON inbox (subject)' },
  { name: 'inbox_correlation', sql: 'ON inbox (correlation_id)' },
  { name: 'inbox_sales_order', sql: 'ON inbox (sales_order) WHERE sales_order IS NOT NULL' },
  { name: 'inbox_time', sql: 'ON inbox (time_ms)' },
  { name: 'deliveries_seq', sql: 'ON deliveries (inbox_seq)' },
  // The version prune's "nothing dead" check per subject; dead letters are kept until handled, so they pile up.
  { name: 'deliveries_dead_subject', sql: "ON deliveries (sink, subject) WHERE status = 'dead'" },
];

export async function migrate(pool: Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)');
    const row = (await client.query<{ version: number }>('SELECT version FROM schema_version')).rows[0];
    const current = row?.version ?? 0;
    if (current > SCHEMA_VERSION) throw new Error(`the relay database has schema version ${current}; this build knows up to ${SCHEMA_VERSION}: upgrade this replica`);
    for (let v = current; v < SCHEMA_VERSION; v++) await client.query(STEPS[v]!);
    if (!row) await client.query('INSERT INTO schema_version (version) VALUES ($1)', [SCHEMA_VERSION]);
    else if (current !== SCHEMA_VERSION) await client.query('UPDATE schema_version SET version = $1', [SCHEMA_VERSION]);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
  await buildIndexes(pool);
}

/**
 * Builds the missing CONCURRENT_INDEXES, one replica at a time: the one that gets the session
 * advisory lock builds, the others go on without waiting. (Waiting would deadlock: a
 * concurrent build waits for every open transaction, a waiter's included.) A build interrupted
 * before (the replica died) leaves an invalid index behind: dropped and built again.
 */
async function buildIndexes(pool: Pool): Promise<void> {
  const client = await pool.connect();
  try {
    const locked = (await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK + 1])).rows[0]?.locked;
    if (!locked) return;
    try {
      const { rows } = await client.query<{ name: string; valid: boolean }>(
        `SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE c.relname = ANY($1::text[]) AND pg_table_is_visible(c.oid)`,
        [CONCURRENT_INDEXES.map((x) => x.name)],
      );
      const state = new Map(rows.map((r) => [r.name, r.valid]));
      for (const index of CONCURRENT_INDEXES) {
        if (state.get(index.name) === true) continue;
        if (state.get(index.name) === false) await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index.name}`);
        await client.query(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${index.name} ${index.sql}`);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK + 1]);
    }
  } finally {
    client.release();
  }
}
