/**
 * What the PostgreSQL store adds to the contract: several replicas (store instances) on one
 * database. Claims are exclusive and keep per-subject order; a lease that runs out passes the
 * delivery on and the old holder's outcome is discarded; replicas may migrate at once.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudEventV1 } from '../../../protocols/events/envelope.js';
import { DeliveryConfig } from '../../../relay/delivery/config.js';
import { SinkWorker } from '../../../relay/delivery/sink-worker.js';
import { BatchIntake } from '../../../relay/ingress/batch-intake.js';
import { defaultSalesforceMappings, SalesforceSink } from '../../../relay/sinks/salesforce/index.js';
import { Router } from '../../../relay/router/router.js';
import { PostgresStore } from '../../../relay/store/postgres/postgres-store.js';
import { SCHEMA_VERSION } from '../../../relay/store/postgres/schema.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { startPostgres, type PostgresCluster } from '../../helpers/postgres.js';
import { testLogger } from '../../helpers/temp.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

let cluster: PostgresCluster;
let databases = 0;
beforeAll(async () => {
  cluster = await startPostgres();
}, 60_000);
afterAll(async () => {
  await cluster?.destroy();
});

const batch = (events: CloudEventV1[]) => events.map((event) => ({ event, body: JSON.stringify(event), sinks: ['crm'] }));

describe('PostgreSQL store across replicas', () => {
  it('lets replicas that start at once create the schema once', async () => {
    const url = await cluster.createDatabase(`leases_${++databases}`);
    const stores = await Promise.all(Array.from({ length: 6 }, () => PostgresStore.open({ url, poolSize: 2 })));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT version FROM schema_version');
      expect(rows).toEqual([{ version: SCHEMA_VERSION }]);
      // A database from a newer build is refused rather than written to.
      await client.query('UPDATE schema_version SET version = version + 1');
      await expect(PostgresStore.open({ url, poolSize: 2 })).rejects.toThrow(/schema version .* upgrade this replica/);
    } finally {
      await client.end();
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('never hands one subject to two replicas at once: a follower waits for the head another replica holds', async () => {
    const url = await cluster.createDatabase(`leases_${++databases}`);
    let now = 1_000_000;
    const a = await PostgresStore.open({ url, owner: 'a', leaseMs: 10_000, now: () => now });
    const b = await PostgresStore.open({ url, owner: 'b', leaseMs: 10_000, now: () => now });
    try {
      await a.store('agent-1', batch([milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-1', 'started', 2), milestoneEvent('WO-2', 'released', 1)]), []);
      const byA = await a.claim('crm', 1);
      expect(byA.map((d) => d.subject)).toEqual(['P1/work-order/WO-1']);
      // WO-1's head is a's; its follower is not a head; WO-2 is free.
      const byB = await b.claim('crm', 10);
      expect(byB.map((d) => d.subject)).toEqual(['P1/work-order/WO-2']);
      expect(await b.claim('crm', 10)).toEqual([]);
      // b waits until a's lease would run out, not spinning meanwhile.
      expect(await b.nextDueMs('crm')).toBe(now + 10_000);
      await a.record('crm', [{ kind: 'delivered', d: byA[0]!, subject: byA[0]!.subject, recordIds: ['r1'], stale: false }]);
      const next = await b.claim('crm', 10);
      expect(next.map((d) => JSON.parse(d.body).data.milestone)).toEqual(['started']);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('passes a delivery on when its lease runs out, and discards the late outcome of the replica that lost it', async () => {
    const url = await cluster.createDatabase(`leases_${++databases}`);
    let now = 1_000_000;
    const a = await PostgresStore.open({ url, owner: 'a', leaseMs: 5_000, now: () => now });
    const b = await PostgresStore.open({ url, owner: 'b', leaseMs: 5_000, now: () => now });
    try {
      await a.store('agent-1', batch([milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-1', 'completed', 9)]), []);
      const [held] = await a.claim('crm', 10);
      now += 4_999;
      expect(await b.claim('crm', 10)).toEqual([]);
      now += 1;
      const [taken] = await b.claim('crm', 10);
      expect(taken).toMatchObject({ inboxSeq: held!.inboxSeq, attempts: 0 });
      // a wakes up and reports: too late, b holds it now.
      expect(await a.record('crm', [{ kind: 'dead', d: held!, error: 'late', code: 'X' }])).toEqual({ recorded: 0, discarded: 1 });
      expect(await b.record('crm', [{ kind: 'delivered', d: taken!, subject: taken!.subject, recordIds: ['r1'], stale: false }])).toEqual({ recorded: 1, discarded: 0 });
      expect(await a.counts()).toMatchObject({ delivered: 1, dead: 0, pending: 1 });
      // A lease that ran out but was not taken over still counts as ours: the work was done.
      const [mine] = await a.claim('crm', 10);
      now += 60_000;
      expect(await a.record('crm', [{ kind: 'delivered', d: mine!, subject: mine!.subject, recordIds: ['r2'], stale: false }])).toEqual({ recorded: 1, discarded: 0 });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps a delivery with the replica that renews its lease while the sink works, past the lease time', async () => {
    const url = await cluster.createDatabase(`leases_${++databases}`);
    let now = 1_000_000;
    const a = await PostgresStore.open({ url, owner: 'a', leaseMs: 3_000, now: () => now });
    const b = await PostgresStore.open({ url, owner: 'b', leaseMs: 3_000, now: () => now });
    try {
      expect(a.leaseRenewalMs).toBe(1_000);
      await a.store('agent-1', batch([milestoneEvent('WO-1', 'released', 1)]), []);
      const [held] = await a.claim('crm', 10);
      for (let i = 0; i < 5; i++) {
        now += 1_000;
        expect(await a.renewLeases('crm', [held!.inboxSeq])).toBe(1);
      }
      now += 2_999;
      expect(await b.claim('crm', 10)).toEqual([]);
      now += 1;
      expect(await b.claim('crm', 10)).toHaveLength(1);
      // Lost: renewing tells a it no longer holds it.
      expect(await a.renewLeases('crm', [held!.inboxSeq])).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a delivery worker renews its leases while a slow sink call outlasts them, so no other replica takes its deliveries', async () => {
    const url = await cluster.createDatabase(`leases_${++databases}`);
    const a = await PostgresStore.open({ url, owner: 'a', leaseMs: 1000 });
    const b = await PostgresStore.open({ url, owner: 'b', leaseMs: 1000 });
    const crm = await SalesforceEmulator.start();
    const sink = new SalesforceSink(
      { name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings },
      testLogger(),
    );
    const worker = new SinkWorker(sink, a, DeliveryConfig.parse({ batchSize: 20, backoff: { initialMs: 50, maxMs: 400 }, pollMs: 50 }), testLogger());
    try {
      await sink.start();
      crm.setLatency(2500);
      await a.store('agent-1', batch([milestoneEvent('WO-1', 'released', 1)]), []);
      worker.start();
      const deadline = Date.now() + 10_000;
      while ((await a.counts()).delivered === 0 && Date.now() < deadline) {
        // Well past the 1 s lease, b finds nothing to take.
        expect(await b.claim('crm', 10)).toEqual([]);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await a.counts()).toMatchObject({ delivered: 1, pending: 0 });
      expect(crm.records('Production_Milestone__c')).toHaveLength(1);
      expect(crm.records('Production_Milestone__c')[0]!.writes).toBe(1);
    } finally {
      await worker.stop();
      await sink.stop();
      await crm.stop();
      await a.close();
      await b.close();
    }
  }, 20_000);

  it('refuses an event with a NUL in its id at ingress, records the refusal, and stores the rest of its batch', async () => {
    const url = await cluster.createDatabase(`leases_${++databases}`);
    const store = await PostgresStore.open({ url });
    try {
      const intake = new BatchIntake({ store, router: new Router([{ match: {}, sinks: ['crm'] }]), limits: { maxFrameBytes: 1 << 20, maxBatchEvents: 100 } });
      const good = { ...milestoneEvent('WO-1', 'released', 1), plant: 'plant-a', source: '/plantlink/plants/plant-a/sources/line' };
      const bad = { ...good, id: 'evt\u0000-1' };
      const agent = { id: 'agent-a', plant: 'plant-a', tokenHash: `sha256:${'0'.repeat(64)}` };
      const result = await intake.handle(agent, JSON.stringify({ t: 'batch', batch: 7, events: [bad, good] }), testLogger());
      expect(result).toMatchObject({ kind: 'ack', frame: { batch: 7, stored: 1, duplicates: 0, rejected: [{ index: 0, code: 'invalid_envelope' }] } });
      expect(await store.listIngressRejections()).toMatchObject([{ eventId: 'evt\uFFFD-1', code: 'invalid_envelope' }]);
      expect(await store.counts()).toMatchObject({ events: 1, pending: 1, ingressRejections: 1 });
    } finally {
      await store.close();
    }
  });

  it('under concurrent claims from three replicas, delivers each delivery once and each subject in order', async () => {
    const url = await cluster.createDatabase(`leases_${++databases}`);
    const replicas = await Promise.all(['a', 'b', 'c'].map((owner) => PostgresStore.open({ url, owner, poolSize: 4 })));
    try {
      const subjects = 12;
      const perSubject = 15;
      const events: CloudEventV1[] = [];
      for (let step = 1; step <= perSubject; step++) for (let s = 0; s < subjects; s++) events.push(milestoneEvent(`WO-${s}`, 'quantity-reported', step));
      // Stored by the three replicas in turn, as one agent's acked batches would be.
      for (let k = 0; k * 30 < events.length; k++) await replicas[k % 3]!.store('agent-1', batch(events.slice(k * 30, k * 30 + 30)), []);
      const seen: { subject: string; step: number; by: string }[] = [];
      const active = new Map<string, string>();
      await Promise.all(
        replicas.flatMap((r) =>
          [0, 1].map(async () => {
            for (let idle = 0; idle < 3; ) {
              const due = await r.claim('crm', 4);
              if (due.length === 0) {
                idle++;
                await new Promise((resolve) => setTimeout(resolve, 5));
                continue;
              }
              idle = 0;
              for (const d of due) {
                // Nobody else may hold this subject while we do.
                expect(active.get(d.subject)).toBeUndefined();
                active.set(d.subject, r.owner);
                seen.push({ subject: d.subject, step: JSON.parse(d.body).plantseq, by: r.owner });
              }
              await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
              for (const d of due) active.delete(d.subject);
              await r.record('crm', due.map((d) => ({ kind: 'delivered' as const, d, subject: d.subject, recordIds: [], stale: d.stale })));
            }
          }),
        ),
      );
      expect(seen.length).toBe(subjects * perSubject);
      for (let s = 0; s < subjects; s++) {
        const steps = seen.filter((x) => x.subject === `P1/work-order/WO-${s}`).map((x) => x.step);
        expect(steps).toEqual([...steps].sort((x, y) => x - y));
        expect(new Set(steps).size).toBe(perSubject);
      }
      expect(new Set(seen.map((x) => x.by)).size).toBe(3);
      expect(await replicas[0]!.counts()).toMatchObject({ pending: 0, delivered: subjects * perSubject });
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });
});
