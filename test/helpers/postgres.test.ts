import pg from 'pg';
import { afterAll, expect, it } from 'vitest';
import { startPostgres, type PostgresCluster } from './postgres.js';

let cluster: PostgresCluster | undefined;
afterAll(async () => cluster?.destroy());

it('starts a throwaway PostgreSQL cluster on a loopback port that survives an immediate shutdown with its committed data', async () => {
  cluster = await startPostgres();
  const url = await cluster.createDatabase('helper_check');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('CREATE TABLE t (n int)');
  await client.query('INSERT INTO t VALUES (42)');
  await client.end();
  await cluster.crash();
  await cluster.start();
  const again = new pg.Client({ connectionString: url });
  await again.connect();
  const { rows } = await again.query('SELECT n FROM t');
  await again.end();
  expect(rows).toEqual([{ n: 42 }]);
}, 60_000);
