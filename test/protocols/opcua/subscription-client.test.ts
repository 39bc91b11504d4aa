/**
 * The supervised subscription client against a real node-opcua server (the plant
 * simulator), over real sockets.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  OpcUaSubscriptionClient,
  type Change,
  type ClientHealth,
  type ResubscribedInfo,
  type SubscriptionClientOptions,
} from '../../../protocols/opcua/subscription-client.js';
import { TransientError } from '../../../protocols/errors.js';
import { createLogger } from '../../../protocols/log.js';
import { PlantSimulator, type PlantVariable } from '../../sim/plant/plant-simulator.js';
import { TcpProxy } from '../../sim/tcp-proxy.js';

const WAIT = { timeout: 30_000, interval: 50 } as const;
const logger = createLogger('test', { level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const VARIABLES: PlantVariable[] = ['workOrder', 'salesOrder', 'product', 'plannedQuantity', 'state', 'goodCount', 'scrapCount'];

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Recorder {
  batches: Change[][];
  health: ClientHealth[];
  resubscribed: ResubscribedInfo[];
}

function startClient(options: SubscriptionClientOptions): { client: OpcUaSubscriptionClient; rec: Recorder } {
  const client = new OpcUaSubscriptionClient({
    publishingIntervalMs: 50,
    maxKeepAliveCount: 10,
    stallAfterKeepAlives: 10,
    reconnectBaseMs: 100,
    reconnectMaxMs: 1000,
    operationTimeoutMs: 5000,
    sessionTimeoutMs: 30_000,
    logger,
    ...options,
  });
  const rec: Recorder = { batches: [], health: [], resubscribed: [] };
  client.on('changes', (batch) => rec.batches.push(batch));
  client.on('health', (h) => rec.health.push(h));
  client.on('resubscribed', (info) => rec.resubscribed.push(info));
  cleanups.push(() => client.stop());
  client.start();
  return { client, rec };
}

async function startPlant(options: Parameters<typeof PlantSimulator.start>[0] = {}): Promise<PlantSimulator> {
  const sim = await PlantSimulator.start({ stepMs: 50, ...options });
  cleanups.push(() => sim.stop());
  return sim;
}

function itemsFor(sim: PlantSimulator, line = 'L1') {
  const ids = sim.nodeIdsFor(line);
  return VARIABLES.map((v) => ({ key: `${line}.${v}`, node: ids[v] }));
}

const isSorted = (batch: Change[]) => batch.every((c, i) => i === 0 || batch[i - 1]!.sourceTimestampMs <= c.sourceTimestampMs);

describe('OpcUaSubscriptionClient', () => {
  it('delivers the initial value of every item as one sorted batch, then live changes in sorted batches', async () => {
    const sim = await startPlant({ quantityPerOrder: 3 });
    sim.pause();
    const { client, rec } = startClient({ endpointUrl: sim.endpointUrl, items: itemsFor(sim) });
    await vi.waitFor(() => expect(rec.batches.length).toBe(1), WAIT);
    expect(client.health().state).toBe('connected');
    expect(rec.resubscribed).toEqual([{ generation: 1, failedItems: [], deadbandRefused: [], adopted: false }]);
    const initial = rec.batches[0]!;
    expect(initial.map((c) => c.item).sort()).toEqual(VARIABLES.map((v) => `L1.${v}`).sort());
    expect(isSorted(initial)).toBe(true);
    expect(initial.find((c) => c.item === 'L1.state')).toMatchObject({ value: 'Idle', statusGood: true, status: 'Good' });

    sim.resume();
    await vi.waitFor(() => expect(sim.truth.length).toBeGreaterThanOrEqual(4), WAIT);
    sim.pause();
    const expectedStates = ['Released', 'Running'];
    await vi.waitFor(() => {
      const states = rec.batches.slice(1).flat().filter((c) => c.item === 'L1.state').map((c) => c.value);
      expect(states.slice(0, 2)).toEqual(expectedStates);
    }, WAIT);
    const live = rec.batches.slice(1).flat();
    expect(rec.batches.every(isSorted)).toBe(true);
    // values arrive as plain JS values with the plant's source timestamps
    const release = live.filter((c) => c.item === 'L1.workOrder')[0]!;
    expect(release.value).toBe('WO-L1-0001');
    expect(live.find((c) => c.item === 'L1.plannedQuantity')?.value).toBe(3);
    // GoodCount 0 -> 0 at the release is no change: the default DataChangeTrigger (StatusValue) ignores timestamps
    const goods = live.filter((c) => c.item === 'L1.goodCount').map((c) => c.value);
    expect(goods[0]).toBe(1);
    const released = sim.truth.find((t) => t.milestone === 'released')!;
    expect(live.find((c) => c.item === 'L1.state' && c.value === 'Released')?.sourceTimestampMs).toBe(released.sourceTimestampMs);
  });

  it('does not coalesce: every step of a fast plant arrives, in order, even with a slow publishing interval', async () => {
    const sim = await startPlant({ quantityPerOrder: 60, stepMs: 2, workOrdersPerLine: 1, holdEvery: 0 });
    sim.pause();
    const { client, rec } = startClient({ endpointUrl: sim.endpointUrl, items: itemsFor(sim), publishingIntervalMs: 250 });
    await vi.waitFor(() => expect(client.health().state).toBe('connected'), WAIT);
    sim.resume();
    await sim.finished();
    const expected = Array.from({ length: 60 }, (_, i) => i + 1);
    await vi.waitFor(() => {
      const goods = rec.batches.flat().filter((c) => c.item === 'L1.goodCount' && (c.value as number) > 0).map((c) => c.value);
      expect(goods).toEqual(expected);
    }, WAIT);
    // several changes per publish: they really were queued server-side, not sampled
    expect(Math.max(...rec.batches.map((b) => b.filter((c) => c.item === 'L1.goodCount').length))).toBeGreaterThan(1);
  });

  it('resolves browse paths and reports items it cannot monitor without failing the others', async () => {
    const sim = await startPlant();
    sim.pause();
    const { client, rec } = startClient({
      endpointUrl: sim.endpointUrl,
      items: [
        { key: 'state', node: sim.browsePathFor('L1', 'state') },
        { key: 'missing-path', node: '/Objects/1:Plant/1:L9/1:State' },
        { key: 'missing-node', node: 'ns=1;s=Nope' },
        { key: 'garbage', node: 'not a node id' },
      ],
    });
    await vi.waitFor(() => expect(rec.batches.length).toBe(1), WAIT);
    expect(rec.batches[0]!.map((c) => [c.item, c.value])).toEqual([['state', 'Idle']]);
    expect(rec.resubscribed[0]!.failedItems.map((f) => f.key).sort()).toEqual(['garbage', 'missing-node', 'missing-path']);
    expect((await client.readCurrent()).map((c) => [c.item, c.value])).toEqual([['state', 'Idle']]);
  });

  it('reads the current value of every item on demand, and refuses to read when not connected', async () => {
    const sim = await startPlant({ lines: ['L1', 'L2'] });
    const idle = new OpcUaSubscriptionClient({ endpointUrl: sim.endpointUrl, items: itemsFor(sim) });
    await expect(idle.readCurrent()).rejects.toBeInstanceOf(TransientError);
    expect(idle.health().state).toBe('stopped');

    const { client } = startClient({ endpointUrl: sim.endpointUrl, items: [...itemsFor(sim, 'L1'), ...itemsFor(sim, 'L2')] });
    await vi.waitFor(() => expect(client.health().state).toBe('connected'), WAIT);
    sim.pause();
    const current = await client.readCurrent();
    expect(current).toHaveLength(14);
    expect(isSorted(current)).toBe(true);
    expect(current.find((c) => c.item === 'L2.goodCount')?.value).toBe(sim.current('L2', 'goodCount'));
  });

  it('after a server restart, resubscribes (verified recreated session) and delivers every initial value again, then live changes', async () => {
    const sim = await startPlant();
    const { rec } = startClient({ endpointUrl: sim.endpointUrl, items: [{ key: 'state', node: sim.browsePathFor('L1', 'state') }, ...itemsFor(sim)] });
    await vi.waitFor(() => expect(rec.resubscribed.length).toBe(1), WAIT);
    await sim.stopServer();
    await vi.waitFor(() => expect(rec.health.at(-1)?.state).toBe('disconnected'), WAIT);
    const batchesBefore = rec.batches.length;
    await sim.restartServer({ holdUntilObserved: true }); // the plant resumes once a client monitors it again
    await vi.waitFor(() => expect(rec.resubscribed.length).toBe(2), WAIT);
    expect(rec.resubscribed[1]!.failedItems).toEqual([]);
    await vi.waitFor(() => expect(rec.health.at(-1)?.state).toBe('connected'), WAIT);
    const initial = rec.batches[batchesBefore]!;
    expect(initial.map((c) => c.item).sort()).toEqual(['state', ...VARIABLES.map((v) => `L1.${v}`)].sort());
    const truthBefore = sim.truth.length;
    await vi.waitFor(() => expect(sim.truth.length).toBeGreaterThan(truthBefore + 2), WAIT);
    const last = sim.truth.at(-1)!;
    await vi.waitFor(() => expect(rec.batches.flat().some((c) => c.sourceTimestampMs === last.sourceTimestampMs)).toBe(true), WAIT);
  });

  it('keeps trying while the server is unreachable and subscribes once it is there', async () => {
    const sim = await startPlant();
    await sim.stopServer();
    const { rec } = startClient({ endpointUrl: sim.endpointUrl, items: itemsFor(sim) });
    await vi.waitFor(() => expect(rec.health.some((h) => h.state === 'disconnected')).toBe(true), WAIT);
    await new Promise((r) => setTimeout(r, 500));
    await sim.restartServer();
    await vi.waitFor(() => expect(rec.health.at(-1)?.state).toBe('connected'), WAIT);
    expect(rec.resubscribed.length).toBe(1); // failed attempts never got as far as a subscription
  });

  it('reports a stalled subscription and recycles the session (watchdog)', async () => {
    const sim = await startPlant();
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: sim.port });
    cleanups.push(() => proxy.stop());
    const { client, rec } = startClient({
      endpointUrl: sim.endpointUrl.replace(`:${sim.port}/`, `:${proxy.port}/`),
      items: itemsFor(sim),
      maxKeepAliveCount: 4,
      stallAfterKeepAlives: 3,
    });
    await vi.waitFor(() => expect(client.health().state).toBe('connected'), WAIT);
    proxy.freeze();
    await vi.waitFor(() => expect(client.health().state).toBe('stalled'), WAIT);
    expect(client.health().detail).toMatch(/no notification or keep-alive for \d+ ms \(limit 600 ms\)/);
    proxy.thaw();
    await vi.waitFor(() => expect(rec.resubscribed.length).toBe(2), WAIT);
    await vi.waitFor(() => expect(client.health().state).toBe('connected'), WAIT);
    const before = rec.batches.length;
    await vi.waitFor(() => expect(rec.batches.length).toBeGreaterThan(before), WAIT); // live again
  });

  it('stops cleanly: health stopped, no further events', async () => {
    const sim = await startPlant();
    const { client, rec } = startClient({ endpointUrl: sim.endpointUrl, items: itemsFor(sim) });
    await vi.waitFor(() => expect(client.health().state).toBe('connected'), WAIT);
    await client.stop();
    expect(client.health().state).toBe('stopped');
    const batches = rec.batches.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(rec.batches.length).toBe(batches);
    await client.stop(); // idempotent
  });

  it('gives an item its own absolute deadband: the server sends only values that moved more than it from the last one sent', async () => {
    const sim = await startPlant({ quantityPerOrder: 12, workOrdersPerLine: 2, holdEvery: 0, stepMs: 20 });
    sim.pause();
    const ids = sim.nodeIdsFor('L1');
    const { client, rec } = startClient({
      endpointUrl: sim.endpointUrl,
      items: [
        { key: 'banded', node: ids.goodCount, deadband: { type: 'absolute', value: 2 } },
        { key: 'every', node: ids.goodCount },
        { key: 'state', node: ids.state },
      ],
    });
    await vi.waitFor(() => expect(client.health().state).toBe('connected'), WAIT);
    expect(rec.resubscribed[0]!.deadbandRefused).toEqual([]);
    expect(sim.monitoredItems.filter((m) => m.variable === 'L1.goodCount')).toEqual([{ variable: 'L1.goodCount', absoluteDeadband: 2 }, { variable: 'L1.goodCount' }]);
    sim.resume();
    await sim.finished();
    // what the server's rule lets through, computed from the plant's truth: from the initial value on,
    // a value more than 2 away from the last one sent
    const expected = [0];
    for (const t of sim.truth) if (Math.abs(t.goodQuantity - expected.at(-1)!) > 2) expected.push(t.goodQuantity);
    const last = sim.truth.at(-1)!;
    await vi.waitFor(() => expect(rec.batches.flat().some((c) => c.item === 'state' && c.sourceTimestampMs === last.sourceTimestampMs)).toBe(true), WAIT);
    const values = (key: string) => rec.batches.flat().filter((c) => c.item === key).map((c) => c.value);
    expect(values('banded')).toEqual(expected);
    expect(expected).toEqual([0, 3, 6, 9, 12, 0, 3, 6, 9, 12]); // the rule as the OPC UA spec words it: strictly more than
    expect(values('every')).toEqual([0, ...Array.from({ length: 12 }, (_, i) => i + 1), 0, ...Array.from({ length: 12 }, (_, i) => i + 1)]);
  });

  it('monitors an item whose deadband the server refuses without it, says so in every resubscription, and warns once', async () => {
    const sim = await startPlant({ untypedCounters: true, quantityPerOrder: 4, workOrdersPerLine: 1, holdEvery: 0 });
    sim.pause();
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: sim.port });
    cleanups.push(() => proxy.stop());
    const lines: Array<{ level: number; msg: string; item?: string }> = [];
    const captured = createLogger('test', { level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
    const ids = sim.nodeIdsFor('L1');
    const { client, rec } = startClient({
      endpointUrl: sim.endpointUrl.replace(`:${sim.port}/`, `:${proxy.port}/`),
      items: [
        { key: 'good', node: ids.goodCount, deadband: { type: 'absolute', value: 2 } },
        { key: 'state', node: ids.state },
      ],
      maxKeepAliveCount: 4,
      stallAfterKeepAlives: 3,
      logger: captured,
    });
    await vi.waitFor(() => expect(client.health().state).toBe('connected'), WAIT);
    expect(rec.resubscribed[0]).toMatchObject({ failedItems: [], deadbandRefused: [{ key: 'good', reason: 'BadFilterNotAllowed' }] });
    expect(sim.monitoredItems.filter((m) => m.variable === 'L1.goodCount')).toEqual([{ variable: 'L1.goodCount' }]);
    sim.resume();
    await sim.finished();
    await vi.waitFor(() => expect(rec.batches.flat().filter((c) => c.item === 'good').map((c) => c.value)).toEqual([0, 1, 2, 3, 4]), WAIT);

    // a stall makes the client build everything anew: the items are created, and refused, again
    proxy.freeze();
    await vi.waitFor(() => expect(client.health().state).toBe('stalled'), WAIT);
    proxy.thaw();
    await vi.waitFor(() => expect(rec.resubscribed.length).toBe(2), WAIT);
    expect(rec.resubscribed[1]).toMatchObject({ adopted: false, deadbandRefused: [{ key: 'good', reason: 'BadFilterNotAllowed' }] });
    const refusals = lines.filter((l) => l.msg.startsWith('the OPC UA server refused the deadband filter') && l.item === 'good');
    expect(refusals.map((l) => l.level)).toEqual([40, 20]); // warn the first time, debug after
  });

  it('rejects duplicate item keys', () => {
    expect(
      () => new OpcUaSubscriptionClient({ endpointUrl: 'opc.tcp://127.0.0.1:1', items: [{ key: 'a', node: 'ns=1;s=A' }, { key: 'a', node: 'ns=1;s=B' }] }),
    ).toThrow(/duplicate/);
  });
});
