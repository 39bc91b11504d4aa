/**
 * The plant simulator is the ground truth other tests compare against, so its own
 * behaviour is pinned here: the milestone sequence, unique ids, a clock that never goes
 * back, an address space reachable by NodeId and browse path, restarts that keep values
 * and timestamps, and no console noise.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AttributeIds, makeBrowsePath, OPCUAClient, OPCUACertificateManager, type ClientSession } from 'node-opcua';
import os from 'node:os';
import path from 'node:path';
import { PlantSimulator } from './plant/plant-simulator.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(options: Parameters<typeof PlantSimulator.start>[0]) {
  const sim = await PlantSimulator.start(options);
  cleanups.push(() => sim.stop());
  return sim;
}

async function session(endpointUrl: string): Promise<ClientSession> {
  const client = OPCUAClient.create({
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
    clientCertificateManager: new OPCUACertificateManager({ rootFolder: path.join(os.tmpdir(), 'plantlink-opcua-pki'), automaticallyAcceptUnknownCertificate: true }),
  });
  await client.connect(endpointUrl);
  const s = await client.createSession();
  cleanups.push(async () => {
    await s.close().catch(() => undefined);
    await client.disconnect();
  });
  return s;
}

describe('PlantSimulator', () => {
  it('runs every work order through released, started, quantities, (held, resumed), completed', async () => {
    const sim = await start({ lines: ['L1', 'L2'], workOrdersPerLine: 3, quantityPerOrder: 4, stepMs: 5, holdEvery: 2 });
    const seen: string[] = [];
    sim.on('milestone', (m) => seen.push(m.workOrder));
    await sim.finished();
    const l1 = sim.truth.filter((t) => t.line === 'L1');
    expect(l1.filter((t) => t.workOrder === 'WO-L1-0002').map((t) => `${t.milestone}:${t.goodQuantity}`)).toEqual([
      'released:0',
      'started:0',
      'quantity-reported:1',
      'quantity-reported:2',
      'held:2',
      'resumed:2',
      'quantity-reported:3',
      'quantity-reported:4',
      'completed:4',
    ]);
    expect(l1.filter((t) => t.workOrder === 'WO-L1-0001').map((t) => t.milestone)).not.toContain('held');
    expect(new Set(sim.truth.map((t) => t.workOrder))).toEqual(new Set(['WO-L1-0001', 'WO-L1-0002', 'WO-L1-0003', 'WO-L2-0001', 'WO-L2-0002', 'WO-L2-0003']));
    expect(sim.truth).toHaveLength(2 * (7 + 9 + 7)); // orders 1 and 3: 7 milestones; order 2 (held): 9
    expect(seen.length).toBeGreaterThan(0);
    const ts = sim.truth.map((t) => t.sourceTimestampMs);
    expect(ts.every((t, i) => i === 0 || t > ts[i - 1]!)).toBe(true);
  });

  it('serves the documented address space by NodeId and by browse path, on 127.0.0.1', async () => {
    const sim = await start({ lines: ['L1'], stepMs: 20 });
    expect(sim.endpointUrl).toMatch(/^opc\.tcp:\/\/127\.0\.0\.1:\d+\//);
    expect(sim.nodeIdsFor('L1')).toEqual({
      workOrder: 'ns=1;s=L1.WorkOrder',
      salesOrder: 'ns=1;s=L1.SalesOrder',
      product: 'ns=1;s=L1.Product',
      plannedQuantity: 'ns=1;s=L1.PlannedQuantity',
      state: 'ns=1;s=L1.State',
      goodCount: 'ns=1;s=L1.GoodCount',
      scrapCount: 'ns=1;s=L1.ScrapCount',
    });
    await vi.waitFor(() => expect(sim.truth.length).toBeGreaterThan(2), { timeout: 10_000 });
    sim.pause();
    const s = await session(sim.endpointUrl);
    const [path] = await s.translateBrowsePath([makeBrowsePath('RootFolder', '/Objects/1:Plant/1:L1/1:State')]);
    expect(path!.targets?.[0]?.targetId.toString()).toBe('ns=1;s=L1.State');
    const values = await s.read(Object.values(sim.nodeIdsFor('L1')).map((nodeId) => ({ nodeId, attributeId: AttributeIds.Value })));
    expect(values.map((v) => v.value.value)).toEqual([
      sim.current('L1', 'workOrder'),
      sim.current('L1', 'salesOrder'),
      sim.current('L1', 'product'),
      sim.current('L1', 'plannedQuantity'),
      sim.current('L1', 'state'),
      sim.current('L1', 'goodCount'),
      sim.current('L1', 'scrapCount'),
    ]);
    expect(values.every((v) => v.statusCode.isGood() && v.sourceTimestamp instanceof Date)).toBe(true);
  });

  it('restarts on the same port with the same values and source timestamps, and its clock never goes back', async () => {
    const sim = await start({ lines: ['L1'], stepMs: 10 });
    await vi.waitFor(() => expect(sim.truth.length).toBeGreaterThan(5), { timeout: 10_000 });
    await sim.stopServer();
    const port = sim.port;
    const before = sim.truth.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(sim.truth.length).toBe(before); // progression paused with the server
    const lastTs = sim.truth.at(-1)!.sourceTimestampMs;
    await sim.restartServer({ holdUntilObserved: true });
    sim.pause();
    expect(sim.port).toBe(port);
    const s = await session(sim.endpointUrl);
    const state = await s.read({ nodeId: sim.nodeIdsFor('L1').state, attributeId: AttributeIds.Value });
    expect(state.value.value).toBe(sim.current('L1', 'state'));
    expect(state.sourceTimestamp!.getTime()).toBeLessThanOrEqual(lastTs);
    sim.step();
    expect(sim.truth.at(-1)!.sourceTimestampMs).toBeGreaterThan(lastTs);
  });

  it('starts quickly and says nothing on the console', async () => {
    const spies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((m) => vi.spyOn(console, m));
    const t0 = Date.now();
    const sim = await start({ lines: ['L1'], stepMs: 10 });
    const startupMs = Date.now() - t0;
    await sim.stopServer();
    await sim.restartServer();
    await sim.stop();
    for (const spy of spies) {
      expect(spy).not.toHaveBeenCalled();
      spy.mockRestore();
    }
    // informative, not a threshold: the brief asks for < ~2 s
    console.info(`plant simulator startup: ${startupMs} ms`);
  });
});
