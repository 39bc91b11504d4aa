/** The store contract against both stores: the embedded SQLite inbox and PostgreSQL. */
import { join } from 'node:path';
import pg_ from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONCURRENT_INDEXES, SCHEMA_VERSION, STEPS } from '../../../relay/store/postgres/schema.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';
import { PostgresStore } from '../../../relay/store/postgres/postgres-store.js';
import { SqliteStore } from '../../../relay/store/sqlite/sqlite-store.js';
import { startPostgres, type PostgresCluster } from '../../helpers/postgres.js';
import { tempDir } from '../../helpers/temp.js';
import { storeContract } from './store-contract.js';

const { Pool } = pg_;

storeContract('sqlite', async (now) => {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'inbox.sqlite');
  let store = new SqliteStore(path, now);
  return {
    store,
    async reopen() {
      await store.close();
      return (store = new SqliteStore(path, now));
    },
    async cleanup() {
      await store.close();
      cleanup();
    },
  };
});

let pg: PostgresCluster;
let databases = 0;
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  await pg?.destroy();
});

storeContract('postgres', async (now) => {
  const url = await pg.createDatabase(`contract_${++databases}`);
  let store = await PostgresStore.open({ url, now, poolSize: 3 });
  return {
    store,
    async reopen() {
      await store.close();
      return (store = await PostgresStore.open({ url, now, poolSize: 3 }));
    },
    async cleanup() {
      await store.close();
    },
  };
});

describe('PostgreSQL schema migration', () => {
  it('takes a version-1 database to the current version, keeping its events, and refuses a newer one', async () => {
    const url = await pg.createDatabase(`migration_${++databases}`);
    const pool = new Pool({ connectionString: url });
    try {
      await pool.query(STEPS[0]!);
      await pool.query('CREATE TABLE schema_version (version integer NOT NULL); INSERT INTO schema_version VALUES (1)');
      const e = milestoneEvent('WO-1', 'released', 1);
      await pool.query(
        `INSERT INTO inbox (source, id, type, subject, plant, agent, time_ms, plantseq, correlation_id, body, received_ms) VALUES ($1, $2, $3, $4, $5, 'agent-1', $6, $7, $8, $9, 5)`,
        [e.source, e.id, e.type, e.subject, e.plant, Date.parse(e.time), e.plantseq, e.correlationid, JSON.stringify(e)],
      );
      await pool.query(`INSERT INTO subject_versions VALUES ('crm', 'P1/work-order/WO-1', $1, $2)`, [Date.parse(e.time), e.plantseq]);
      const before = Date.now();
      const store = await PostgresStore.open({ url, poolSize: 2 });
      try {
        // A version from before, and one an older replica inserts during a rolling upgrade (no seen_ms), count as seen now.
        await pool.query(`INSERT INTO subject_versions (sink, subject, time_ms, plantseq) VALUES ('crm', 'P1/work-order/WO-2', 1, 1)`);
        const seen = (await pool.query<{ seen: string }>('SELECT seen_ms AS seen FROM subject_versions ORDER BY subject')).rows.map((r) => Number(r.seen));
        expect(seen).toHaveLength(2);
        for (const ms of seen) expect(Math.abs(ms - before)).toBeLessThan(60_000);
        expect((await store.findEvents({ key: 'WO-1', limit: 5 })).map((x) => [x.id, x.salesOrder])).toEqual([[e.id, null]]);
        expect(await store.addLedger('agent-1', 'P1', [{ id: e.id, source: e.source, type: e.type, subject: e.subject, timeMs: 1, status: 'stored' }])).toBe(1);
        expect((await store.prune(before - 120_000)).versions).toBe(0);
        expect((await store.prune(Date.now() + 120_000)).versions).toBe(2);
      } finally {
        await store.close();
      }
      expect((await pool.query('SELECT version FROM schema_version')).rows).toEqual([{ version: SCHEMA_VERSION }]);
      // The big tables' indexes, built concurrently after the migration, are there and valid.
      const built = await pool.query<{ name: string }>(
        'SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indisvalid AND c.relname = ANY($1::text[])',
        [CONCURRENT_INDEXES.map((x) => x.name)],
      );
      expect(built.rows.map((r) => r.name).sort()).toEqual(CONCURRENT_INDEXES.map((x) => x.name).sort());
      await pool.query('UPDATE schema_version SET version = 99');
      await expect(PostgresStore.open({ url, poolSize: 1 })).rejects.toThrow(/schema version 99.*upgrade this replica/);
    } finally {
      await pool.end();
    }
  });
});
