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
  CREATE INDEX inbox_subject ON inbox (subject);
  CREATE INDEX inbox_correlation ON inbox (correlation_id);
  CREATE INDEX inbox_sales_order ON inbox (sales_order) WHERE sales_order IS NOT NULL;
  CREATE INDEX inbox_time ON inbox (time_ms);
  CREATE INDEX deliveries_seq ON deliveries (inbox_seq);
  CREATE TABLE ledger (
    seq bigserial PRIMARY KEY, plant text NOT NULL, agent text NOT NULL, source text NOT NULL, id text NOT NULL,
    type text NOT NULL, subject text NOT NULL, time_ms bigint NOT NULL, status text NOT NULL CHECK (status IN ('stored', 'dropped')),
    received_ms bigint NOT NULL,
    CONSTRAINT ledger_entry UNIQUE (source, id));
  CREATE INDEX ledger_time ON ledger (time_ms);
  `,
];

export const SCHEMA_VERSION = STEPS.length;

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
}
