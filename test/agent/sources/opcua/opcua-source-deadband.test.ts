/**
 * The quantity deadband against a simulated plant (real node-opcua server and client): the
 * source reports exactly what the deadband rule predicts from the plant's ground truth,
 * whether the server filters too (and hides values the source must read back), refuses to,
 * or keeps no history.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OpcUaSource } from '../../../../agent/sources/opcua/opcua-source.js';
import type { OpcUaSourceConfigInput } from '../../../../agent/sources/opcua/config.js';
import type { ProductionMilestoneV1 } from '../../../../protocols/events/production-milestone.v1.js';
import { createLogger } from '../../../../protocols/log.js';
import { PlantSimulator, type PlantSimulatorOptions } from '../../../sim/plant/plant-simulator.js';
import { MemorySourceContext } from './memory-source-context.js';
import { emittedKeys, sourceConfig, truthWithDeadband, WAIT, waitForHealth } from './plant-harness.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DEADBAND = 2;

async function startPlant(options: PlantSimulatorOptions): Promise<PlantSimulator> {
  const sim = await PlantSimulator.start(options);
  cleanups.push(() => sim.stop());
  sim.pause(); // runs once the source watches
  return sim;
}

function withDeadband(sim: PlantSimulator, lines: string[], overrides: Partial<OpcUaSourceConfigInput> = {}, onServer = true): OpcUaSourceConfigInput {
  const config = sourceConfig(sim, sim.endpointUrl, lines, overrides);
  return { ...config, lines: config.lines.map((l) => ({ ...l, quantityDeadband: { type: 'absolute', value: DEADBAND, onServer } })) };
}

async function startSource(config: OpcUaSourceConfigInput, ctx: MemorySourceContext, logger?: NonNullable<Parameters<typeof createLogger>[1]>['destination']): Promise<OpcUaSource> {
  const source = new OpcUaSource(config, logger ? createLogger('test', { level: 'debug', destination: logger }) : undefined);
  cleanups.push(() => source.stop());
  await source.start(ctx);
  await waitForHealth(source, 'connected');
  return source;
}

const emitted = (ctx: MemorySourceContext, workOrder: string, milestone: string) =>
  ctx.events.some((e) => {
    const d = e.draft.data as ProductionMilestoneV1;
    return d.workOrder === workOrder && d.milestone === milestone;
  });

/** Every emitted milestone is one the rule predicts from the truth, each once, and none is missing. */
async function expectExactlyTheDeadbandTruth(sim: PlantSimulator, ctx: MemorySourceContext): Promise<void> {
  await sim.finished();
  const expected = truthWithDeadband(sim, DEADBAND).sort();
  await vi.waitFor(() => expect(emittedKeys(ctx).sort()).toEqual(expected), WAIT);
  expect(ctx.duplicates).toBe(0);
  // the test is about something: some counts were left out, and the completions carry counts no report did
  const reports = expected.filter((k) => k.includes('|quantity-reported|'));
  expect(reports.length).toBeGreaterThan(0);
  expect(reports.length).toBeLessThan(sim.truth.filter((t) => t.milestone === 'quantity-reported').length / 2);
}

