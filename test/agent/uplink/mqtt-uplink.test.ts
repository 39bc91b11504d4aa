import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { MqttUplinkConfig } from '../../../agent/uplink/mqtt-config.js';
import { MqttUplink } from '../../../agent/uplink/mqtt-uplink.js';
import { AGENT_MAX_PACKET_BYTES } from '../../../protocols/uplink/mqtt-client.js';
import { acksTopic, eventsTopic } from '../../../protocols/uplink/mqtt-topics.js';
import { selfSignedCert } from '../../helpers/certs.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { captureConnect } from '../../helpers/mqtt-connect-capture.js';
import { startMqttRelay, testAgents } from '../../helpers/mqtt-relay.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { PlantlinkProcess } from '../../sim/processes.js';
import { freePort } from '../../sim/stack-configs.js';
import { TcpProxy } from '../../sim/tcp-proxy.js';

const T0 = Date.parse('2026-11-23T08:00:00Z');
const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

const drafts = (from: number, count: number, plant = 'plant-a') =>
  Array.from({ length: count }, (_, i) => milestoneDraft(`WO-${from + i}`, 'released', T0 + from + i, undefined, plant));

function workspace() {
  const t = tempDir();
  stops.push(t.cleanup);
  const outbox = new Outbox({ path: join(t.dir, 'agent', 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' });
  stops.push(() => outbox.close());
  return { dir: t.dir, outbox };
}

async function relayWith(dir: string, mqtt: Parameters<typeof startMqttRelay>[1], agents = testAgents()) {
  const r = await startMqttRelay(join(dir, 'relay'), mqtt, { agents });
  stops.push(() => r.stop());
  return r;
}

function uplink(outbox: Outbox, config: Record<string, unknown>, identity = { agentId: 'agent-a', plant: 'plant-a' }) {
  const u = new MqttUplink(
    MqttUplinkConfig.parse({ kind: 'mqtt', reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, maxBatchEvents: 50, ...config }),
    outbox,
    identity,
    testLogger(),
  );
  stops.push(() => u.stop());
  return u;
}

describe('MQTT uplink to the relay\'s embedded broker', () => {
  it('drains the outbox over MQTT/TCP in batches, deleting only what the relay acknowledged', async () => {
    const { dir, outbox } = workspace();
    const relay = await relayWith(dir, { listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
    const u = uplink(outbox, { url: `mqtt://127.0.0.1:${relay.ports.tcp}`, token: relay.tokens.a });
    const acked: number[] = [];
    u.on('acked', (stored) => acked.push(stored));
    outbox.append('line', drafts(0, 500));
    u.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 10_000 });
    expect(relay.inbox.counts().events).toBe(500);
    expect(acked.reduce((a, b) => a + b, 0)).toBe(500);
    expect(Math.max(...acked)).toBeLessThanOrEqual(50);
    expect(u.status()).toMatchObject({ state: 'connected', inFlight: 0 });
    outbox.append('line', drafts(500, 3));
    await vi.waitFor(() => expect(relay.inbox.counts().events).toBe(503), { timeout: 10_000 });
  });

  it('delivers over TLS (mqtts://) to a broker whose certificate is signed by the configured CA', async () => {
    const { dir, outbox } = workspace();
    const cert = selfSignedCert(dir);
    const relay = await relayWith(dir, { listeners: { tls: { host: '127.0.0.1', port: 0, certFile: cert.certFile, keyFile: cert.keyFile } } });
    const u = uplink(outbox, { url: `mqtts://127.0.0.1:${relay.ports.tls}`, token: relay.tokens.a, tls: { caFile: cert.certFile } });
    outbox.append('line', drafts(0, 120));
    u.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 10_000 });
    expect(relay.inbox.counts().events).toBe(120);
  });

  it('refuses a broker certificate it cannot verify, and keeps the backlog', async () => {
    const { dir, outbox } = workspace();
    const cert = selfSignedCert(dir);
    const relay = await relayWith(dir, { listeners: { tls: { host: '127.0.0.1', port: 0, certFile: cert.certFile, keyFile: cert.keyFile } } });
    const u = uplink(outbox, { url: `mqtts://127.0.0.1:${relay.ports.tls}`, token: relay.tokens.a });
    outbox.append('line', drafts(0, 5));
    u.start();
    await vi.waitFor(() => expect(u.status()).toMatchObject({ state: 'disconnected', detail: expect.stringMatching(/certificate/i) }), { timeout: 10_000 });
    expect(outbox.stats().pending).toBe(5);
    expect(relay.inbox.counts().events).toBe(0);
  });

  it('waits out a client key that does not match its certificate (mid-rotation) without crashing, and connects once they match', async () => {
    const { dir, outbox } = workspace();
    const server = selfSignedCert(dir);
    const oldClient = selfSignedCert(dir, 'client-old');
    const newClient = selfSignedCert(dir, 'client-new');
    const relay = await relayWith(dir, { listeners: { tls: { host: '127.0.0.1', port: 0, certFile: server.certFile, keyFile: server.keyFile } } });
    // The key file is already the new one; the certificate file still the old one.
    const u = uplink(outbox, { url: `mqtts://127.0.0.1:${relay.ports.tls}`, token: relay.tokens.a, tls: { caFile: server.certFile, certFile: oldClient.certFile, keyFile: newClient.keyFile } });
    outbox.append('line', drafts(0, 5));
    u.start();
    await vi.waitFor(() => expect(u.status()).toMatchObject({ state: 'disconnected', detail: expect.stringMatching(/TLS files.*key values mismatch/) }), { timeout: 10_000 });
    expect(outbox.stats().pending).toBe(5);
    writeFileSync(oldClient.certFile, newClient.cert); // the rotation completes
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 10_000 });
    expect(relay.inbox.counts().events).toBe(5);
  });

  it('delivers over MQTT over WebSocket, plain (ws://) and TLS (wss://)', async () => {
    const { dir, outbox } = workspace();
    const cert = selfSignedCert(dir);
    const relay = await relayWith(dir, {
      listeners: {
        ws: { host: '127.0.0.1', port: 0, path: '/mqtt' },
      },
    });
    const plain = uplink(outbox, { url: `ws://127.0.0.1:${relay.ports.ws}/mqtt`, token: relay.tokens.a });
    outbox.append('line', drafts(0, 100));
    plain.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 10_000 });
    expect(relay.inbox.counts().events).toBe(100);
    await plain.stop();

    const secure = await relayWith(join(dir, 'secure'), { listeners: { ws: { host: '127.0.0.1', port: 0, path: '/mqtt', tls: { certFile: cert.certFile, keyFile: cert.keyFile } } } }, relay.agents);
    const viaWss = uplink(outbox, { url: `wss://127.0.0.1:${secure.ports.ws}/mqtt`, token: relay.tokens.a, tls: { caFile: cert.certFile } });
    outbox.append('line', drafts(100, 60));
    viaWss.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 10_000 });
    expect(secure.inbox.counts().events).toBe(60);
  });

  it('reports unauthorized with the broker\'s reason on a wrong token, keeps the backlog and keeps trying', async () => {
    const { dir, outbox } = workspace();
    const relay = await relayWith(dir, { listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
    const u = uplink(outbox, { url: `mqtt://127.0.0.1:${relay.ports.tcp}`, token: 'agent-a.wrong-secret-wrong-secret' });
    const states: string[] = [];
    u.on('state', (h) => states.push(h.state));
    outbox.append('line', drafts(0, 5));
    u.start();
    await vi.waitFor(() => expect(u.status()).toMatchObject({ state: 'unauthorized', detail: expect.stringContaining('Bad username or password') }));
    // It tries again (with backoff): an operator fixing the relay's registry needs no agent restart.
    await vi.waitFor(() => expect(states.filter((s) => s === 'unauthorized').length).toBeGreaterThanOrEqual(2));
    expect(outbox.stats().pending).toBe(5);
    expect(relay.inbox.counts().events).toBe(0);
  });

  it('reports unauthorized when the agent\'s plant is not the one the relay registered it for, and sends nothing', async () => {
    const { dir, outbox } = workspace();
    const relay = await relayWith(dir, { listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
    // agent-b is registered for plant-b; this agent believes it speaks for plant-a.
    const u = uplink(outbox, { url: `mqtt://127.0.0.1:${relay.ports.tcp}`, token: relay.tokens.b }, { agentId: 'agent-b', plant: 'plant-a' });
    outbox.append('line', drafts(0, 3));
    u.start();
    await vi.waitFor(() => expect(u.status()).toMatchObject({ state: 'unauthorized', detail: expect.stringContaining('plantlink/v1/plant-a/agent-b/acks') }));
    expect(outbox.stats().pending).toBe(3);
    expect(relay.inbox.counts().events).toBe(0);
  });

  it('quarantines events the relay refuses (another plant\'s) with the relay\'s reason', async () => {
    const { dir, outbox } = workspace();
    const relay = await relayWith(dir, { listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
    // agent-b is registered for plant-b and uses plant-b's topics, but this outbox stamps plant-a.
    const u = uplink(outbox, { url: `mqtt://127.0.0.1:${relay.ports.tcp}`, token: relay.tokens.b }, { agentId: 'agent-b', plant: 'plant-b' });
    outbox.append('line', drafts(0, 3));
    u.start();
    await vi.waitFor(() => expect(outbox.stats().rejected).toBe(3));
    expect(outbox.stats().pending).toBe(0);
    expect(outbox.listRejected()[0]).toMatchObject({ code: 'plant_mismatch', reason: expect.stringContaining('plant-b') });
    expect(relay.inbox.counts()).toMatchObject({ events: 0, ingressRejections: 3 });
  });

  it('keeps every event through a network cut mid-stream and resumes from the oldest unacknowledged one', async () => {
    const { dir, outbox } = workspace();
    const relay = await relayWith(dir, { listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: relay.ports.tcp! });
    stops.push(() => proxy.stop());
    const u = uplink(outbox, { url: `mqtt://127.0.0.1:${proxy.port}`, token: relay.tokens.a, keepaliveSeconds: 1 });
    u.start();
    await vi.waitFor(() => expect(u.status().state).toBe('connected'));
    outbox.append('line', drafts(0, 1000));
    await vi.waitFor(() => expect(relay.inbox.counts().events).toBeGreaterThan(0));
    proxy.cut();
    outbox.append('line', drafts(1000, 200));
    await vi.waitFor(() => expect(u.status().state).not.toBe('connected'));
    expect(outbox.stats().pending).toBeGreaterThan(0);
    proxy.restore();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 15_000 });
    expect(relay.inbox.counts().events).toBe(1200);
  });

  it('keeps every event when the relay (and its broker) stops mid-stream; after its restart each event is in the inbox exactly once', async () => {
    const { dir, outbox } = workspace();
    const agents = testAgents();
    const dataDir = join(dir, 'relay');
    const first = await startMqttRelay(dataDir, { listeners: { tcp: { host: '127.0.0.1', port: 0 } } }, { agents });
    const port = first.ports.tcp!;
    const u = uplink(outbox, { url: `mqtt://127.0.0.1:${port}`, token: agents.tokens.a });
    outbox.append('line', drafts(0, 3000));
    // Stop the relay at its first ack: batches are in flight, most events not yet sent.
    const stopped = new Promise<void>((resolve) => u.once('acked', () => void first.stop().then(resolve)));
    u.start();
    await stopped;
    const db = new Database(join(dataDir, 'inbox.sqlite'), { readonly: true });
    const before = (db.prepare('SELECT count(*) AS n FROM inbox').get() as { n: number }).n;
    db.close();
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(3000);
    // Stored but not acknowledged (the ack died with the broker) still counts as pending: resent, deduped.
    expect(outbox.stats().pending).toBeGreaterThanOrEqual(3000 - before);

    const second = await startMqttRelay(dataDir, { listeners: { tcp: { host: '127.0.0.1', port } } }, { agents });
    stops.push(() => second.stop());
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 15_000 });
    expect(second.inbox.counts().events).toBe(3000);
    const distinct = second.inbox.db.prepare('SELECT count(DISTINCT id) AS n FROM inbox').get() as { n: number };
    expect(distinct.n).toBe(3000);
  });
});

