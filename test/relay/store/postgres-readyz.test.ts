/**
 * /readyz of a relay on the PostgreSQL store follows the database: a crashed server makes the
 * relay not ready (with the reason), a restarted one ready again, without restarting the relay.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RelayConfig } from '../../../relay/config.js';
import { Relay } from '../../../relay/relay.js';
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
});
