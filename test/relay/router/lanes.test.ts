import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RelayConfig } from '../../../relay/config.js';
import { Relay } from '../../../relay/relay.js';
import { Router } from '../../../relay/router/router.js';
import { defaultSalesforceMappings } from '../../../relay/sinks/salesforce/index.js';
import { defaultObjects, SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

const MILESTONE = 'com.plantlink.production.milestone.v1';
const completionsMapping = [
  { eventType: MILESTONE, object: 'Order_Completion__c', externalIdField: 'Work_Order__c', externalId: 'data.workOrder', apply: 'latest', fields: { Completed_At__c: 'data.occurredAt', Good__c: 'data.goodQuantity.value' } },
];

function relayConfig(dir: string, crmUrl: string, routes: unknown[], sinks: unknown[] = []) {
  return {
    relay: { dataDir: join(dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
    agents: [],
    sinks: [
      { name: 'crm', kind: 'salesforce', loginUrl: crmUrl, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings },
      ...sinks,
    ],
    routes,
    delivery: { pollMs: 50, backoff: { initialMs: 50, maxMs: 200 } },
  };
}

const issuesOf = (input: unknown) => {
  const parsed = RelayConfig.safeParse(input);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('route mappings (delivery lanes)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('checks a route\'s own mappings against its sink\'s kind when the config loads, with the path to the fault', () => {
    const ok = relayConfig('/tmp/x', 'http://127.0.0.1:1', [{ name: 'completions', match: { attributes: { 'data.milestone': 'completed' } }, sinks: [{ sink: 'crm', mappings: completionsMapping }] }]);
    expect(issuesOf(ok)).toEqual([]);

    const badField = relayConfig('/tmp/x', 'http://127.0.0.1:1', [{ name: 'completions', sinks: [{ sink: 'crm', mappings: [{ ...completionsMapping[0], externalId: 'data..workOrder' }] }] }]);
    expect(issuesOf(badField)).toEqual([expect.stringMatching(/^routes\.0\.sinks\.0\.mappings\.0\.externalId: must be a dotted path/)]);

    const unnamed = relayConfig('/tmp/x', 'http://127.0.0.1:1', [{ sinks: [{ sink: 'crm', mappings: completionsMapping }] }]);
    expect(issuesOf(unnamed)).toEqual([expect.stringMatching(/^routes\.0\.name: a route whose target carries its own mappings needs a name/)]);

    const unknown = relayConfig('/tmp/x', 'http://127.0.0.1:1', [{ name: 'r', sinks: [{ sink: 'crm-us', mappings: completionsMapping }, 'nowhere'] }]);
    expect(issuesOf(unknown)).toEqual(['routes.0.sinks.0.sink: no sink named "crm-us"', 'routes.0.sinks.1: no sink named "nowhere"']);

    const webhook = { name: 'hook', kind: 'webhook', url: 'http://127.0.0.1:1/hook', secret: 'x'.repeat(32) };
    const noMappings = relayConfig('/tmp/x', 'http://127.0.0.1:1', [{ name: 'r', sinks: [{ sink: 'hook', mappings: completionsMapping }] }], [webhook]);
    expect(issuesOf(noMappings)).toEqual(['routes.0.sinks.0.mappings: a webhook sink takes no mappings']);
  });

  it('delivers a route with its own mappings through its own lane, sharing the sink\'s pacing; a rejection there blocks neither the sink\'s lane nor other keys', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const crm = await SalesforceEmulator.start({
      objects: {
        ...defaultObjects,
        Order_Completion__c: {
          Work_Order__c: { type: 'string', externalId: true, required: true, maxLength: 80 },
          Completed_At__c: { type: 'datetime' },
          Good__c: { type: 'number' },
        },
      },
    });
    cleanups.push(() => crm.stop());
    crm.addValidationRule('Order_Completion__c', { field: 'Work_Order__c', test: (v) => v !== 'WO-2', message: 'WO-2 awaits its quality sign-off' });
    const config = RelayConfig.parse(
      relayConfig(t.dir, crm.url, [
        { name: 'everything', sinks: ['crm'] },
        { name: 'completions', match: { attributes: { 'data.milestone': 'completed' } }, sinks: [{ sink: 'crm', mappings: completionsMapping }] },
      ]),
    );
    const relay = new Relay(config, { logger: testLogger() });
    await relay.start();
    cleanups.push(() => relay.stop());
    const limiters = (relay as unknown as { limiters: Map<string, unknown> }).limiters;
    expect(limiters.get('crm:completions')).toBe(limiters.get('crm'));

    const events = [
      milestoneEvent('WO-1', 'released', 1),
      milestoneEvent('WO-1', 'completed', 2, { goodQuantity: 480 }),
      milestoneEvent('WO-2', 'released', 1),
      milestoneEvent('WO-2', 'completed', 3),
      milestoneEvent('WO-3', 'completed', 4, { goodQuantity: 500 }),
    ];
    // Stored as the ingress stores them: with the lanes the router picks.
    const router = new Router(config.routes);
    expect(router.route(events[1]!).sort()).toEqual(['crm', 'crm:completions']);
    relay.inbox.store('agent-1', events.map((event) => ({ event, body: JSON.stringify(event), sinks: router.route(event) })), []);
    await expect.poll(() => crm.records('Production_Milestone__c').length, { timeout: 10_000 }).toBe(5);
    await expect.poll(() => crm.records('Order_Completion__c').map((r) => r.externalId).sort(), { timeout: 10_000 }).toEqual(['WO-1', 'WO-3']);
    expect(crm.records('Order_Completion__c').find((r) => r.externalId === 'WO-1')!.fields).toMatchObject({ Good__c: 480 });
    const dead = relay.inbox.listDeliveries({ status: 'dead', limit: 10 });
    expect(dead.map((d) => [d.sink, d.subject])).toEqual([['crm:completions', 'work-order/WO-2']]);
    expect(dead[0]!.lastError).toContain('quality sign-off');
  });
});
