/**
 * The MQTT source end to end: a real aedes broker on an ephemeral port, a real SQLite outbox,
 * an edge client publishing at QoS 1. Tests wait on the source's own `message` outcomes and on
 * the outbox; the test timeout is the only time limit.
 */
import { writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeSparkplug, MqttSource, type MqttSourceConfigInput } from '../../../../agent/sources/mqtt/index.js';
import { selfSignedCert } from '../../../helpers/certs.js';
import { tempDir } from '../../../helpers/temp.js';
import { committed, edgeClient, outboxContext, outcomes, startBroker, waitFor } from './harness.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);

const JSON_MAP = {
  event: 'milestone',
  key: 'payload.workOrder',
  occurredAt: 'payload.at',
  fields: { milestone: 'payload.state', equipment: 'levels[1]', salesOrder: 'payload.salesOrder' },
} as const;

async function setup(overrides: Partial<MqttSourceConfigInput> = {}, limits: { maxEvents?: number } = {}) {
  const tmp = tempDir('plantlink-mqtt-');
  cleanups.push(tmp.cleanup);
  const broker = await startBroker();
  cleanups.push(() => broker.close());
  const box = outboxContext(tmp.dir, limits);
  cleanups.push(() => box.outbox.close());
  const edge = await edgeClient(broker.url);
  cleanups.push(() => edge.endAsync(true));
  const config: MqttSourceConfigInput = {
    kind: 'mqtt',
    name: 'line-mqtt',
    url: broker.url,
    clientId: 'plantlink-agent-a',
    topics: ['plant/+/events'],
    reconnectMs: 100,
    quarantineDir: join(tmp.dir, 'quarantine', 'line-mqtt'),
    map: JSON_MAP,
    ...overrides,
  };
  const newSource = () => {
    const source = new MqttSource(config);
    cleanups.push(() => source.stop());
    return source;
  };
  return { ...box, broker, edge, config, newSource, dir: tmp.dir };
}

function milestone(i: number, state = 'started') {
  return JSON.stringify({ workOrder: `WO-${i}`, salesOrder: `SO-${i}`, state, at: new Date(T0 + i * 1000).toISOString() });
}

async function connected(source: MqttSource) {
  await waitFor(() => source.health().state === 'connected');
}

