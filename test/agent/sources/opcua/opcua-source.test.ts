/**
 * The OPC UA source against a simulated plant (real node-opcua server and client, real
 * sockets): what it emits equals the plant's ground truth, across agent restarts and a
 * full outbox.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OpcUaSource } from '../../../../agent/sources/opcua/opcua-source.js';
import { PlantSimulator } from '../../../sim/plant/plant-simulator.js';
import { MemorySourceContext } from './memory-source-context.js';
import {
  expectExactlyTheTruth,
  expectFaithfulSubset,
  sourceConfig,
  WAIT,
  waitForHealth,
  waitForMilestones,
} from './plant-harness.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startPlant(options: Parameters<typeof PlantSimulator.start>[0]): Promise<PlantSimulator> {
  const sim = await PlantSimulator.start(options);
  cleanups.push(() => sim.stop());
  return sim;
}

function track(source: OpcUaSource): OpcUaSource {
  cleanups.push(() => source.stop());
  return source;
}

describe('OpcUaSource', () => {
  it('emits exactly the milestones the plant made, each once, for a finite run on two lines', async () => {
    const sim = await startPlant({ lines: ['L1', 'L2'], workOrdersPerLine: 4, quantityPerOrder: 3, stepMs: 50, holdEvery: 2 });
    sim.pause(); // start the run once the source watches
    const ctx = new MemorySourceContext();
    const source = track(new OpcUaSource(sourceConfig(sim, sim.endpointUrl, ['L1', 'L2'])));
    expect(source.health().state).toBe('stopped');
    await source.start(ctx);
    await waitForHealth(source, 'connected');
    sim.resume();
    await expectExactlyTheTruth(sim, ctx);
    // every milestone kind shows up, on both lines, with valid data
    const kinds = new Set(sim.truth.map((t) => t.milestone));
    expect([...kinds].sort()).toEqual(['completed', 'held', 'quantity-reported', 'released', 'resumed', 'started']);
    const first = ctx.events.find((e) => (e.draft.data as { workOrder: string }).workOrder === 'WO-L2-0001');
    expect(first?.draft.subject).toBe('work-order/WO-L2-0001');
    expect(first?.draft.data).toMatchObject({ salesOrder: 'SO-L2-0001', equipment: 'L2', plannedQuantity: { value: 3, unit: 'EA' } });
    expect(source.health().lastActivityMs).toBeGreaterThan(0);
  });

  it('re-emits nothing and misses nothing when the agent restarts the source over the same state', async () => {
    const sim = await startPlant({ lines: ['L1', 'L2'], workOrdersPerLine: 6, quantityPerOrder: 3, stepMs: 50, holdEvery: 2 });
    sim.pause();
    const ctx = new MemorySourceContext();
    const config = sourceConfig(sim, sim.endpointUrl, ['L1', 'L2']);
    const first = new OpcUaSource(config);
    await first.start(ctx);
    await waitForHealth(first, 'connected');
    sim.resume();
    await waitForMilestones(sim, 20);
    // the agent goes down; the plant does not move meanwhile (see the next test for when it does)
    sim.pause();
    await vi.waitFor(() => expect(ctx.events.length).toBe(sim.truth.length), WAIT);
    await first.stop();
    expect(first.health().state).toBe('stopped');
    const before = ctx.events.length;

    const second = track(new OpcUaSource(config));
    await second.start(ctx);
    await waitForHealth(second, 'connected');
    // the initial values of the new subscription re-emit nothing
    await new Promise((r) => setTimeout(r, 300));
    expect(ctx.events.length).toBe(before);
    sim.resume();
    await expectExactlyTheTruth(sim, ctx);
  });

  it('replays the server history: nothing missed, nothing twice, when the plant ran on while the agent was down', async () => {
    const sim = await startPlant({ lines: ['L1'], workOrdersPerLine: 8, quantityPerOrder: 3, stepMs: 50, holdEvery: 2 });
    sim.pause();
    const ctx = new MemorySourceContext();
    const config = sourceConfig(sim, sim.endpointUrl, ['L1']);
    const first = new OpcUaSource(config);
    await first.start(ctx);
    await waitForHealth(first, 'connected');
    sim.resume();
    await waitForMilestones(sim, 10);
    await first.stop();
    await waitForMilestones(sim, sim.truth.length + 12); // the plant keeps producing, across work orders
    const second = track(new OpcUaSource(config));
    await second.start(ctx);
    await expectExactlyTheTruth(sim, ctx);
  });

  it('without history, catches up from current values: no duplicates, the gap collapses', async () => {
    const sim = await startPlant({ lines: ['L1'], workOrdersPerLine: 8, quantityPerOrder: 3, stepMs: 50, holdEvery: 2, historize: false });
    const ctx = new MemorySourceContext();
    const config = sourceConfig(sim, sim.endpointUrl, ['L1'], { historyCatchUp: false });
    const first = new OpcUaSource(config);
    await first.start(ctx);
    await waitForMilestones(sim, 10);
    await first.stop();
    await waitForMilestones(sim, sim.truth.length + 8); // the plant keeps producing
    const second = track(new OpcUaSource(config));
    await second.start(ctx);
    await expectFaithfulSubset(sim, ctx);
    expect(ctx.events.length).toBeLessThan(sim.truth.length); // the gap really collapsed
  });

  it('pauses on a full outbox without advancing state, then replays history on resume: nothing lost', async () => {
    const sim = await startPlant({ lines: ['L1'], workOrdersPerLine: 6, quantityPerOrder: 3, stepMs: 50, holdEvery: 0 });
    sim.pause();
    const ctx = new MemorySourceContext();
    const source = track(new OpcUaSource(sourceConfig(sim, sim.endpointUrl, ['L1'])));
    await source.start(ctx);
    await waitForHealth(source, 'connected');
    sim.resume();
    await waitForMilestones(sim, 8);
    ctx.pause('outbox full (test)');
    await waitForHealth(source, 'paused');
    expect(source.health().detail).toBe('outbox full (test)');
    const stateWhilePaused = ctx.loadState('line/L1');
    await waitForMilestones(sim, sim.truth.length + 6);
    expect(ctx.pausedCommits).toBeGreaterThan(0);
    expect(ctx.loadState('line/L1')).toEqual(stateWhilePaused);
    ctx.resume();
    await waitForHealth(source, 'connected');
    await expectExactlyTheTruth(sim, ctx);
  });

  it('without history, pauses on a full outbox and reconciles the current values on resume', async () => {
    const sim = await startPlant({ lines: ['L1'], workOrdersPerLine: 6, quantityPerOrder: 3, stepMs: 50, holdEvery: 0, historize: false });
    sim.pause();
    const ctx = new MemorySourceContext();
    const source = track(new OpcUaSource(sourceConfig(sim, sim.endpointUrl, ['L1'], { historyCatchUp: false })));
    await source.start(ctx);
    await waitForHealth(source, 'connected');
    sim.resume();
    await waitForMilestones(sim, 8);
    ctx.pause('outbox full (test)');
    await waitForHealth(source, 'paused');
    await waitForMilestones(sim, sim.truth.length + 6);
    ctx.resume();
    await waitForHealth(source, 'connected');
    await expectFaithfulSubset(sim, ctx);
    expect(ctx.events.length).toBeLessThan(sim.truth.length); // what the pause dropped collapsed
  });
});