describe('OpcUaSource quantity deadband', () => {
  it('with the server filtering too, reports exactly what the rule predicts from the truth, each once, across an agent restart mid-work-order', async () => {
    // 10 counts per order, deadband 2: reports at 3, 6, 9; the 10 a completion carries is one the server never sends
    const sim = await startPlant({ lines: ['L1', 'L2'], workOrdersPerLine: 3, quantityPerOrder: 10, stepMs: 40, holdEvery: 2 });
    const ctx = new MemorySourceContext();
    const config = withDeadband(sim, ['L1', 'L2']);
    const first = await startSource(config, ctx);
    const counters = sim.monitoredItems.filter((m) => /\.(goodCount|scrapCount)$/.test(m.variable));
    expect(counters.map((m) => [m.variable, m.absoluteDeadband]).sort()).toEqual([
      ['L1.goodCount', DEADBAND],
      ['L1.scrapCount', DEADBAND],
      ['L2.goodCount', DEADBAND],
      ['L2.scrapCount', DEADBAND],
    ]);

    // stop the plant in the second work order at count 4 (a count the server does not send)
    sim.on('milestone', (m) => {
      if (m.workOrder === 'WO-L1-0002' && m.milestone === 'quantity-reported' && m.goodQuantity === 4) sim.pause();
    });
    sim.resume();
    await vi.waitFor(() => expect(emittedKeys(ctx)).toContain(`WO-L2-0002|quantity-reported|3|${sim.truth.find((t) => t.workOrder === 'WO-L2-0002' && t.goodQuantity === 3)?.sourceTimestampMs}`), WAIT);
    await first.stop();
    // while the agent is down the plant counts on to 5: the new subscription's initial value (5)
    // is not the count last reported (3), so the server's deadband starts from elsewhere than ours
    sim.step();
    await startSource(config, ctx);
    sim.resume();
    await expectExactlyTheDeadbandTruth(sim, ctx);
  });

  it('falls back to the client-side deadband when the server refuses the filter', async () => {
    const sim = await startPlant({ lines: ['L1'], workOrdersPerLine: 3, quantityPerOrder: 10, stepMs: 40, holdEvery: 2, untypedCounters: true });
    const ctx = new MemorySourceContext();
    const logs: Array<{ level: number; msg: string; item?: string; reason?: string }> = [];
    await startSource(withDeadband(sim, ['L1']), ctx, { write: (line: string) => void logs.push(JSON.parse(line)) });
    // asked for, refused, monitored without
    expect(sim.monitoredItems.filter((m) => m.variable === 'L1.goodCount')).toEqual([{ variable: 'L1.goodCount' }]);
    expect(logs.filter((l) => l.level === 40 && l.msg.startsWith('the OPC UA server refused the deadband filter')).map((l) => [l.item, l.reason]).sort()).toEqual([
      ['0:goodCount', 'BadFilterNotAllowed'],
      ['0:scrapCount', 'BadFilterNotAllowed'],
    ]);
    sim.resume();
    await expectExactlyTheDeadbandTruth(sim, ctx);
  });

  it('without server history, reads the hidden counts back from current values: holds and completions still carry the exact counts', async () => {
    const sim = await startPlant({ lines: ['L1'], workOrdersPerLine: 3, quantityPerOrder: 10, stepMs: 20, holdEvery: 2, historize: false });
    const ctx = new MemorySourceContext();
    await startSource(withDeadband(sim, ['L1'], { historyCatchUp: false }), ctx);
    // A current value tells the count at a state change only while the count has not moved
    // since: the plant waits at each state change until the source has emitted it (a plant's
    // counts stand still around its state changes too).
    const waiting: Array<{ workOrder: string; milestone: string }> = [];
    sim.on('milestone', (m) => {
      if (m.milestone === 'quantity-reported') return;
      sim.pause();
      waiting.push(m);
    });
    sim.resume();
    while (!(await Promise.race([sim.finished().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20))]))) {
      const next = waiting[0];
      if (!next) continue;
      await vi.waitFor(() => expect(emitted(ctx, next.workOrder, next.milestone)).toBe(true), WAIT);
      waiting.shift();
      if (waiting.length === 0) sim.resume();
    }
    await expectExactlyTheDeadbandTruth(sim, ctx);
  });

  it('without the server filter (onServer: false), reports exactly the same', async () => {
    const sim = await startPlant({ lines: ['L1'], workOrdersPerLine: 2, quantityPerOrder: 10, stepMs: 20, holdEvery: 2 });
    const ctx = new MemorySourceContext();
    await startSource(withDeadband(sim, ['L1'], {}, false), ctx);
    expect(sim.monitoredItems.filter((m) => m.absoluteDeadband !== undefined)).toEqual([]);
    sim.resume();
    await expectExactlyTheDeadbandTruth(sim, ctx);
  });
});
