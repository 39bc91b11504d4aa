/** The store contract against both stores: the embedded SQLite inbox and PostgreSQL. */
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { PostgresStore } from '../../../relay/store/postgres/postgres-store.js';
import { SqliteStore } from '../../../relay/store/sqlite/sqlite-store.js';
import { startPostgres, type PostgresCluster } from '../../helpers/postgres.js';
import { tempDir } from '../../helpers/temp.js';
import { storeContract } from './store-contract.js';

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