describe('MQTT source (JSON)', () => {
  it('turns each JSON message into one milestone, mapping topic levels, and skips what `when` refuses', async () => {
    const t = await setup({ when: '$exists(payload.workOrder)' });
    const source = t.newSource();
    const seen = outcomes(source);
    await source.start(t.ctx(source.name));
    await connected(source);
    for (let i = 1; i <= 3; i++) await t.edge.publishAsync('plant/L1/events', milestone(i), { qos: 1 });
    await t.edge.publishAsync('plant/L1/events', JSON.stringify({ heartbeat: true }), { qos: 1 });
    await t.edge.publishAsync('plant/L2/events', milestone(4, 'completed'), { qos: 1 });
    await seen.until(5);
    expect(seen.seen.map((o) => o.outcome)).toEqual(['committed', 'committed', 'committed', 'skipped', 'committed']);
    const events = t.pending();
    expect(events.map((e) => [e.data.workOrder, e.data.milestone, e.data.equipment])).toEqual([
      ['WO-1', 'started', 'L1'],
      ['WO-2', 'started', 'L1'],
      ['WO-3', 'started', 'L1'],
      ['WO-4', 'completed', 'L2'],
    ]);
    expect(events[0]!.data).toEqual({ workOrder: 'WO-1', salesOrder: 'SO-1', milestone: 'started', equipment: 'L1', occurredAt: new Date(T0 + 1000).toISOString() });
    // The same fact published again (an edge retry) is the same event id: the outbox keeps one.
    await t.edge.publishAsync('plant/L1/events', milestone(2), { qos: 1 });
    await seen.until(6);
    expect(seen.seen[5]).toMatchObject({ outcome: 'committed', appended: 0, duplicates: 1 });
    expect(t.pending()).toHaveLength(4);
  });

  it('quarantines an undecodable and an unmappable message with their reasons, and the next good one flows', async () => {
    const t = await setup();
    const source = t.newSource();
    const seen = outcomes(source);
    await source.start(t.ctx(source.name));
    await connected(source);
    await t.edge.publishAsync('plant/L1/events', '{"workOrder": "WO-1",', { qos: 1 });
    await t.edge.publishAsync('plant/L1/events', milestone(2, 'exploded'), { qos: 1 });
    await t.edge.publishAsync('plant/L1/events', milestone(3), { qos: 1 });
    await seen.until(3);
    expect(seen.seen.map((o) => o.outcome)).toEqual(['quarantined', 'quarantined', 'committed']);
    expect(t.pending().map((e) => e.data.workOrder)).toEqual(['WO-3']);
    const dir = join(t.dir, 'quarantine', 'line-mqtt');
    const files = await readdir(dir);
    expect(files).toHaveLength(1);
    const lines = (await readFile(join(dir, files[0]!), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ topic: 'plant/L1/events', payload: Buffer.from('{"workOrder": "WO-1",').toString('base64') });
    expect(lines[0]!.reason).toMatch(/^payload is not JSON/);
    expect(lines[1]!.reason).toMatch(/^data: .*milestone/);
    expect(source.health()).toMatchObject({ state: 'connected', detail: expect.stringContaining('2 message(s) quarantined') });
  });

  it('after a stop mid-stream, a restart with the same clientId gets what was published meanwhile, each event once', async () => {
    const t = await setup();
    const first = t.newSource();
    const seen = outcomes(first);
    await first.start(t.ctx(first.name));
    await connected(first);
    const publishing = Promise.all(Array.from({ length: 40 }, (_, i) => t.edge.publishAsync('plant/L1/events', milestone(i + 1), { qos: 1 })));
    await seen.until(10, committed);
    await first.stop();
    await publishing;
    for (let i = 41; i <= 80; i++) await t.edge.publishAsync('plant/L1/events', milestone(i), { qos: 1 });
    const committedBeforeRestart = t.pending().length;
    expect(committedBeforeRestart).toBeLessThan(80);

    const second = t.newSource();
    await second.start(t.ctx(second.name));
    await waitFor(() => t.outbox.stats().pending >= 80);
    const orders = t.pending().map((e) => e.data.workOrder);
    expect(orders).toHaveLength(80);
    expect(new Set(orders).size).toBe(80);
    // QoS 1 from one publisher on one topic: the order survives the restart too.
    expect(orders).toEqual(Array.from({ length: 80 }, (_, i) => `WO-${i + 1}`));
  });

  it('does not acknowledge while the outbox is full, and takes the held message again after resume', async () => {
    const t = await setup({}, { maxEvents: 3 });
    const source = t.newSource();
    const seen = outcomes(source);
    await source.start(t.ctx(source.name));
    await connected(source);
    for (let i = 1; i <= 5; i++) await t.edge.publishAsync('plant/L1/events', milestone(i), { qos: 1 });
    await seen.until(1, (o) => o.outcome === 'paused');
    expect(source.health().state).toBe('paused');
    await new Promise((r) => setTimeout(r, 300));
    const before = t.pending();
    expect(before.map((e) => e.data.workOrder)).toEqual(['WO-1', 'WO-2', 'WO-3']);
    expect(seen.seen.filter(committed)).toHaveLength(3);
    // The broker still holds WO-4 (delivered, never acknowledged) and WO-5 for the session.
    expect((await t.broker.unacked('plantlink-agent-a')).map((p) => (JSON.parse(p) as { workOrder: string }).workOrder)).toEqual(['WO-4', 'WO-5']);
    // The relay takes the three: the outbox resumes, the broker redelivers WO-4 (never acked) and WO-5.
    t.outbox.ack(before.map((e) => e.seq));
    await waitFor(() => t.outbox.stats().pending === 2);
    expect(t.pending().map((e) => e.data.workOrder)).toEqual(['WO-4', 'WO-5']);
    await connected(source);
  });
});

describe('MQTT source connection failures', () => {
  it('starts and keeps retrying while its CA file is missing (reported in its health), then uses the file once it is there', async () => {
    const t = await setup();
    const port = new URL(t.broker.url).port;
    const caFile = join(t.dir, 'plant-ca.pem');
    const source = new MqttSource({ ...t.config, url: `mqtts://127.0.0.1:${port}`, tls: { caFile } });
    cleanups.push(() => source.stop());
    await source.start(t.ctx(source.name));
    await waitFor(() => /cannot connect to the plant broker: .*ENOENT/.test(source.health().detail ?? ''));
    expect(source.health().state).toBe('disconnected');
    // The file appears (a share mounted late): the next attempt reads it and gets as far as the
    // TLS handshake, which this plain broker cannot answer.
    writeFileSync(caFile, selfSignedCert(t.dir).cert);
    await waitFor(() => { const d = source.health().detail ?? ''; return d !== '' && !d.includes('ENOENT'); });
    expect(source.health().state).toBe('disconnected');
  });
});

