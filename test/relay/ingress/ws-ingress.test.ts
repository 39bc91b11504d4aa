import { connect as tcpConnect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { deriveEventId } from '../../../protocols/events/event-id.js';
import { PRODUCTION_MILESTONE_V1 } from '../../../protocols/events/production-milestone.v1.js';
import type { AckFrame, ErrorFrame, WelcomeFrame } from '../../../protocols/uplink/frames.js';
import { startIngress } from '../../helpers/relay-ingress.js';
import { tempDir } from '../../helpers/temp.js';

type Ingress = Awaited<ReturnType<typeof startIngress>>;
let ingress: Ingress;
let cleanup: () => void;
const sockets: WebSocket[] = [];

beforeEach(async () => {
  const t = tempDir();
  cleanup = t.cleanup;
  ingress = await startIngress(t.dir);
});
afterEach(async () => {
  sockets.forEach((s) => s.terminate());
  await ingress.stop();
  cleanup();
});

let n = 0;
function event(overrides: Record<string, unknown> = {}, data: Record<string, unknown> = {}) {
  n++;
  const t = Date.parse('2026-11-23T08:00:00Z') + n;
  const wo = `WO-${n}`;
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
    data: { workOrder: wo, milestone: 'released', equipment: 'L1', occurredAt: new Date(t).toISOString(), ...data },
    ...overrides,
  };
}

interface Client {
  ws: WebSocket;
  welcome: WelcomeFrame;
  next(): Promise<AckFrame | ErrorFrame>;
  closed: Promise<{ code: number; reason: string }>;
}

function connect(token = ingress.tokens.a, protocols = ['plantlink.v1']): Promise<Client> {
  const ws = new WebSocket(ingress.url, protocols, { headers: { Authorization: `Bearer ${token}` } });
  sockets.push(ws);
  const queue: unknown[] = [];
  const waiters: ((f: unknown) => void)[] = [];
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    const w = waiters.shift();
    if (w) w(f);
    else queue.push(f);
  });
  const next = () => new Promise<unknown>((resolve) => (queue.length ? resolve(queue.shift()) : waiters.push(resolve)));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', async () => resolve({ ws, welcome: (await next()) as WelcomeFrame, next: next as Client['next'], closed }));
  });
}

function refusal(token: string, protocols = ['plantlink.v1']): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(ingress.url, protocols, { headers: { Authorization: `Bearer ${token}` } });
    sockets.push(ws);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', () => undefined);
  });
}

