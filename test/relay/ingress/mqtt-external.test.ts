import { join } from 'node:path';
import Database from 'better-sqlite3';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { MqttUplinkConfig } from '../../../agent/uplink/mqtt-config.js';
import { MqttUplink } from '../../../agent/uplink/mqtt-uplink.js';
import { deriveEventId } from '../../../protocols/events/event-id.js';
import { PRODUCTION_MILESTONE_V1 } from '../../../protocols/events/production-milestone.v1.js';
import { acksTopic, eventsTopic } from '../../../protocols/uplink/mqtt-topics.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { captureConnect } from '../../helpers/mqtt-connect-capture.js';
import { Mosquitto } from '../../helpers/mosquitto.js';
import { startMqttRelay, testAgents } from '../../helpers/mqtt-relay.js';
import { tempDir, testLogger } from '../../helpers/temp.js';

const T0 = Date.parse('2026-11-23T08:00:00Z');
const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

/** The ACL of protocols/uplink/MQTT.md for two relay replicas and two agents, plus a user whose ACL is far too wide. */
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

user agent-b
topic write plantlink/v1/plant-b/agent-b/events
topic read plantlink/v1/plant-b/agent-b/acks

# A mistake in the ACL: this user may write anything. The relay must still refuse what it sends.
user sloppy
topic readwrite plantlink/#
`;

async function stack(relayCount: 1 | 2) {
  const t = tempDir();
  stops.push(t.cleanup);
  const agents = testAgents();
  const broker = await Mosquitto.start(t.dir, {
    users: { 'relay-1': 'relay-1-password', 'relay-2': 'relay-2-password', 'agent-a': agents.tokens.a, 'agent-b': agents.tokens.b, sloppy: 'sloppy-password' },
    acl: ACL,
    listenerOptions: ['use_username_as_clientid true'],
  });
  stops.push(() => broker.stop());
  const relays = [];
  for (let i = 1; i <= relayCount; i++) {
    const r = await startMqttRelay(
      join(t.dir, `relay-${i}`),
      { external: { url: broker.url, username: `relay-${i}`, password: `relay-${i}-password`, sharedGroup: 'plantlink-relay', clientId: `relay-${i}`, reconnectMs: 100 } },
      { agents },
    );
    stops.push(() => r.stop());
    relays.push(r);
  }
  for (const r of relays) await vi.waitFor(() => expect(r.relay.status()).toMatchObject({ mqtt: { mode: 'external', state: 'connected' } }), { timeout: 10_000 });
  const outbox = new Outbox({ path: join(t.dir, 'agent', 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' });
  stops.push(() => outbox.close());
  return { dir: t.dir, agents, broker, relays, outbox };
}

function uplink(outbox: Outbox, broker: Mosquitto, token: string, config: Record<string, unknown> = {}) {
  const u = new MqttUplink(
    MqttUplinkConfig.parse({ kind: 'mqtt', url: broker.url, token, protocolVersion: 5, maxBatchEvents: 20, reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, ...config }),
    outbox,
    { agentId: 'agent-a', plant: 'plant-a' },
    testLogger(),
  );
  stops.push(() => u.stop());
  return u;
}

const drafts = (from: number, count: number) => Array.from({ length: count }, (_, i) => milestoneDraft(`WO-${from + i}`, 'released', T0 + from + i));

/** Event ids stored across the relays' inboxes (separate SQLite files: the default store; see test/relay/store for the shared one). */
function storedIds(relays: { inbox: { db: Database.Database } }[]): { total: number; distinct: number; perRelay: number[] } {
  const perRelay = relays.map((r) => (r.inbox.db.prepare('SELECT id FROM inbox').all() as { id: string }[]).map((x) => x.id));
  return { total: perRelay.flat().length, distinct: new Set(perRelay.flat()).size, perRelay: perRelay.map((ids) => ids.length) };
}

let n = 0;
function event(overrides: Record<string, unknown> = {}) {
  n++;
  const t = T0 + n;
  const wo = `WO-X${n}`;
  return {
    specversion: '1.0',
    id: deriveEventId({ plant: 'plant-a', source: 'line', key: wo, what: 'released', occurredAtMs: t }),
    source: '/plantlink/plants/plant-a/sources/line',
    type: PRODUCTION_MILESTONE_V1,
    subject: `work-order/${wo}`,
    time: new Date(t).toISOString(),
    plant: 'plant-a',
    plantseq: n,
    correlationid: `c-${n}`,
    data: { workOrder: wo, milestone: 'released', equipment: 'L1', occurredAt: new Date(t).toISOString() },
    ...overrides,
  };
}

async function client(broker: Mosquitto, username: string, password: string): Promise<MqttClient> {
  const c = await connectAsync(broker.url, { protocolVersion: 5, username, password, clientId: username, reconnectPeriod: 0 });
  stops.push(() => c.endAsync(true).catch(() => undefined));
  return c;
}

function nextMessage(c: MqttClient, topic: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const on = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      const frame = JSON.parse(payload.toString()) as Record<string, unknown>;
      if (frame.t === 'welcome') return; // retained, re-sent on subscribe
      c.off('message', on);
      resolve(frame);
    };
    c.on('message', on);
  });
}

describe('relay consuming from an external broker (Mosquitto, MQTT 5, shared subscription)', () => {
  it('two relays split one agent\'s batches through $share; each stores some, and every event arrives', async () => {
    const { broker, relays, outbox, agents } = await stack(2);
    const u = uplink(outbox, broker, agents.tokens.a);
    outbox.append('line', drafts(0, 1000));
    u.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 20_000 });
    const stored = storedIds(relays);
    expect(stored.distinct).toBe(1000);
    expect(stored.perRelay[0]).toBeGreaterThan(0);
    expect(stored.perRelay[1]).toBeGreaterThan(0);
    // Each replica reports what it took.
    const taken = relays.map((r) => (r.relay.status() as { mqtt: { batches: number } }).mqtt.batches);
    expect(taken.every((b) => b > 0)).toBe(true);
  });

  it('keeps every event when the broker is killed mid-stream and restarted (no persistence): all end in the inboxes', async () => {
    const { broker, relays, outbox, agents } = await stack(2);
    const u = uplink(outbox, broker, agents.tokens.a, { ackTimeoutMs: 1000, keepaliveSeconds: 1 });
    outbox.append('line', drafts(0, 3000));
    const killed = new Promise<void>((resolve) => u.once('acked', () => void broker.kill().then(resolve)));
    u.start();
    await killed;
    await vi.waitFor(() => expect(u.status().state).not.toBe('connected'));
    const before = storedIds(relays).distinct;
    expect(before).toBeLessThan(3000);
    expect(outbox.stats().pending).toBeGreaterThanOrEqual(3000 - before);
    await broker.restart();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 20_000 });
    expect(storedIds(relays).distinct).toBe(3000);
  });

  it('refuses a batch on a topic naming another plant than the agent\'s registered one, even when the broker lets it through', async () => {
    const { broker, relays } = await stack(1);
    const c = await client(broker, 'sloppy', 'sloppy-password');
    await c.subscribeAsync('plantlink/v1/#', { qos: 1 });
    // agent-a is registered for plant-a: a batch on plant-b's topic for agent-a is refused whole.
    const refused = nextMessage(c, acksTopic('plant-b', 'agent-a'));
    await c.publishAsync(eventsTopic('plant-b', 'agent-a'), JSON.stringify({ t: 'batch', batch: 5, events: [event({ plant: 'plant-b', source: '/plantlink/plants/plant-b/sources/line' })] }), { qos: 1 });
    expect(await refused).toMatchObject({ t: 'error', code: 'forbidden_topic', batch: 5, reason: expect.stringContaining('registered for plant "plant-a"') });
    // An agent id the relay does not know.
    const unknown = nextMessage(c, acksTopic('plant-a', 'nobody'));
    await c.publishAsync(eventsTopic('plant-a', 'nobody'), JSON.stringify({ t: 'batch', batch: 6, events: [event()] }), { qos: 1 });
    expect(await unknown).toMatchObject({ t: 'error', code: 'forbidden_topic', batch: 6 });
    // On the right topic, each event's plant and source are still checked against the registration.
    const acked = nextMessage(c, acksTopic('plant-a', 'agent-a'));
    await c.publishAsync(eventsTopic('plant-a', 'agent-a'), JSON.stringify({ t: 'batch', batch: 7, events: [event({ plant: 'plant-b' }), event()] }), { qos: 1 });
    expect(await acked).toMatchObject({ t: 'ack', batch: 7, stored: 1, rejected: [{ index: 0, code: 'plant_mismatch' }] });
    expect(relays[0]!.inbox.counts()).toMatchObject({ events: 1, ingressRejections: 1 });
  });

  it('with the documented ACL, the broker refuses an agent\'s publish to another plant\'s topic and a wrong password', async () => {
    const { broker, relays, outbox, agents } = await stack(1);
    const c = await client(broker, 'agent-a', agents.tokens.a);
    const refused = await c.publishAsync(eventsTopic('plant-b', 'agent-b'), JSON.stringify({ t: 'batch', batch: 0, events: [event()] }), { qos: 1 }).then(
      () => undefined,
      (e: { code?: number }) => e.code,
    );
    expect(refused).toBe(135); // PUBACK "Not authorized"
    const u = uplink(outbox, broker, 'agent-a.not-the-token-at-all');
    outbox.append('line', drafts(0, 3));
    u.start();
    await vi.waitFor(() => expect(u.status()).toMatchObject({ state: 'unauthorized', detail: expect.stringMatching(/broker refused the connection: .*(Bad User Name or Password|Not authorized)/) }));
    expect(outbox.stats().pending).toBe(3);
    expect(relays[0]!.inbox.counts().events).toBe(0);
  });
});

describe('relay consuming ledger frames from an external broker (Mosquitto)', () => {
  it('stores the agent\'s ledger once, acks it on the agent\'s acks topic, and refuses another plant\'s entries alone', async () => {
    const { broker, relays, outbox, agents } = await stack(1);
    const store = relays[0]!.relay.store;
    outbox.append('line', drafts(0, 60));
    const u = uplink(outbox, broker, agents.tokens.a, { statusIntervalMs: 100 });
    u.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 15_000 });
    const last = outbox.readLedger(0, 1000).at(-1)!.seq;
    await vi.waitFor(() => expect(outbox.ledgerCursor()).toBe(last), { timeout: 15_000 });
    const all = () => store.ledger({ fromMs: 0, toMs: 8.64e15, limit: 10_000 });
    expect(await all()).toHaveLength(60);
    expect(new Set((await all()).map((r) => r.id)).size).toBe(60);
    await u.stop();

    // The same agent, by hand: in a ledger frame, the entry naming another plant's source is
    // refused alone (counted in the ack); the good entry beside it is stored; the connection stays.
    const c = await client(broker, 'agent-a', agents.tokens.a);
    let closed = false;
    c.once('close', () => (closed = true));
    await c.subscribeAsync(acksTopic('plant-a', 'agent-a'), { qos: 1 });
    const own = { id: 'evt-own', source: '/plantlink/plants/plant-a/sources/line', type: 't', subject: 'work-order/WO-1', timeMs: T0, status: 'stored' };
    const foreign = { id: 'evt-foreign', source: '/plantlink/plants/plant-b/sources/line', type: 't', subject: 'work-order/WO-1', timeMs: T0, status: 'stored' };
    let answer = nextMessage(c, acksTopic('plant-a', 'agent-a'));
    await c.publishAsync(eventsTopic('plant-a', 'agent-a'), JSON.stringify({ t: 'ledger', upto: 99, entries: [own, foreign] }), { qos: 1 });
    expect(await answer).toEqual({ t: 'ledger-ack', upto: 99, refused: 1 });
    const ids = async () => (await all()).map((r) => r.id);
    expect(await ids()).toHaveLength(61);
    expect(await ids()).toContain('evt-own');
    expect(await ids()).not.toContain('evt-foreign');
    // Still connected, and still answered.
    answer = nextMessage(c, acksTopic('plant-a', 'agent-a'));
    await c.publishAsync(eventsTopic('plant-a', 'agent-a'), JSON.stringify({ t: 'ledger', upto: 100, entries: [{ ...own, id: 'evt-own-2' }] }), { qos: 1 });
    expect(await answer).toEqual({ t: 'ledger-ack', upto: 100 });
    expect(await ids()).toHaveLength(62);
    expect(closed).toBe(false);
    expect(c.connected).toBe(true);
  });
});

describe('relay as an MQTT 5 client of an external broker', () => {
  it('asks the broker for no packet larger than a frame plus MQTT\'s headroom (maximumPacketSize on CONNECT)', async () => {
    const capture = await captureConnect();
    stops.push(capture.close);
    const t = tempDir();
    stops.push(t.cleanup);
    const r = await startMqttRelay(join(t.dir, 'relay'), { external: { url: capture.url, username: 'relay-1', password: 'relay-1-password', clientId: 'relay-1' } }, { ingress: { maxFrameBytes: 200_000 } });
    stops.push(() => r.stop());
    expect((await capture.connect).properties?.maximumPacketSize).toBe(200_000 + 64 * 1024);
  });
});
