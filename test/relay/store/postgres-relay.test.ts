/**
 * A relay on the PostgreSQL store, end to end through its own surfaces: it delivers, a refused
 * event becomes a dead letter the operator API, the metrics and `plantlink relay dead-letters`
 * all see in the shared database, and a replay after the fix lands it once.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RelayConfig } from '../../../relay/config.js';
import { hashToken } from '../../../relay/ingress/agent-auth.js';
import { Relay } from '../../../relay/relay.js';
import { defaultSalesforceMappings } from '../../../relay/sinks/salesforce/index.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { startPostgres, type PostgresCluster } from '../../helpers/postgres.js';
import { scrape } from '../../helpers/prometheus.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../../installers/plantlink.ts');
const OPERATOR = 'operator-token-0123456789';

let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
}, 60_000);
afterAll(async () => {
  await cluster?.destroy();
});

describe('relay on the PostgreSQL store', () => {
  it('delivers, dead-letters, lists through the API, metrics and CLI, and replays once', { timeout: 40_000 }, async () => {
    const t = tempDir();
    const crm = await SalesforceEmulator.start();
    const url = await cluster.createDatabase('relay_api');
    const raw = {
      relay: { dataDir: join(t.dir, 'relay'), listen: { host: '127.0.0.1', port: 0 }, store: { kind: 'postgres', url, poolSize: 3, leaseMs: 5000 } },
      agents: [],
      sinks: [{ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings }],
      routes: [{ sinks: ['crm'] }],
      api: { tokens: [{ name: 'olga', role: 'operator', tokenHash: hashToken(OPERATOR) }] },
      delivery: { pollMs: 50, backoff: { initialMs: 50, maxMs: 200 } },
    };
    const configFile = join(t.dir, 'relay.yaml');
    writeFileSync(configFile, JSON.stringify(raw));
    const relay = new Relay(RelayConfig.parse(raw), { logger: testLogger() });
    try {
      await relay.start();
      expect(() => relay.inbox).toThrow(/postgres/);
      const base = `http://127.0.0.1:${relay.port}`;
      const call = async (path: string, init: RequestInit = {}) =>
        (await fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' } })).json() as Promise<Record<string, unknown>>;
      crm.addValidationRule('Production_Milestone__c', { field: 'Work_Order__c', test: (v) => v !== 'WO-BAD', message: 'WO-BAD is on credit hold' });
      const events = [milestoneEvent('WO-BAD', 'released', 1), milestoneEvent('WO-OK', 'released', 1), milestoneEvent('WO-OK', 'started', 2)];
      expect(await relay.store.store('agent-1', events.map((event) => ({ event, body: JSON.stringify(event), sinks: ['crm'] })), [])).toEqual({ stored: 3, duplicates: 0 });

      await vi.waitFor(async () => expect((await call('/v1/status')).counts).toEqual({ events: 3, pending: 0, delivered: 2, dead: 1, ingressRejections: 0 }), { timeout: 10_000, interval: 50 });
      const { deadLetters } = (await call('/v1/dead-letters')) as { deadLetters: { inboxSeq: number; subject: string; errorCode: string }[] };
      expect(deadLetters).toMatchObject([{ subject: 'work-order/WO-BAD', errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' }]);
      expect(await call(`/v1/dead-letters/crm/${deadLetters[0]!.inboxSeq}`)).toMatchObject({ event: { data: { workOrder: 'WO-BAD' } } });
      const m = await scrape(`${base}/metrics`, OPERATOR);
      expect(m.value('plantlink_relay_dead_letters', { sink: 'crm' })).toBe(1);
      expect(m.value('plantlink_relay_deliveries_pending', { sink: 'crm' })).toBe(0);

      // The CLI reads the same database, from another process, while the relay runs.
      const listed = JSON.parse((await run(process.execPath, ['--import', 'tsx', CLI, 'relay', 'dead-letters', '--config', configFile, '--json'])).stdout) as unknown[];
      expect(listed).toMatchObject([{ subject: 'work-order/WO-BAD', inboxSeq: deadLetters[0]!.inboxSeq }]);

      crm.clearValidationRules();
      expect(await call('/v1/dead-letters/replay', { method: 'POST', body: JSON.stringify({ code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' }) })).toEqual({ replayed: 1 });
      await vi.waitFor(() => expect(crm.records('Production_Milestone__c')).toHaveLength(3), { timeout: 10_000, interval: 50 });
      // The outcome commits just after the CRM answered.
      await vi.waitFor(async () => expect((await call('/v1/status')).counts).toMatchObject({ delivered: 3, dead: 0, pending: 0 }), { timeout: 5_000, interval: 50 });
      // WO-OK ended on its newest milestone.
      expect(crm.record('Production_Order__c', 'WO-OK')?.fields).toMatchObject({ Status__c: 'started' });
    } finally {
      await relay.stop();
      await crm.stop();
      t.cleanup();
    }
  });
});
