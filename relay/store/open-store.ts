/** Builds the configured store. Synchronous: a PostgreSQL store connects in its `init()`. */
import { join } from 'node:path';
import type { StoreConfig } from './config.js';
import { postgresUrl } from './config.js';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { RelayStore } from './store.js';

export function createStore(config: StoreConfig, dataDir: string): RelayStore {
  switch (config.kind) {
    case 'sqlite':
      return new SqliteStore(join(dataDir, 'inbox.sqlite'));
    case 'postgres':
      return new PostgresStore({ url: postgresUrl(config), poolSize: config.poolSize, leaseMs: config.leaseMs });
  }
}
