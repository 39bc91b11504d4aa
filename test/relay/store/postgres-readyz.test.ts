/**
 * The relay on the PostgreSQL store when the database goes away. /readyz follows the database:
 * a crashed server makes the relay not ready (with the reason), a restarted one ready again,
 * without restarting the relay. A connection lost in the middle of a transaction fails that
 * call only, never the process.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RelayConfig } from '../../../relay/config.js';
import { Relay } from '../../../relay/relay.js';
import { PostgresStore } from '../../../relay/store/postgres/postgres-store.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';
import { startPostgres, type PostgresCluster } from '../../helpers/postgres.js';
import { tempDir, testLogger } from '../../helpers/temp.js';

let cluster: PostgresCluster;
let relay: Relay | undefined;
let cleanup: () => void;

beforeAll(async () => {
  cluster = await startPostgres();
}, 60_000);

afterAll(async () => {
  await relay?.stop().catch(() => undefined);
  await cluster?.destroy();
  cleanup?.();
});

describe('relay readiness on PostgreSQL', () => {
  it('is not ready while the database is down, says why, and is ready again once it is back', { timeout: 60_000 }, async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const url = await cluster.createDatabase('readyz');
    relay = new Relay(
      RelayConfig.parse({
        relay: { dataDir: join(t.dir, 'relay'), listen: { host: '127.0.0.1', port: 0 }, store: { kind: 'postgres', url, poolSize: 2 } },
        agents: [],
        sinks: [{ name: 'hook', kind: 'webhook', url: 'http://127.0.0.1:9/unused', secret: 'a-webhook-secret-0123456789abcdef0123456789' }],
        routes: [{ sinks: ['hook'] }],
      }),
      { logger: testLogger() },
    );
    await relay.start();
    const readyz = async () => {
      const r = await fetch(`http://127.0.0.1:${relay!.port}/readyz`);
      return { status: r.status, body: (await r.json()) as { reason?: string } };
    };
    expect((await readyz()).status).toBe(200);
    await cluster.crash();
    await vi.waitFor(async () => expect(await readyz()).toMatchObject({ status: 503, body: { reason: expect.stringContaining('PostgreSQL store unreachable') } }), { timeout: 20_000, interval: 200 });
    expect((await fetch(`http://127.0.0.1:${relay.port}/healthz`)).status).toBe(200); // alive, just not ready
    await cluster.start();
    await vi.waitFor(async () => expect((await readyz()).status).toBe(200), { timeout: 20_000, interval: 200 });
  });

  it('a connection killed mid-transaction fails that call with an error, not the process, and the next call works', { timeout: 60_000 }, async () => {
    const url = await cluster.createDatabase('killed');
    const store = await PostgresStore.open({ url, poolSize: 2 });
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    try {
      // The store's INSERT waits on this lock, inside its transaction, on a checked-out client.
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE');
      const event = milestoneEvent('WO-1', 'released', 1);
      const put = () => store.store('agent-1', [{ event, body: JSON.stringify(event), sinks: ['crm'] }], []);
      const waiting = put();
      const settled = waiting.then(() => 'stored', (e: Error) => e.message);
      const blocked = async () =>
        (await locker.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'plantlink-relay%' AND wait_event_type = 'Lock'")).rows;
      await vi.waitFor(async () => expect(await blocked()).toHaveLength(1), { timeout: 20_000, interval: 50 });
      await locker.query('SELECT pg_terminate_backend($1)', [(await blocked())[0]!.pid]);
      expect(await settled).toMatch(/terminat/i);
      await locker.query('COMMIT');
      expect(await put()).toEqual({ stored: 1, duplicates: 0 });
      expect(await store.counts()).toMatchObject({ events: 1, pending: 1 });
    } finally {
      await locker.end();
      await store.close();
    }
  });
});