function upgradeRequest(path: string, token: string): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: plantlink.v1\r\n` +
    `Authorization: Bearer ${token}\r\n\r\n`
  );
}

/** Sends an upgrade request as raw bytes (ws would refuse to send a bad path) and returns the answer. */
function rawUpgrade(path: string, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(ingress.port, '127.0.0.1', () => socket.write(upgradeRequest(path, token)));
    let answer = '';
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe('WebSocket ingress', () => {
  it('welcomes an agent with its plant and limits, and acks a batch only after storing it', async () => {
    const c = await connect();
    expect(c.welcome).toMatchObject({ t: 'welcome', protocol: 1, agent: 'agent-a', plant: 'plant-a', maxBatchEvents: 100 });
    const events = [event(), event()];
    c.ws.send(JSON.stringify({ t: 'batch', batch: 0, events }));
    expect(await c.next()).toEqual({ t: 'ack', batch: 0, stored: 2, duplicates: 0, rejected: [] });
    expect(ingress.inbox.counts()).toMatchObject({ events: 2, pending: 2 });
  });

  it('dedupes a resent batch across a reconnect', async () => {
    const events = [event(), event()];
    const c1 = await connect();
    c1.ws.send(JSON.stringify({ t: 'batch', batch: 0, events }));
    await c1.next();
    c1.ws.close();
    const c2 = await connect();
    c2.ws.send(JSON.stringify({ t: 'batch', batch: 0, events }));
    expect(await c2.next()).toMatchObject({ stored: 0, duplicates: 2 });
    expect(ingress.inbox.counts()).toMatchObject({ events: 2, pending: 2 });
  });

  it('refuses a wrong token with 401 and a reason', async () => {
    expect(await refusal('agent-a.not-the-secret')).toMatchObject({ status: 401, body: expect.stringContaining('authentication failed') });
    expect(await refusal('garbage')).toMatchObject({ status: 401 });
  });

  it('refuses an agent that speaks no common protocol version with 426', async () => {
    const r = await refusal(ingress.tokens.a, ['plantlink.v9']);
    expect(r.status).toBe(426);
    expect(r.body).toContain('plantlink.v1');
  });

  it('rejects events for another plant, unknown types and versions, and invalid data, and stores the rest', async () => {
    const c = await connect();
    const good = event();
    const otherPlant = event({ plant: 'plant-b' });
    const unknownVersion = event({ type: 'com.plantlink.production.milestone.v9' });
    const badData = event({}, { milestone: 'exploded' });
    const notAnEvent = { hello: 'world' };
    c.ws.send(JSON.stringify({ t: 'batch', batch: 7, events: [good, otherPlant, unknownVersion, badData, notAnEvent] }));
    const ack = (await c.next()) as AckFrame;
    expect(ack.stored).toBe(1);
    expect(ack.rejected.map((r) => [r.index, r.code])).toEqual([
      [1, 'plant_mismatch'],
      [2, 'unknown_type'],
      [3, 'invalid_data'],
      [4, 'invalid_envelope'],
    ]);
    expect(ack.rejected[0]!.reason).toContain('plant-a');
    expect(ingress.inbox.listIngressRejections().map((r) => r.code).sort()).toEqual(['invalid_data', 'invalid_envelope', 'plant_mismatch', 'unknown_type']);
  });

  it('refuses an event whose source belongs to another plant, even with the right plant attribute', async () => {
    const c = await connect();
    c.ws.send(JSON.stringify({ t: 'batch', batch: 0, events: [event({ source: '/plantlink/plants/plant-b/sources/line' }), event()] }));
    const ack = (await c.next()) as AckFrame;
    expect(ack.stored).toBe(1);
    expect(ack.rejected).toMatchObject([{ index: 0, code: 'plant_mismatch' }]);
  });

  it('survives a pathologically nested event: that event is refused, the relay and the rest of the batch carry on', async () => {
    const c = await connect();
    const deep = `${'['.repeat(110_000)}${']'.repeat(110_000)}`; // 220 KB: under the frame limit
    c.ws.send(`{"t":"batch","batch":0,"events":[${deep},${JSON.stringify(event())}]}`);
    const ack = (await c.next()) as AckFrame;
    expect(ack.stored).toBe(1);
    expect(ack.rejected[0]).toMatchObject({ index: 0 });
    const c2 = await connect();
    c2.ws.send(JSON.stringify({ t: 'batch', batch: 1, events: [event()] }));
    expect(await c2.next()).toMatchObject({ t: 'ack', stored: 1 });
  });

  it('refuses an event over the per-event size limit and stores its neighbours', async () => {
    const c = await connect();
    c.ws.send(JSON.stringify({ t: 'batch', batch: 0, events: [event({}, { product: 'x'.repeat(70 * 1024) }), event()] }));
    const ack = (await c.next()) as AckFrame;
    expect(ack.stored).toBe(1);
    expect(ack.rejected).toMatchObject([{ index: 0, code: 'event_too_large' }]);
  });

  it('answers a malformed or truncated frame with a clear error and closes; the agent can reconnect', async () => {
    const c = await connect();
    const full = JSON.stringify({ t: 'batch', batch: 0, events: [event()] });
    c.ws.send(full.slice(0, full.length / 2));
    const err = (await c.next()) as ErrorFrame;
    expect(err).toMatchObject({ t: 'error', code: 'malformed_frame' });
    expect((await c.closed).code).toBe(1007);
    const c2 = await connect();
    c2.ws.send(full);
    expect(await c2.next()).toMatchObject({ t: 'ack', stored: 1 });
  });

  it('answers an upgrade to a path no URL parser takes with 404, and keeps serving', async () => {
    const answer = await rawUpgrade('//[', ingress.tokens.a);
    expect(answer).toMatch(/^HTTP\/1\.1 404 /);
    const c = await connect();
    expect(c.welcome.t).toBe('welcome');
  });

  it('survives clients that reset their connection while being refused', async () => {
    for (let i = 0; i < 30; i++) {
      const socket = tcpConnect(ingress.port, '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(upgradeRequest('/v1/uplink', 'agent-a.wrong-secret-wrong-secret'));
      // Reset (RST) at once, before or while the 401 is written back.
      await new Promise((resolve) => setTimeout(resolve, i % 3));
      socket.resetAndDestroy();
    }
    const c = await connect();
    expect(c.welcome.t).toBe('welcome');
  });

  it('answers a JSON frame that is not a batch with unexpected_frame', async () => {
    const c = await connect();
    c.ws.send(JSON.stringify({ t: 'hello' }));
    expect(await c.next()).toMatchObject({ t: 'error', code: 'unexpected_frame' });
    expect((await c.closed).code).toBe(4400);
  });

  it('closes with 1009 on a frame over the size limit and stores nothing from it', async () => {
    const c = await connect();
    const huge = event({}, { product: 'x'.repeat(300 * 1024) });
    c.ws.send(JSON.stringify({ t: 'batch', batch: 0, events: [huge] }));
    expect((await c.closed).code).toBe(1009);
    expect(ingress.inbox.counts().events).toBe(0);
  });

  it('refuses a batch with more events than announced', async () => {
    const c = await connect();
    c.ws.send(JSON.stringify({ t: 'batch', batch: 0, events: Array.from({ length: 101 }, () => event()) }));
    expect(await c.next()).toMatchObject({ t: 'error', code: 'batch_too_large' });
    expect(ingress.inbox.counts().events).toBe(0);
  });
});
