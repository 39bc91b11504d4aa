/**
 * The delivery worker against the real Salesforce sink and the Salesforce emulator over
 * loopback HTTP: outcomes recorded per event, order per subject, dead letters, replay,
 * outages, and the stale guard.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CloudEventV1 } from '../../../protocols/events/envelope.js';
import { DeliveryConfig } from '../../../relay/delivery/config.js';
import { SinkWorker } from '../../../relay/delivery/sink-worker.js';
import { Inbox } from '../../../relay/inbox/inbox.js';
import { defaultSalesforceMappings, SalesforceSink } from '../../../relay/sinks/salesforce/index.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

let crm: SalesforceEmulator;
let inbox: Inbox;
let sink: SalesforceSink;
let worker: SinkWorker;
let cleanup: () => void;

beforeEach(async () => {
  const t = tempDir();
  cleanup = t.cleanup;
  crm = await SalesforceEmulator.start();
  inbox = new Inbox(join(t.dir, 'inbox.sqlite'));
  sink = new SalesforceSink(
    { name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings },
    testLogger(),
  );
  await sink.start();
  worker = new SinkWorker(sink, inbox, DeliveryConfig.parse({ batchSize: 20, backoff: { initialMs: 50, maxMs: 400 }, pollMs: 50 }), testLogger());
});
afterEach(async () => {
  await worker.stop();
  await sink.stop();
  inbox.close();
  await crm.stop();
  cleanup();
});

function store(...events: CloudEventV1[]) {
  return inbox.store('agent-1', events.map((event) => ({ event, body: JSON.stringify(event), sinks: ['crm'] })), []);
}
const order = (wo: string) => crm.record('Production_Order__c', wo)?.fields;

describe('sink worker', () => {
  it('delivers every stored event once and records the CRM record ids', async () => {
    const events = ['A', 'B', 'C'].flatMap((wo) => [milestoneEvent(`WO-${wo}`, 'released', 1), milestoneEvent(`WO-${wo}`, 'started', 2)]);
    store(...events);
    worker.start();
    await vi.waitFor(() => expect(inbox.counts()).toMatchObject({ pending: 0, delivered: 6 }));
    expect(crm.records('Production_Milestone__c')).toHaveLength(6);
    expect(order('WO-A')).toMatchObject({ Status__c: 'started' });
    const row = inbox.listDeliveries({ status: 'delivered' })[0]!;
    expect(JSON.parse(row.recordIds!)).toHaveLength(2);
  });

  it('keeps order per work order while retrying, and one stuck work order does not hold up another', async () => {
    crm.failNext(1, { status: 503 });
    store(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 1));
    store(milestoneEvent('WO-1', 'started', 2), milestoneEvent('WO-1', 'completed', 3, { goodQuantity: 500 }));
    const writes: string[] = [];
    crm.on('upsert', (e) => e.record.object === 'Production_Order__c' && e.record.externalId === 'WO-1' && writes.push(String(e.record.fields.Status__c)));
    worker.start();
    await vi.waitFor(() => expect(inbox.counts()).toMatchObject({ pending: 0, delivered: 4 }), { timeout: 10_000 });
    expect(writes).toEqual(['released', 'started', 'completed']);
    expect(order('WO-1')).toMatchObject({ Status__c: 'completed', Good_Quantity__c: 500 });
  });

  it('dead-letters a validation error with its reason while the rest flow, and a replay after the fix lands it once', async () => {
    crm.addValidationRule('Production_Milestone__c', { field: 'Work_Order__c', test: (v) => v !== 'WO-BAD', message: 'WO-BAD is on credit hold' });
    store(milestoneEvent('WO-BAD', 'released', 1), milestoneEvent('WO-OK', 'released', 1), milestoneEvent('WO-BAD', 'started', 2));
    worker.start();
    await vi.waitFor(() => expect(inbox.counts()).toMatchObject({ pending: 0, dead: 2, delivered: 1 }));
    const dead = inbox.listDeliveries({ status: 'dead' });
    expect(dead[0]).toMatchObject({ subject: 'work-order/WO-BAD', errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', attempts: 1 });
    expect(dead[0]!.lastError).toContain('credit hold');
    crm.clearValidationRules();
    expect(inbox.replayDead({ all: true })).toBe(2);
    worker.wake();
    await vi.waitFor(() => expect(inbox.counts()).toMatchObject({ pending: 0, dead: 0, delivered: 3 }));
    expect(crm.records('Production_Milestone__c')).toHaveLength(3);
    expect(order('WO-BAD')).toMatchObject({ Status__c: 'started' });
  });

  it('opens the circuit through a CRM outage, probes with small batches, and drains everything after it', async () => {
    crm.setOutage(true);
    store(...Array.from({ length: 30 }, (_, i) => milestoneEvent(`WO-${i}`, 'released', 1)));
    worker.start();
    await vi.waitFor(() => expect(worker.status()).toMatchObject({ state: 'paused', circuit: 'open' }));
    expect(inbox.counts().dead).toBe(0);
    // While open, the sink is probed with a few events at a time, not hammered with every subject.
    const attemptsDuringOutage = crm.stats().requests;
    crm.setOutage(false);
    await vi.waitFor(() => expect(inbox.counts()).toMatchObject({ pending: 0, delivered: 30 }), { timeout: 10_000 });
    expect(worker.status().circuit).toBe('closed');
    expect(attemptsDuringOutage).toBeLessThan(30);
    expect(crm.records('Production_Milestone__c')).toHaveLength(30);
  });

  it('honours Retry-After on 429', async () => {
    crm.failNext(1, { status: 429, headers: { 'Retry-After': '1' }, body: [{ errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'slow down' }] });
    store(milestoneEvent('WO-1', 'released', 1));
    const started = Date.now();
    worker.start();
    await vi.waitFor(() => expect(inbox.counts().delivered).toBe(1), { timeout: 10_000 });
    // The retry waited for the server's Retry-After, not the 50 ms backoff.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('never lets an older milestone overwrite a newer one (stale guard), but still records it', async () => {
    const started = milestoneEvent('WO-1', 'started', 2);
    const completed = milestoneEvent('WO-1', 'completed', 3, { goodQuantity: 500 });
    store(completed);
    worker.start();
    await vi.waitFor(() => expect(inbox.counts().delivered).toBe(1));
    store(started); // arrives late, e.g. replayed from another path
    await vi.waitFor(() => expect(inbox.counts().delivered).toBe(2));
    expect(order('WO-1')).toMatchObject({ Status__c: 'completed', Good_Quantity__c: 500 });
    expect(crm.records('Production_Milestone__c').map((r) => r.fields.Milestone__c).sort()).toEqual(['completed', 'started']);
  });

  it('redelivery after a crash between CRM success and our commit changes nothing in the CRM', async () => {
    const e = milestoneEvent('WO-1', 'released', 1);
    store(e);
    worker.start();
    await vi.waitFor(() => expect(inbox.counts().delivered).toBe(1));
    await worker.stop();
    // Simulate the lost commit: the delivery is pending again, as after kill -9 before `record`.
    inbox.db.prepare("UPDATE deliveries SET status = 'pending'").run();
    inbox.db.prepare('DELETE FROM subject_versions').run();
    const before = crm.record('Production_Milestone__c', e.id)!;
    const changesBefore = before.changes;
    worker.start();
    await vi.waitFor(() => expect(inbox.counts()).toMatchObject({ pending: 0, delivered: 1 }));
    const after = crm.record('Production_Milestone__c', e.id)!;
    expect(after.writes).toBe(2);
    expect(after.changes).toBe(changesBefore);
    expect(crm.records('Production_Milestone__c')).toHaveLength(1);
  });
});