describe('MQTT source (Sparkplug B)', () => {
  const SP_MAP = {
    event: 'milestone',
    key: 'metrics.WorkOrder',
    occurredAt: 'timestamp',
    discriminator: 'metrics.GoodCount',
    fields: { milestone: 'metrics.State', equipment: 'node', goodQuantity: "{ 'value': metrics.GoodCount, 'unit': 'EA' }" },
  } as const;

  it('resolves NDATA metric aliases from the NBIRTH, keeps the alias map as source state, and maps only NDATA', async () => {
    const t = await setup({ format: 'sparkplug', topics: ['spBv1.0/Plant1/#'], map: SP_MAP, when: "messageType = 'NDATA'" });
    const source = t.newSource();
    const seen = outcomes(source);
    await source.start(t.ctx(source.name));
    await connected(source);
    const birth = encodeSparkplug({
      timestamp: T0,
      seq: 0,
      metrics: [
        { name: 'bdSeq', type: 'UInt64', value: 0 },
        { name: 'WorkOrder', alias: 1, type: 'String', value: 'WO-7' },
        { name: 'State', alias: 2, type: 'String', value: 'released' },
        { name: 'GoodCount', alias: 3, type: 'Int64', value: 0 },
      ],
    });
    await t.edge.publishAsync('spBv1.0/Plant1/NBIRTH/Edge1', Buffer.from(birth), { qos: 1 });
    const data = (seq: number, state: string, good: number) =>
      Buffer.from(
        encodeSparkplug({
          timestamp: T0 + seq * 1000,
          seq,
          metrics: [
            { alias: 1, type: 'String', value: 'WO-7' },
            { alias: 2, type: 'String', value: state },
            { alias: 3, type: 'Int64', value: good },
          ],
        }),
      );
    await t.edge.publishAsync('spBv1.0/Plant1/NDATA/Edge1', data(1, 'started', 0), { qos: 1 });
    await t.edge.publishAsync('spBv1.0/Plant1/NDATA/Edge1', data(2, 'quantity-reported', 40), { qos: 1 });
    // An alias nobody announced: quarantined, not guessed.
    await t.edge.publishAsync('spBv1.0/Plant1/NDATA/Edge2', data(3, 'completed', 50), { qos: 1 });
    await seen.until(4);
    expect(seen.seen.map((o) => o.outcome)).toEqual(['skipped', 'committed', 'committed', 'quarantined']);
    expect(seen.seen[3]).toMatchObject({ reason: 'metric alias 1 cannot be resolved: no BIRTH seen for node Plant1/Edge2' });
    expect(t.pending().map((e) => e.data)).toEqual([
      { workOrder: 'WO-7', milestone: 'started', equipment: 'Edge1', goodQuantity: { value: 0, unit: 'EA' }, occurredAt: new Date(T0 + 1000).toISOString() },
      { workOrder: 'WO-7', milestone: 'quantity-reported', equipment: 'Edge1', goodQuantity: { value: 40, unit: 'EA' }, occurredAt: new Date(T0 + 2000).toISOString() },
    ]);
    expect(t.outbox.loadState('line-mqtt', 'sparkplug-aliases/Plant1/Edge1')).toEqual({ '1': 'WorkOrder', '2': 'State', '3': 'GoodCount' });

    // A restarted agent resolves aliases from the committed state, without a new BIRTH.
    await source.stop();
    const again = t.newSource();
    const seenAgain = outcomes(again);
    await again.start(t.ctx(again.name));
    await connected(again);
    await t.edge.publishAsync('spBv1.0/Plant1/NDATA/Edge1', data(4, 'completed', 50), { qos: 1 });
    await seenAgain.until(1);
    expect(seenAgain.seen[0]).toMatchObject({ outcome: 'committed', appended: 1 });
    expect(t.pending().at(-1)!.data).toMatchObject({ milestone: 'completed', goodQuantity: { value: 50, unit: 'EA' } });
  });
});
