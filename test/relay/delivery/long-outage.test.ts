/**
 * A CRM outage of 30 s (three times the backoff cap) while events keep arriving: nothing is dead-lettered, the sink
 * is probed with a handful of requests instead of hammered, and when the CRM is back the
 * backlog drains with every event applied once. Real Salesforce sink and emulator.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeliveryConfig } from '../../../relay/delivery/config.js';
import { SinkWorker } from '../../../relay/delivery/sink-worker.js';
import { Inbox } from '../../../relay/inbox/inbox.js';
import { defaultSalesforceMappings, SalesforceSink } from '../../../relay/sinks/salesforce/index.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

describe('long outage', () => {
  it('rides out a 30-second CRM outage while events keep coming, then delivers each once', { timeout: 120_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const crm = await SalesforceEmulator.start();
    stops.push(() => crm.stop());
    const inbox = new Inbox(join(dir, 'inbox.sqlite'));
    stops.push(() => inbox.close());
    const sink = new SalesforceSink(
      { name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings },
      testLogger(),
    );
    await sink.start();
    stops.push(() => sink.stop());
    // Production-like backoff: 1 s doubling to a 10 s cap.
    const worker = new SinkWorker(sink, inbox, DeliveryConfig.parse({ batchSize: 50, backoff: { initialMs: 1000, maxMs: 10_000 }, pollMs: 200 }), testLogger());
    stops.push(() => worker.stop());
    worker.start();

    let n = 0;
    const arrive = () => {
      const events = Array.from({ length: 5 }, () => {
        n++;
        return milestoneEvent(`WO-${n % 40}`, n % 2 ? 'started' : 'quantity-reported', n, { goodQuantity: n });
      });
      inbox.store('agent-1', events.map((event) => ({ event, body: JSON.stringify(event), sinks: ['crm'] })), []);
      worker.wake();
    };
    const feeder = setInterval(arrive, 100);
    stops.push(() => clearInterval(feeder));

    await vi.waitFor(() => expect(inbox.counts().delivered).toBeGreaterThan(50), { timeout: 10_000 });
    crm.setOutage(true);
    const requestsAtOutage = crm.stats().requests;
    await new Promise((r) => setTimeout(r, 30_000));
    const probes = crm.stats().requests - requestsAtOutage;
    expect(worker.status().circuit).toBe('open');
    expect(inbox.counts().dead).toBe(0);
    crm.setOutage(false);
    await new Promise((r) => setTimeout(r, 3000));
    clearInterval(feeder);
    await vi.waitFor(() => expect(inbox.counts().pending).toBe(0), { timeout: 60_000, interval: 250 });

    // Every event is in the CRM once: one history record per event, no dead letters.
    expect(crm.records('Production_Milestone__c')).toHaveLength(n);
    expect(inbox.counts()).toMatchObject({ delivered: n, dead: 0 });
    // 30 s of outage cost a handful of probes (backoff capped at 10 s), not a request per poll (150) or per event.
    expect(probes).toBeLessThan(20);
    // The latest-state records ended on each work order's newest event.
    for (let wo = 0; wo < 40; wo++) {
      const newest = Math.max(...Array.from({ length: n }, (_, i) => i + 1).filter((i) => i % 40 === wo));
      expect(crm.record('Production_Order__c', `WO-${wo}`)?.fields.Good_Quantity__c, `WO-${wo}`).toBe(newest);
    }
  });
});