describe('MQTT uplink: the relay process killed (kill -9) mid-stream', () => {
  it('never loses an acknowledged event, and after the restart every event is in the inbox exactly once', async () => {
    const { dir, outbox } = workspace();
    const agents = testAgents();
    const port = await freePort();
    const dataDir = join(dir, 'relay-data');
    const configFile = join(dir, 'relay.yaml');
    writeFileSync(
      configFile,
      stringify({
        relay: { dataDir, listen: { host: '127.0.0.1', port: await freePort() } },
        ingress: { maxBatchEvents: 100 },
        mqtt: { listeners: { tcp: { host: '127.0.0.1', port } } },
        agents: agents.registry,
        sinks: [{ name: 'crm', kind: 'webhook', url: 'http://127.0.0.1:9/never', secret: 'x'.repeat(32) }],
        routes: [{ match: { type: 'com.plantlink.test.nothing' }, sinks: ['crm'] }],
        log: { level: 'info' },
      }),
    );
    const relay = new PlantlinkProcess('relay', configFile, join(dir, 'relay.log'));
    stops.push(() => relay.kill9());
    const started = relay.waitForLog(/relay started/);
    relay.start();
    await started;
    const u = uplink(outbox, { url: `mqtt://127.0.0.1:${port}`, token: agents.tokens.a, maxBatchEvents: 100 });
    outbox.append('line', drafts(0, 5000));
    const all = new Set(outbox.readPending(0, 5000, 1e12).map((r) => r.id));
    const killed = new Promise<void>((resolve) => u.once('acked', () => void relay.kill9().then(resolve)));
    u.start();
    await killed;
    await vi.waitFor(() => expect(u.status().state).not.toBe('connected'));

    // Every event that left the outbox was acknowledged, so it must be in the inbox on disk.
    const pending = new Set(outbox.readPending(0, 5000, 1e12).map((r) => r.id));
    const inbox = () => {
      const db = new Database(join(dataDir, 'inbox.sqlite'), { readonly: true });
      try {
        return new Set((db.prepare('SELECT id FROM inbox').all() as { id: string }[]).map((r) => r.id));
      } finally {
        db.close();
      }
    };
    const stored = inbox();
    const acked = [...all].filter((id) => !pending.has(id));
    expect(acked.length).toBeGreaterThan(0);
    expect(pending.size).toBeGreaterThan(0);
    expect(acked.filter((id) => !stored.has(id))).toEqual([]);

    const restarted = relay.waitForLog(/relay started/);
    relay.start();
    await restarted;
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 20_000 });
    const final = inbox();
    expect(final.size).toBe(5000);
    expect([...all].every((id) => final.has(id))).toBe(true);
  });
});

