import { join } from 'node:path';
import { connectAsync, type ErrorWithSubackPacket, type IClientOptions, type MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { deriveEventId } from '../../../protocols/events/event-id.js';
import { PRODUCTION_MILESTONE_V1 } from '../../../protocols/events/production-milestone.v1.js';
import type { AckFrame, ErrorFrame, WelcomeFrame } from '../../../protocols/uplink/frames.js';
import { acksTopic, eventsTopic } from '../../../protocols/uplink/mqtt-topics.js';
import { RelayConfig } from '../../../relay/config.js';
import { Relay as RelayProcess } from '../../../relay/relay.js';
import { startMqttRelay, testAgents } from '../../helpers/mqtt-relay.js';
import { tempDir, testLogger } from '../../helpers/temp.js';

type Relay = Awaited<ReturnType<typeof startMqttRelay>>;
let relay: Relay;
let cleanup: () => void;
const clients: MqttClient[] = [];

beforeEach(async () => {
  const t = tempDir();
  cleanup = t.cleanup;
  relay = await startMqttRelay(join(t.dir, 'relay'), { listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
  await relay.stop();
  cleanup();
});

let n = 0;
function event(overrides: Record<string, unknown> = {}) {
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
    data: { workOrder: wo, milestone: 'released', equipment: 'L1', occurredAt: new Date(t).toISOString() },
    ...overrides,
  };
}

interface Agent {
  client: MqttClient;
  /** The next frame on the agent's acks topic (the retained welcome first). */
  next(): Promise<WelcomeFrame | AckFrame | ErrorFrame>;
  closed: Promise<void>;
}

async function connectAgent(options: IClientOptions = {}): Promise<Agent> {
  const client = await connectAsync(`mqtt://127.0.0.1:${relay.ports.tcp}`, {
    protocolVersion: 4,
    clientId: 'agent-a',
    username: 'agent-a',
    password: relay.tokens.a,
    clean: false,
    reconnectPeriod: 0,
    ...options,
  });
  clients.push(client);
  const queue: unknown[] = [];
  const waiters: ((f: unknown) => void)[] = [];
  client.on('message', (_topic, payload) => {
    const f = JSON.parse(payload.toString());
    const w = waiters.shift();
    if (w) w(f);
    else queue.push(f);
  });
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  await client.subscribeAsync(acksTopic('plant-a', 'agent-a'), { qos: 1 });
  return { client, next: () => new Promise((resolve) => (queue.length ? resolve(queue.shift() as never) : waiters.push(resolve as never))), closed };
}

/** The CONNACK refusal a connection attempt gets, as mqtt.js reports it. */
async function refusal(options: IClientOptions): Promise<{ code: unknown; message: string }> {
  const error = await connectAsync(`mqtt://127.0.0.1:${relay.ports.tcp}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...options }).then(
    (c) => {
      clients.push(c);
      return new Error('connected');
    },
    (e: Error) => e,
  );
  return { code: (error as { code?: unknown }).code, message: error.message };
}

const publish = (a: Agent, payload: string, topic = eventsTopic('plant-a', 'agent-a'), retain = false) => a.client.publishAsync(topic, payload, { qos: 1, retain });

describe('embedded MQTT broker (aedes) in the relay', () => {
  it('welcomes an agent with its plant and limits (retained), and acks a batch only once it is in the inbox', async () => {
    const a = await connectAgent();
    expect(await a.next()).toMatchObject({ t: 'welcome', protocol: 1, agent: 'agent-a', plant: 'plant-a', maxBatchEvents: 100, maxFrameBytes: 256 * 1024 });
    await publish(a, JSON.stringify({ t: 'batch', batch: 0, events: [event(), event()] }));
    const ack = await a.next();
    expect(ack).toEqual({ t: 'ack', batch: 0, stored: 2, duplicates: 0, rejected: [] });
    expect(relay.inbox.counts()).toMatchObject({ events: 2, pending: 0 });
    expect(relay.relay.agents.list().find((x) => x.id === 'agent-a')).toMatchObject({ connected: true, batches: 1, events: 2 });
  });

  it('dedupes a batch resent on a new connection of the same persistent session', async () => {
    const events = [event(), event()];
    const a1 = await connectAgent();
    await a1.next(); // welcome
    await publish(a1, JSON.stringify({ t: 'batch', batch: 0, events }));
    expect(await a1.next()).toMatchObject({ stored: 2 });
    await a1.client.endAsync();
    const a2 = await connectAgent();
    await a2.next(); // welcome again: it is retained
    await publish(a2, JSON.stringify({ t: 'batch', batch: 1, events }));
    expect(await a2.next()).toMatchObject({ batch: 1, stored: 0, duplicates: 2 });
    expect(relay.inbox.counts().events).toBe(2);
  });

  it('refuses wrong credentials, a token of another agent and a client id that is not the agent id, with the reason', async () => {
    expect(await refusal({ clientId: 'agent-a', username: 'agent-a', password: 'agent-a.not-the-secret-at-all' })).toMatchObject({ code: 4, message: expect.stringContaining('Bad username or password') });
    expect(await refusal({ clientId: 'agent-a', username: 'agent-a' })).toMatchObject({ code: 4 });
    expect(await refusal({ clientId: 'agent-b', username: 'agent-b', password: relay.tokens.a })).toMatchObject({ code: 4 });
    expect(await refusal({ clientId: 'someone-else', username: 'agent-a', password: relay.tokens.a })).toMatchObject({ code: 2, message: expect.stringContaining('Identifier rejected') });
    expect(relay.relay.agents.list().every((x) => !x.connected)).toBe(true);
  });

  it('refuses an MQTT 5 client: the embedded broker speaks MQTT 3.1.1 only', async () => {
    expect(await refusal({ protocolVersion: 5, clientId: 'agent-a', username: 'agent-a', password: relay.tokens.a })).toMatchObject({ code: 1, message: expect.stringContaining('Unacceptable protocol version') });
  });

  it('closes the connection of an agent publishing to another plant\'s topic, and stores nothing from it', async () => {
    const a = await connectAgent();
    await a.next();
    void publish(a, JSON.stringify({ t: 'batch', batch: 0, events: [event({ plant: 'plant-b', source: '/plantlink/plants/plant-b/sources/line' })] }), eventsTopic('plant-b', 'agent-b')).catch(() => undefined);
    await a.closed;
    expect(relay.inbox.counts()).toMatchObject({ events: 0, ingressRejections: 0 });
  });

  it('closes the connection of an agent publishing a retained batch on its own topic', async () => {
    const a = await connectAgent();
    await a.next();
    void publish(a, JSON.stringify({ t: 'batch', batch: 0, events: [event()] }), eventsTopic('plant-a', 'agent-a'), true).catch(() => undefined);
    await a.closed;
    expect(relay.inbox.counts().events).toBe(0);
  });

  it('refuses subscriptions to another agent\'s acks, to wildcards and to $share, and grants only the agent\'s own', async () => {
    const a = await connectAgent();
    // mqtt.js rejects a SUBACK with any failure code; the codes are on the packet it carries.
    const refused = await a.client
      .subscribeAsync([acksTopic('plant-b', 'agent-b'), 'plantlink/v1/#', eventsTopic('plant-a', 'agent-a'), `$share/g/${acksTopic('plant-a', 'agent-a')}`, acksTopic('plant-a', 'agent-a')], { qos: 1 })
      .then(
        () => undefined,
        (e: ErrorWithSubackPacket) => e.packet.granted,
      );
    expect(refused).toEqual([128, 128, 128, 128, 1]);
  });

  it('answers a frame that is not a batch with an error frame naming the batch; the connection stays', async () => {
    const a = await connectAgent();
    await a.next();
    await publish(a, '{"t":"batch","batch":7,"events":"not a list"}');
    expect(await a.next()).toMatchObject({ t: 'error', code: 'unexpected_frame', batch: 7 });
    await publish(a, 'not json at all');
    expect(await a.next()).toMatchObject({ t: 'error', code: 'malformed_frame' });
    await publish(a, JSON.stringify({ t: 'batch', batch: 8, events: Array.from({ length: 101 }, () => event()) }));
    expect(await a.next()).toMatchObject({ t: 'error', code: 'batch_too_large', batch: 8 });
    await publish(a, JSON.stringify({ t: 'batch', batch: 9, events: [event({}), { ...event(), data: { product: 'x'.repeat(300 * 1024) } }] }));
    expect(await a.next()).toMatchObject({ t: 'error', code: 'frame_too_large', batch: 9 });
    await publish(a, JSON.stringify({ t: 'batch', batch: 10, events: [event()] }));
    expect(await a.next()).toMatchObject({ t: 'ack', batch: 10, stored: 1 });
  });

  it('rejects events of another plant, or from another plant\'s source, on the agent\'s own topic, and stores the rest', async () => {
    const a = await connectAgent();
    await a.next();
    const batch = [event({ plant: 'plant-b' }), event({ source: '/plantlink/plants/plant-b/sources/line' }), event()];
    await publish(a, JSON.stringify({ t: 'batch', batch: 3, events: batch }));
    const ack = (await a.next()) as AckFrame;
    expect(ack.stored).toBe(1);
    expect(ack.rejected.map((r) => [r.index, r.code])).toEqual([
      [0, 'plant_mismatch'],
      [1, 'plant_mismatch'],
    ]);
    expect(relay.inbox.listIngressRejections().map((r) => r.code)).toEqual(['plant_mismatch', 'plant_mismatch']);
  });

  it('records an agent\'s backlog report, which needs no answer', async () => {
    const a = await connectAgent();
    await a.next();
    await publish(a, JSON.stringify({ t: 'status', pending: 42, pendingBytes: 4200, oldestPendingAgeMs: 1000 }));
    await vi.waitFor(() => expect(relay.relay.agents.list().find((x) => x.id === 'agent-a')?.backlog).toMatchObject({ pending: 42, pendingBytes: 4200 }));
  });

  it('fails its start with the bind error when the MQTT-over-WebSocket port is taken, instead of crashing the process', async () => {
    const t = tempDir();
    const second = new RelayProcess(
      RelayConfig.parse({
        relay: { dataDir: join(t.dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
        // The first relay's MQTT port: taken.
        mqtt: { listeners: { ws: { host: '127.0.0.1', port: relay.ports.tcp, path: '/mqtt' } } },
        agents: testAgents().registry,
        sinks: [{ name: 'crm', kind: 'webhook', url: 'http://127.0.0.1:9/never', secret: 'x'.repeat(32) }],
        routes: [{ sinks: ['crm'] }],
      }),
      { logger: testLogger() },
    );
    try {
      await expect(second.start()).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await second.stop();
      t.cleanup();
    }
    // The first relay still serves.
    const a = await connectAgent();
    expect(await a.next()).toMatchObject({ t: 'welcome' });
  });
});
