import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { connect as mqttConnect } from 'mqtt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { WebSocketUplinkConfig } from '../../../agent/uplink/config.js';
import { LedgerSender } from '../../../agent/uplink/ledger-sender.js';
import { MqttUplinkConfig } from '../../../agent/uplink/mqtt-config.js';
import { MqttUplink } from '../../../agent/uplink/mqtt-uplink.js';
import { WebSocketUplink } from '../../../agent/uplink/ws-uplink.js';
import { acksTopic, eventsTopic } from '../../../protocols/uplink/mqtt-topics.js';
import type { RelayStore } from '../../../relay/store/store.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { startMqttRelay } from '../../helpers/mqtt-relay.js';
import { startIngress } from '../../helpers/relay-ingress.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { capturingLogger } from './capture-logger.js';

const T0 = Date.parse('2026-11-23T08:00:00Z');
const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

const drafts = (from: number, count: number) => Array.from({ length: count }, (_, i) => milestoneDraft(`WO-${from + i}`, 'released', T0 + from + i));
const WAIT = { timeout: 15_000 };

function workspace() {
  const t = tempDir();
  stops.push(t.cleanup);
  const outbox = new Outbox({ path: join(t.dir, 'agent', 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' });
  stops.push(() => outbox.close());
  return { dir: t.dir, outbox };
}

/** Every ledger entry the relay holds, in any plant and time. */
const relayLedger = (store: RelayStore) => store.ledger({ fromMs: 0, toMs: 8.64e15, limit: 1_000_000 });

/** The relay holds one ledger entry for each of the outbox's events, and the agent's cursor is at its end. */
async function expectLedgerOnce(store: RelayStore, outbox: Outbox, count: number) {
  const local = outbox.readLedger(0, 1_000_000);
  expect(local).toHaveLength(count);
  await vi.waitFor(() => expect(outbox.ledgerCursor()).toBe(local.at(-1)!.seq), WAIT);
  const rows = await relayLedger(store);
  expect(rows).toHaveLength(count);
  expect(new Set(rows.map((r) => `${r.source} ${r.id}`)).size).toBe(count);
  expect(rows.map((r) => r.id).sort()).toEqual(local.map((e) => e.id).sort());
  expect(rows.every((r) => r.plant === 'plant-a' && r.agent === 'agent-a' && r.status === 'stored')).toBe(true);
}

/** A ledger frame as the agent builds it from its outbox, without taking its ack. */
function ledgerFrameOf(outbox: Outbox, maxFrameBytes = 256 * 1024): string {
  const next = new LedgerSender(outbox, testLogger(), 60_000).next('plant-a', maxFrameBytes);
  if (!next) throw new Error('no ledger entries to send');
  return next.frame;
}

/** A ledger frame of one good entry and one naming another plant's source. */
const mixedLedgerFrame = (upto: number, id: string) =>
  JSON.stringify({
    t: 'ledger',
    upto,
    entries: [
      { id: `${id}-own`, source: '/plantlink/plants/plant-a/sources/line', type: 't', subject: 'work-order/WO-1', timeMs: T0, status: 'stored' },
      { id: `${id}-foreign`, source: '/plantlink/plants/plant-b/sources/line', type: 't', subject: 'work-order/WO-1', timeMs: T0, status: 'stored' },
    ],
  });

/** Counts the uplink's connections (each welcome it is connected after). */
function countConnects(uplink: { on(event: 'state', listener: (s: { state: string }) => void): unknown }) {
  const counter = { connects: 0 };
  uplink.on('state', (s) => {
    if (s.state === 'connected') counter.connects++;
  });
  return counter;
}

/** Drafts whose fact time is fractional ms, as a file mapping giving microseconds produces. */
const fractionalDrafts = () => [milestoneDraft('WO-frac-1', 'released', T0 + 0.25), milestoneDraft('WO-frac-2', 'released', T0 + 1.999), milestoneDraft('WO-frac-3', 'released', T0 + 2)];

/** A draft whose subject holds a NUL (the relay's stores cannot hold one). */
const nulDraft = () => ({ ...milestoneDraft('WO-nul', 'released', T0 + 1), subject: 'work-order/WO-\u0000nul' });

/** The fractional drafts' ledger reached the relay, with whole-ms times, and the agent's cursor is at its end. */
async function expectFractionalLedger(store: RelayStore, outbox: Outbox) {
  const local = outbox.readLedger(0, 100);
  expect(local.map((e) => e.timeMs)).toEqual([T0, T0 + 1, T0 + 2]);
  await vi.waitFor(() => expect(outbox.ledgerCursor()).toBe(local.at(-1)!.seq), WAIT);
  const rows = await relayLedger(store);
  expect(rows.map((r) => [r.id, r.timeMs]).sort()).toEqual(local.map((e) => [e.id, e.timeMs]).sort());
}

/** The relay's ledger holds the good events' entries, and the agent's cursor passed the NUL entry and everything after it. */
async function expectNulSkipped(store: RelayStore, outbox: Outbox) {
  const local = outbox.readLedger(0, 100);
  expect(local.map((e) => e.subject.includes('\u0000'))).toEqual([false, true, false]);
  await vi.waitFor(() => expect(outbox.ledgerCursor()).toBe(local.at(-1)!.seq), WAIT);
  const rows = await relayLedger(store);
  expect(rows.map((r) => r.id).sort()).toEqual([local[0]!.id, local[2]!.id].sort());
}

/** The tests whose steps are the same over either uplink; `setup` gives the relay's store and inbox, the outbox and the uplink. */
function commonLedgerTests(setup: () => Promise<{ store: RelayStore; inbox: { counts(): { events: number } }; outbox: Outbox; uplink: WebSocketUplink | MqttUplink }>) {
  it('sends every event\'s ledger entry, and the relay holds each once', async () => {
    const { store, inbox, outbox, uplink } = await setup();
    outbox.append('line', drafts(0, 2500));
    uplink.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), WAIT);
    outbox.append('line', drafts(2500, 7));
    await expectLedgerOnce(store, outbox, 2507);
    expect(inbox.counts().events).toBe(2507);
  });

  it('sends the ledger of events with a fractional fact time (whole ms), and never loses the connection over it', async () => {
    const { store, outbox, uplink } = await setup();
    const counter = countConnects(uplink);
    outbox.append('line', fractionalDrafts());
    uplink.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), WAIT);
    await expectFractionalLedger(store, outbox);
    // Later entries go too, on the same connection.
    outbox.append('line', drafts(10, 3));
    await expectLedgerOnce(store, outbox, 6);
    expect(counter.connects).toBe(1);
  });

  it('skips a ledger entry with a NUL in its subject, and the entries after it still reach the relay', async () => {
    const { store, outbox, uplink } = await setup();
    const counter = countConnects(uplink);
    outbox.append('line', [milestoneDraft('WO-before', 'released', T0), nulDraft(), milestoneDraft('WO-after', 'released', T0 + 2)]);
    uplink.start();
    // The event itself is refused by the relay (NUL) and quarantined; its neighbours are stored.
    await vi.waitFor(() => expect(outbox.stats()).toMatchObject({ pending: 0, rejected: 1 }), WAIT);
    await expectNulSkipped(store, outbox);
    expect(counter.connects).toBe(1);
  });
}