describe('MQTT uplink: a PUBACK is not an ack', () => {
  it('keeps every event while a broker takes the batches but no relay acknowledges them, and resends after the ack timeout', async () => {
    const { outbox } = workspace();
    // A bare broker that PUBACKs every batch and publishes a welcome, with no relay behind it.
    const broker = await Aedes.createBroker();
    const server: Server = createServer(broker.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    stops.push(() => new Promise<void>((resolve) => broker.close(() => server.close(() => resolve()))));
    const welcome = { t: 'welcome', protocol: 1, agent: 'agent-a', plant: 'plant-a', maxFrameBytes: 256 * 1024, maxBatchEvents: 50, maxInFlight: 2 };
    await new Promise<void>((resolve) =>
      broker.publish({ cmd: 'publish', topic: acksTopic('plant-a', 'agent-a'), payload: Buffer.from(JSON.stringify(welcome)), qos: 1, retain: true, dup: false }, () => resolve()),
    );
    const batches: number[] = [];
    broker.subscribe(eventsTopic('plant-a', 'agent-a'), (packet, done) => {
      const frame = JSON.parse(packet.payload.toString()) as { t: string; batch: number };
      if (frame.t === 'batch') batches.push(frame.batch);
      done();
    }, () => undefined);
    const port = (server.address() as { port: number }).port;
    const u = uplink(outbox, { url: `mqtt://127.0.0.1:${port}`, token: 'agent-a.any-token-the-bare-broker-accepts', ackTimeoutMs: 200, maxInFlight: 2 });
    outbox.append('line', drafts(0, 500));
    u.start();
    // Two batches in flight, then (no ack) the same two again after each timeout, with new numbers.
    await vi.waitFor(() => expect(batches.length).toBeGreaterThanOrEqual(4), { timeout: 10_000 });
    expect(new Set(batches).size).toBe(batches.length);
    expect(outbox.stats().pending).toBe(500);
    expect(u.status()).toMatchObject({ state: 'connected', inFlight: 2 });
  });
});

describe('MQTT uplink: robustness', () => {
  it('asks an MQTT 5 broker for packets no larger than the acks it may need (maximumPacketSize on CONNECT)', async () => {
    const capture = await captureConnect();
    stops.push(capture.close);
    const { outbox } = workspace();
    uplink(outbox, { url: capture.url, token: 'agent-a.0123456789abcdef', protocolVersion: 5 }).start();
    expect((await capture.connect).properties?.maximumPacketSize).toBe(AGENT_MAX_PACKET_BYTES);
  });

  it('keeps running, and says why, when the outbox cannot be read for a backlog report', async () => {
    const { dir, outbox } = workspace();
    const relay = await relayWith(dir, { listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line).msg) });
    const u = new MqttUplink(
      MqttUplinkConfig.parse({ kind: 'mqtt', url: `mqtt://127.0.0.1:${relay.ports.tcp}`, token: relay.tokens.a, statusIntervalMs: 100 }),
      outbox,
      { agentId: 'agent-a', plant: 'plant-a' },
      logger,
    );
    stops.push(() => u.stop());
    u.start();
    await vi.waitFor(() => expect(u.status().state).toBe('connected'), { timeout: 10_000 });
    // A closed database throws on every read, as a failing disk would.
    outbox.close();
    await vi.waitFor(() => expect(warnings).toContain('could not read the outbox backlog for the relay'), { timeout: 10_000 });
    expect(u.status().state).toBe('connected');
  });
});
