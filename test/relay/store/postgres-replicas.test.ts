/**
 * Two relay replicas (real `plantlink relay` child processes) sharing one PostgreSQL store,
 * both consuming one Mosquitto through a `$share` subscription, delivering to the Salesforce
 * emulator. An agent streams work orders over MQTT 5 (several milestones each); one replica
 * is killed -9 mid-stream, holding leases. The other takes its share of the broker's batches
 * at once and its deliveries once their leases run out: every milestone lands in the CRM
 * once, every work order ends on its newest state, and no write ever sets one back.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { MqttUplinkConfig } from '../../../agent/uplink/mqtt-config.js';
import { MqttUplink } from '../../../agent/uplink/mqtt-uplink.js';
import type { MilestoneKind } from '../../../protocols/events/production-milestone.v1.js';
import { issueToken } from '../../../relay/ingress/agent-auth.js';
import { defaultSalesforceMappings } from '../../../relay/sinks/salesforce/index.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { Mosquitto } from '../../helpers/mosquitto.js';
import { startPostgres, type PostgresCluster } from '../../helpers/postgres.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { PlantlinkProcess } from '../../sim/processes.js';

const LEASE_MS = 2000;
const WORK_ORDERS = 36;
const STEPS: MilestoneKind[] = ['released', 'started', 'quantity-reported', 'completed'];
const T0 = Date.parse('2026-11-23T08:00:00Z');

const ACL = `
user relay-1
topic read plantlink/v1/+/+/events
topic write plantlink/v1/+/+/acks

user relay-2
topic read plantlink/v1/+/+/events
topic write plantlink/v1/+/+/acks

user agent-a
topic write plantlink/v1/plant-a/agent-a/events
topic read plantlink/v1/plant-a/agent-a/acks
`;

const stops: (() => Promise<unknown> | unknown)[] = [];
let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
}, 60_000);
afterAll(async () => {
  for (const s of stops.splice(0).reverse()) await s();
  await cluster?.destroy();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('two relay replicas on one PostgreSQL store', () => {
  it('one replica killed -9 mid-stream: every milestone in the CRM once, every work order on its newest state, no stale overwrite', { timeout: 45_000 }, async () => {
    const t = tempDir();
    stops.push(t.cleanup);
    const url = await cluster.createDatabase('replicas');
    const crm = await SalesforceEmulator.start();
    stops.push(() => crm.stop());
    // Each call takes a while, so a replica is always mid-batch (holding leases) when it dies.
    crm.setLatency(40);
    const agent = issueToken('agent-a');
    const broker = await Mosquitto.start(t.dir, {
      users: { 'relay-1': 'relay-1-password', 'relay-2': 'relay-2-password', 'agent-a': agent.token },
      acl: ACL,
      listenerOptions: ['use_username_as_clientid true'],
    });
    stops.push(() => broker.stop());

    // Every applied write of a work order's latest-state record, in the order the CRM applied them.
    const orderWrites = new Map<string, string[]>();
    crm.on('upsert', ({ record }) => {
      if (record.object !== 'Production_Order__c') return;
      const writes = orderWrites.get(record.externalId) ?? [];
      writes.push(String(record.fields.Last_Milestone_At__c));
      orderWrites.set(record.externalId, writes);
    });

    const replicas = [1, 2].map((i) => {
      const config = {
        relay: { dataDir: join(t.dir, `relay-${i}`), listen: { host: '127.0.0.1', port: 0 }, store: { kind: 'postgres', url, poolSize: 4, leaseMs: LEASE_MS } },
        mqtt: { external: { url: broker.url, username: `relay-${i}`, password: `relay-${i}-password`, sharedGroup: 'plantlink-relay', clientId: `relay-${i}`, reconnectMs: 100 } },
        agents: [{ id: 'agent-a', plant: 'plant-a', tokenHash: agent.tokenHash }],
        sinks: [{ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings }],
        routes: [{ sinks: ['crm'] }],
        delivery: { batchSize: 8, pollMs: 50, backoff: { initialMs: 100, maxMs: 500 } },
        log: { level: 'info' },
      };
      const file = join(t.dir, `relay-${i}.yaml`);
      writeFileSync(file, JSON.stringify(config, null, 2)); // JSON is YAML
      const p = new PlantlinkProcess('relay', file, join(t.dir, `relay-${i}.log`));
      stops.push(() => p.kill9());
      return p;
    });
    // Started at once: both migrate the fresh database (one waits on the other's advisory lock).
    const consuming = replicas.map((p) => p.waitForLog(/consuming agent batches from the MQTT broker/));
    for (const p of replicas) p.start();
    await Promise.all(consuming);

    const outbox = new Outbox({ path: join(t.dir, 'agent', 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' });
    stops.push(() => outbox.close());
    const uplink = new MqttUplink(
      MqttUplinkConfig.parse({ kind: 'mqtt', url: broker.url, token: agent.token, protocolVersion: 5, maxBatchEvents: 6, ackTimeoutMs: 1000, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } }),
      outbox,
      { agentId: 'agent-a', plant: 'plant-a' },
      testLogger(),
    );
    stops.push(() => uplink.stop());
    uplink.start();

    // The plant: work orders advance step by step, interleaved, as a line would report them.
    const truth: { wo: string; step: number }[] = [];
    const plant = (async () => {
      for (let step = 0; step < STEPS.length; step++) {
        for (let w = 0; w < WORK_ORDERS; w += 6) {
          const drafts = [];
          for (let k = w; k < Math.min(w + 6, WORK_ORDERS); k++) {
            drafts.push(milestoneDraft(`WO-${k}`, STEPS[step]!, T0 + step * 60_000 + k, (step + 1) * 10));
            truth.push({ wo: `WO-${k}`, step });
          }
          outbox.append('line', drafts);
          await sleep(60);
        }
      }
    })();

    const total = WORK_ORDERS * STEPS.length;
    await vi.waitFor(() => expect(crm.records('Production_Milestone__c').length).toBeGreaterThanOrEqual(total / 3), { timeout: 15_000, interval: 20 });
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    stops.push(() => db.end());
    // Kill replica 1 while it holds leases (mid-batch: its sink call takes 40 ms or more).
    // Its store's lease owner is `<host>/<pid>/<random>`.
    const victim = `%/${replicas[0]!.pid}/%`;
    const held = async () =>
      (await db.query<{ seq: number; until: string }>(
        "SELECT inbox_seq::int AS seq, lease_until::text AS until FROM deliveries WHERE status = 'pending' AND lease_owner LIKE $1 ORDER BY 1",
        [victim],
      )).rows;
    await vi.waitFor(async () => expect((await held()).length).toBeGreaterThan(0), { timeout: 10_000, interval: 2 });
    await replicas[0]!.kill9();
    const abandoned = await held();
    expect(abandoned.length).toBeGreaterThan(0);
    // The survivor leaves them alone until the lease runs out, however much else it delivers.
    await sleep(LEASE_MS / 2);
    expect(await held()).toEqual(abandoned);
    await plant;

    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 20_000, interval: 50 });
    await vi.waitFor(async () => {
      expect((await db.query("SELECT count(*)::int AS n FROM deliveries WHERE status != 'delivered'")).rows[0].n).toBe(0);
    }, { timeout: 15_000, interval: 100 });
    // ...then took them over and delivered them; no lease is left behind.
    expect((await db.query('SELECT count(*)::int AS n FROM deliveries WHERE lease_owner IS NOT NULL')).rows[0].n).toBe(0);
    const redelivered = (await db.query<{ seq: number; owner: string | null }>(
      "SELECT inbox_seq::int AS seq FROM deliveries WHERE status = 'delivered' AND inbox_seq = ANY($1::bigint[])",
      [abandoned.map((a) => a.seq)],
    )).rows;
    expect(redelivered.length).toBe(abandoned.length);

    // Exactly once per record: one milestone record per event, one order record per work order.
    const milestones = crm.records('Production_Milestone__c');
    expect(milestones.length).toBe(total);
    expect(new Set(milestones.map((r) => r.externalId)).size).toBe(total);
    expect(truth.length).toBe(total);
    const orders = crm.records('Production_Order__c');
    expect(orders.length).toBe(WORK_ORDERS);
    expect(crm.stats().created).toBe(total + WORK_ORDERS);
    // Latest state: each work order ends on its newest milestone.
    for (const o of orders) expect(o.fields).toMatchObject({ Status__c: 'completed', Good_Quantity__c: STEPS.length * 10 });
    // No stale overwrite: no applied write ever set a work order back to an older milestone.
    for (const [wo, writes] of orderWrites) {
      const times = writes.map((w) => Date.parse(w));
      expect(times, wo).toEqual([...times].sort((a, b) => a - b));
    }
    // The whole stream reached the store once: the truth, no more.
    expect((await db.query('SELECT count(*)::int AS n FROM inbox')).rows[0].n).toBe(total);
    expect(new Set(milestones.map((r) => `${r.fields.Work_Order__c}/${r.fields.Milestone__c}`))).toEqual(new Set(truth.map((x) => `${x.wo}/${STEPS[x.step]}`)));
  });
});