describe('ledger over the WebSocket uplink', () => {
  async function setup() {
    const { dir, outbox } = workspace();
    const ingress = await startIngress(join(dir, 'relay'));
    stops.push(() => ingress.stop());
    const uplink = new WebSocketUplink(
      WebSocketUplinkConfig.parse({ kind: 'websocket', url: ingress.url, token: ingress.tokens.a, reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, maxBatchEvents: 50, statusIntervalMs: 100 }),
      outbox,
      testLogger(),
    );
    stops.push(() => uplink.stop());
    return { ingress, outbox, uplink };
  }

  /** A raw connection as agent-a, collecting what the relay sends. */
  async function rawAgent(url: string, token: string) {
    const ws = new WebSocket(url, ['plantlink.v1'], { headers: { Authorization: `Bearer ${token}` } });
    stops.push(() => ws.terminate());
    const frames: Record<string, unknown>[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString()) as Record<string, unknown>));
    await vi.waitFor(() => expect(frames[0]).toMatchObject({ t: 'welcome', features: expect.arrayContaining(['status', 'ledger']) }), WAIT);
    return { ws, frames };
  }

  commonLedgerTests(async () => {
    const { ingress, outbox, uplink } = await setup();
    return { store: ingress.store, inbox: ingress.inbox, outbox, uplink };
  });

  it('resends from its cursor when the connection ended before the ledger ack, and the relay still holds each entry once', async () => {
    const { ingress, outbox, uplink } = await setup();
    outbox.append('line', drafts(0, 30));
    // The agent's first ledger frame reaches the relay, and the connection ends before its ack is applied.
    const raw = await rawAgent(ingress.url, ingress.tokens.a);
    raw.ws.send(ledgerFrameOf(outbox));
    await vi.waitFor(async () => expect(await relayLedger(ingress.store)).toHaveLength(30), WAIT);
    raw.ws.terminate();
    expect(outbox.ledgerCursor()).toBe(0);

    uplink.start();
    await expectLedgerOnce(ingress.store, outbox, 30);
  });

  it('refuses another plant\'s entry alone: stores the good one beside it, counts the refused one in the ack, and keeps the connection', async () => {
    const { ingress } = await setup();
    const raw = await rawAgent(ingress.url, ingress.tokens.a);
    let closed = false;
    raw.ws.once('close', () => (closed = true));
    raw.ws.send(mixedLedgerFrame(2, 'evt-1'));
    await vi.waitFor(() => expect(raw.frames[1]).toEqual({ t: 'ledger-ack', upto: 2, refused: 1 }), WAIT);
    expect((await relayLedger(ingress.store)).map((r) => r.id)).toEqual(['evt-1-own']);
    // Still open, and still taking ledger frames.
    raw.ws.send(mixedLedgerFrame(4, 'evt-2'));
    await vi.waitFor(() => expect(raw.frames[2]).toEqual({ t: 'ledger-ack', upto: 4, refused: 1 }), WAIT);
    expect((await relayLedger(ingress.store)).map((r) => r.id).sort()).toEqual(['evt-1-own', 'evt-2-own']);
    expect(closed).toBe(false);
    expect(raw.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('refuses a ledger frame of more than 2000 entries, and stores none of it', async () => {
    const { ingress } = await setup();
    const raw = await rawAgent(ingress.url, ingress.tokens.a);
    const entries = Array.from({ length: 2001 }, (_, i) => ({ id: `e${i}`, source: '/plantlink/plants/plant-a/sources/l', type: 't', subject: 's', timeMs: T0, status: 'stored' }));
    const closed = new Promise<number>((resolve) => raw.ws.once('close', (code) => resolve(code)));
    raw.ws.send(JSON.stringify({ t: 'ledger', upto: 2001, entries }));
    expect(await closed).toBe(4400);
    expect(raw.frames[1]).toMatchObject({ t: 'error', code: 'batch_too_large', reason: expect.stringContaining('2000') });
    expect(await relayLedger(ingress.store)).toEqual([]);
  });

  it('sends no ledger frame to a relay whose welcome lacks the ledger feature, and delivers as before', async () => {
    const { outbox } = workspace();
    // An older relay: it answers batches, and would refuse any frame it does not know.
    const server = createHttpServer();
    const wss = new WebSocketServer({ server, handleProtocols: () => 'plantlink.v1' });
    const seen: string[] = [];
    wss.on('connection', (ws) => {
      ws.send(JSON.stringify({ t: 'welcome', protocol: 1, agent: 'agent-a', plant: 'plant-a', maxFrameBytes: 256 * 1024, maxBatchEvents: 50, maxInFlight: 2, features: ['status'] }));
      ws.on('message', (d) => {
        const frame = JSON.parse(d.toString()) as { t: string; batch: number; events: unknown[] };
        seen.push(frame.t);
        if (frame.t === 'batch') ws.send(JSON.stringify({ t: 'ack', batch: frame.batch, stored: frame.events.length, duplicates: 0, rejected: [] }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    stops.push(() => new Promise<void>((resolve) => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.close(() => resolve());
    }));
    const uplink = new WebSocketUplink(
      WebSocketUplinkConfig.parse({ kind: 'websocket', url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`, token: 'agent-a.0123456789abcdef', statusIntervalMs: 100 }),
      outbox,
      testLogger(),
    );
    stops.push(() => uplink.stop());
    outbox.append('line', drafts(0, 120));
    uplink.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), WAIT);
    // Several status ticks pass: status frames go, ledger frames never.
    await vi.waitFor(() => expect(seen.filter((t) => t === 'status').length).toBeGreaterThanOrEqual(3), WAIT);
    expect(seen).not.toContain('ledger');
    expect(outbox.ledgerCursor()).toBe(0);
  });
});

describe('ledger over the MQTT uplink (embedded broker)', () => {
  async function setup() {
    const { dir, outbox } = workspace();
    const relay = await startMqttRelay(join(dir, 'relay'), { listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
    stops.push(() => relay.stop());
    const url = `mqtt://127.0.0.1:${relay.ports.tcp}`;
    const uplink = new MqttUplink(
      MqttUplinkConfig.parse({ kind: 'mqtt', url, token: relay.tokens.a, reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, maxBatchEvents: 50, statusIntervalMs: 100 }),
      outbox,
      { agentId: 'agent-a', plant: 'plant-a' },
      testLogger(),
    );
    stops.push(() => uplink.stop());
    return { relay, outbox, uplink, url };
  }

  /** A raw MQTT client as agent-a (its own credentials), subscribed to its acks topic. */
  async function rawAgent(url: string, token: string) {
    const client = mqttConnect(url, { clientId: 'agent-a', username: 'agent-a', password: token, clean: true, reconnectPeriod: 0 });
    stops.push(() => new Promise<void>((resolve) => client.end(true, {}, () => resolve())));
    const frames: Record<string, unknown>[] = [];
    client.on('message', (_topic, payload) => frames.push(JSON.parse(payload.toString()) as Record<string, unknown>));
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => client.subscribe(acksTopic('plant-a', 'agent-a'), { qos: 1 }, (err) => (err ? reject(err) : resolve())));
      client.once('error', reject);
    });
    await vi.waitFor(() => expect(frames[0]).toMatchObject({ t: 'welcome', features: expect.arrayContaining(['ledger']) }), WAIT);
    return { client, frames };
  }

  commonLedgerTests(async () => {
    const { relay, outbox, uplink } = await setup();
    return { store: relay.relay.store, inbox: relay.inbox, outbox, uplink };
  });

  it('resends from its cursor when the connection ended before the ledger ack, and the relay still holds each entry once', async () => {
    const { relay, outbox, uplink, url } = await setup();
    outbox.append('line', drafts(0, 30));
    const raw = await rawAgent(url, relay.tokens.a);
    raw.client.publish(eventsTopic('plant-a', 'agent-a'), ledgerFrameOf(outbox), { qos: 1 });
    await vi.waitFor(async () => expect(await relayLedger(relay.relay.store)).toHaveLength(30), WAIT);
    await new Promise<void>((resolve) => raw.client.end(true, {}, () => resolve()));
    expect(outbox.ledgerCursor()).toBe(0);

    uplink.start();
    await expectLedgerOnce(relay.relay.store, outbox, 30);
  });

  it('refuses another plant\'s entry alone: stores the good one beside it, counts the refused one in the ack, and keeps the connection', async () => {
    const { relay, url } = await setup();
    const raw = await rawAgent(url, relay.tokens.a);
    let closed = false;
    raw.client.once('close', () => (closed = true));
    raw.client.publish(eventsTopic('plant-a', 'agent-a'), mixedLedgerFrame(2, 'evt-1'), { qos: 1 });
    await vi.waitFor(() => expect(raw.frames[1]).toEqual({ t: 'ledger-ack', upto: 2, refused: 1 }), WAIT);
    expect((await relayLedger(relay.relay.store)).map((r) => r.id)).toEqual(['evt-1-own']);
    raw.client.publish(eventsTopic('plant-a', 'agent-a'), mixedLedgerFrame(4, 'evt-2'), { qos: 1 });
    await vi.waitFor(() => expect(raw.frames[2]).toEqual({ t: 'ledger-ack', upto: 4, refused: 1 }), WAIT);
    expect((await relayLedger(relay.relay.store)).map((r) => r.id).sort()).toEqual(['evt-1-own', 'evt-2-own']);
    expect(closed).toBe(false);
    expect(raw.client.connected).toBe(true);
  });

  it('sends no ledger frame to a relay whose welcome lacks the ledger feature, and delivers as before', async () => {
    const { outbox } = workspace();
    // A bare broker with an older relay's welcome; the test acks batches as that relay would.
    const broker = await Aedes.createBroker();
    const server: Server = createServer(broker.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    stops.push(() => new Promise<void>((resolve) => broker.close(() => server.close(() => resolve()))));
    const publish = (topic: string, frame: unknown, retain: boolean) =>
      new Promise<void>((resolve) => broker.publish({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(frame)), qos: 1, retain, dup: false }, () => resolve()));
    await publish(acksTopic('plant-a', 'agent-a'), { t: 'welcome', protocol: 1, agent: 'agent-a', plant: 'plant-a', maxFrameBytes: 256 * 1024, maxBatchEvents: 50, maxInFlight: 2, features: ['status'] }, true);
    const seen: string[] = [];
    broker.subscribe(eventsTopic('plant-a', 'agent-a'), (packet, done) => {
      const frame = JSON.parse(packet.payload.toString()) as { t: string; batch: number; events: unknown[] };
      seen.push(frame.t);
      if (frame.t === 'batch') void publish(acksTopic('plant-a', 'agent-a'), { t: 'ack', batch: frame.batch, stored: frame.events.length, duplicates: 0, rejected: [] }, false);
      done();
    }, () => undefined);
    const uplink = new MqttUplink(
      MqttUplinkConfig.parse({ kind: 'mqtt', url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 'agent-a.any-token-the-bare-broker-accepts', statusIntervalMs: 100 }),
      outbox,
      { agentId: 'agent-a', plant: 'plant-a' },
      testLogger(),
    );
    stops.push(() => uplink.stop());
    outbox.append('line', drafts(0, 120));
    uplink.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), WAIT);
    await vi.waitFor(() => expect(seen.filter((t) => t === 'status').length).toBeGreaterThanOrEqual(3), WAIT);
    expect(seen).not.toContain('ledger');
    expect(outbox.ledgerCursor()).toBe(0);
  });

  it('keeps the connection when an older relay replica answers a ledger frame with an error naming no batch, and events keep flowing', async () => {
    const { outbox } = workspace();
    // A rolling upgrade behind a shared subscription: the welcome (retained) is a new replica's,
    // listing `ledger`, but the replica taking this agent's frames is an old one that knows no
    // ledger frames. The test answers as that replica would.
    const broker = await Aedes.createBroker();
    const server: Server = createServer(broker.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    stops.push(() => new Promise<void>((resolve) => broker.close(() => server.close(() => resolve()))));
    let brokerConnects = 0;
    broker.on('client', (c) => {
      if (c.id === 'agent-a') brokerConnects++;
    });
    const publish = (topic: string, frame: unknown, retain: boolean) =>
      new Promise<void>((resolve) => broker.publish({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(frame)), qos: 1, retain, dup: false }, () => resolve()));
    const welcome = { t: 'welcome', protocol: 1, agent: 'agent-a', plant: 'plant-a', maxFrameBytes: 256 * 1024, maxBatchEvents: 50, maxInFlight: 2, features: ['status', 'ledger'] };
    await publish(acksTopic('plant-a', 'agent-a'), welcome, true);
    let replica: 'old' | 'new' = 'old';
    const seen: string[] = [];
    let errorsSent = 0;
    broker.subscribe(eventsTopic('plant-a', 'agent-a'), (packet, done) => {
      const frame = JSON.parse(packet.payload.toString()) as { t: string; batch: number; events: unknown[]; upto: number };
      seen.push(frame.t);
      if (frame.t === 'batch') void publish(acksTopic('plant-a', 'agent-a'), { t: 'ack', batch: frame.batch, stored: frame.events.length, duplicates: 0, rejected: [] }, false);
      if (frame.t === 'ledger' && replica === 'old') {
        errorsSent++;
        void publish(acksTopic('plant-a', 'agent-a'), { t: 'error', code: 'unexpected_frame', reason: 'not a batch or status frame: t: Invalid input' }, false);
      }
      if (frame.t === 'ledger' && replica === 'new') void publish(acksTopic('plant-a', 'agent-a'), { t: 'ledger-ack', upto: frame.upto }, false);
      done();
    }, () => undefined);
    const log = capturingLogger();
    const uplink = new MqttUplink(
      MqttUplinkConfig.parse({ kind: 'mqtt', url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 'agent-a.any-token-the-bare-broker-accepts', statusIntervalMs: 100, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } }),
      outbox,
      { agentId: 'agent-a', plant: 'plant-a' },
      log.logger,
    );
    stops.push(() => uplink.stop());
    const counter = countConnects(uplink);
    outbox.append('line', drafts(0, 120));
    uplink.start();
    await vi.waitFor(() => expect(errorsSent).toBe(1), WAIT);
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), WAIT);
    // Events keep flowing on the same connection, and several status ticks pass without another ledger frame.
    outbox.append('line', drafts(120, 80));
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), WAIT);
    const statusBefore = seen.filter((t) => t === 'status').length;
    await vi.waitFor(() => expect(seen.filter((t) => t === 'status').length).toBeGreaterThanOrEqual(statusBefore + 3), WAIT);
    expect(seen.filter((t) => t === 'ledger')).toHaveLength(1);
    expect(outbox.ledgerCursor()).toBe(0);
    expect(log.warnings().filter((w) => w.msg.includes('ledger frame'))).toHaveLength(1);

    // The upgraded replica restarts and re-publishes its welcome: the ledger goes, still on the same connection.
    replica = 'new';
    await publish(acksTopic('plant-a', 'agent-a'), welcome, true);
    const last = outbox.readLedger(0, 1_000).at(-1)!.seq;
    await vi.waitFor(() => expect(outbox.ledgerCursor()).toBe(last), WAIT);
    expect(counter.connects).toBe(1);
    expect(brokerConnects).toBe(1);
    expect(uplink.status().state).toBe('connected');
  });
});
