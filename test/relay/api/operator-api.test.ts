import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RelayConfig } from '../../../relay/config.js';
import { hashToken } from '../../../relay/ingress/agent-auth.js';
import { Relay } from '../../../relay/relay.js';
import { defaultSalesforceMappings } from '../../../relay/sinks/salesforce/index.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

let crm: SalesforceEmulator;
let relay: Relay;
let cleanup: () => void;
let base: string;
const OPERATOR = 'operator-token-0123456789';
const VIEWER = 'viewer-token-0123456789';

beforeEach(async () => {
  const t = tempDir();
  cleanup = t.cleanup;
  crm = await SalesforceEmulator.start();
  const config = RelayConfig.parse({
    relay: { dataDir: join(t.dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
    agents: [],
    sinks: [{ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings }],
    routes: [{ sinks: ['crm'] }],
    api: { tokens: [{ name: 'olga', role: 'operator', tokenHash: hashToken(OPERATOR) }, { name: 'vic', role: 'viewer', tokenHash: hashToken(VIEWER) }] },
    delivery: { pollMs: 50, backoff: { initialMs: 50, maxMs: 200 } },
  });
  relay = new Relay(config, { logger: testLogger() });
  await relay.start();
  base = `http://127.0.0.1:${relay.port}`;
  crm.addValidationRule('Production_Milestone__c', { field: 'Work_Order__c', test: (v) => v !== 'WO-BAD', message: 'WO-BAD is on credit hold' });
  const events = [milestoneEvent('WO-BAD', 'released', 1), milestoneEvent('WO-OK', 'released', 1)];
  relay.inbox.store('agent-1', events.map((event) => ({ event, body: JSON.stringify(event), sinks: ['crm'] })), []);
});
afterEach(async () => {
  await relay.stop();
  await crm.stop();
  cleanup();
});

const call = (path: string, token?: string, init: RequestInit = {}) =>
  fetch(`${base}${path}`, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' } });

async function waitForDead(): Promise<{ inboxSeq: number; subject: string; errorCode: string }[]> {
  for (let i = 0; i < 200; i++) {
    const body = (await (await call('/v1/dead-letters', VIEWER)).json()) as { deadLetters: { inboxSeq: number; subject: string; errorCode: string }[] };
    if (body.deadLetters.length > 0) return body.deadLetters;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no dead letter appeared');
}

describe('operator API', () => {
  it('answers health checks without a token, everything else only with one', async () => {
    expect((await call('/healthz')).status).toBe(200);
    expect((await call('/readyz')).status).toBe(200);
    expect((await call('/v1/status')).status).toBe(401);
    expect((await call('/v1/status', 'wrong-token')).status).toBe(401);
    const status = (await (await call('/v1/status', VIEWER)).json()) as { state: string; sinks: { sink: string }[] };
    expect(status).toMatchObject({ state: 'RUNNING', sinks: [{ sink: 'crm' }] });
  });

  it('lists, filters and inspects dead letters; a viewer may not replay; an operator replay after the fix lands once', async () => {
    const dead = await waitForDead();
    expect(dead).toMatchObject([{ subject: 'work-order/WO-BAD', errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' }]);
    const filtered = (await (await call('/v1/dead-letters?code=NO_SUCH_CODE', VIEWER)).json()) as { deadLetters: unknown[] };
    expect(filtered.deadLetters).toHaveLength(0);
    const one = (await (await call(`/v1/dead-letters/crm/${dead[0]!.inboxSeq}`, VIEWER)).json()) as { event: { data: { workOrder: string } }; lastError: string };
    expect(one.event.data.workOrder).toBe('WO-BAD');
    expect(one.lastError).toContain('credit hold');

    const denied = await call('/v1/dead-letters/replay', VIEWER, { method: 'POST', body: JSON.stringify({ all: true }) });
    expect(denied.status).toBe(403);
    expect((await call('/v1/dead-letters/replay', OPERATOR, { method: 'POST', body: '{"nonsense": 1}' })).status).toBe(400);

    crm.clearValidationRules();
    const replay = await call('/v1/dead-letters/replay', OPERATOR, { method: 'POST', body: JSON.stringify({ code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' }) });
    expect(await replay.json()).toEqual({ replayed: 1 });
    for (let i = 0; i < 200 && crm.records('Production_Milestone__c').length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(crm.records('Production_Milestone__c').map((r) => r.fields.Work_Order__c).sort()).toEqual(['WO-BAD', 'WO-OK']);
    expect(relay.inbox.counts()).toMatchObject({ dead: 0, pending: 0, delivered: 2 });
  });
});
