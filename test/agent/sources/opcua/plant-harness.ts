/**
 * Shared pieces of the OPC UA source integration tests: a source config pointing at a
 * simulated plant, and the comparison of emitted milestones against its ground truth.
 */
import { expect, vi } from 'vitest';
import type { OpcUaSourceConfigInput } from '../../../../agent/sources/opcua/config.js';
import type { OpcUaSource } from '../../../../agent/sources/opcua/opcua-source.js';
import type { SourceHealthState } from '../../../../agent/sources/source.js';
import type { ProductionMilestoneV1 } from '../../../../protocols/events/production-milestone.v1.js';
import type { GroundTruthMilestone, PlantSimulator } from '../../../sim/plant/plant-simulator.js';
import type { MemorySourceContext } from './memory-source-context.js';

export const WAIT = { timeout: 30_000, interval: 50 } as const;

/**
 * The first line is addressed by NodeId, the others by browse path, so both ways are
 * exercised. Fast publishing, a generous stall window (a loaded CI box must not look
 * stalled), quick reconnection.
 */
export function sourceConfig(
  sim: PlantSimulator,
  endpointUrl: string,
  lines: string[],
  overrides: Partial<OpcUaSourceConfigInput> = {},
): OpcUaSourceConfigInput {
  return {
    name: 'line-opcua',
    kind: 'opcua',
    endpointUrl,
    publishingIntervalMs: 50,
    maxKeepAliveCount: 10,
    stallAfterKeepAlives: 10,
    operationTimeoutMs: 5000,
    sessionTimeoutMs: 30_000,
    reconnect: { baseMs: 100, maxMs: 1000 },
    lines: lines.map((line, i) => {
      const ids = sim.nodeIdsFor(line);
      const node = (v: keyof typeof ids) => (i === 0 ? ids[v] : sim.browsePathFor(line, v));
      return {
        equipment: line,
        unit: 'EA',
        nodes: {
          workOrder: node('workOrder'),
          state: node('state'),
          goodCount: node('goodCount'),
          scrapCount: node('scrapCount'),
          salesOrder: node('salesOrder'),
          product: node('product'),
          plannedQuantity: node('plannedQuantity'),
        },
      };
    }),
    ...overrides,
  };
}

export const truthKey = (t: GroundTruthMilestone) => `${t.workOrder}|${t.milestone}|${t.goodQuantity}|${t.sourceTimestampMs}`;

export function emittedKeys(ctx: MemorySourceContext): string[] {
  return ctx.events.map((e) => {
    const d = e.draft.data as ProductionMilestoneV1;
    return `${d.workOrder}|${d.milestone}|${d.goodQuantity?.value}|${e.draft.fact.occurredAtMs}`;
  });
}

/** Every milestone the plant made was emitted exactly once, and nothing else was. */
export async function expectExactlyTheTruth(sim: PlantSimulator, ctx: MemorySourceContext): Promise<void> {
  await sim.finished();
  const expected = sim.truth.map(truthKey).sort();
  await vi.waitFor(() => expect(emittedKeys(ctx).sort()).toEqual(expected), WAIT);
  expect(ctx.duplicates).toBe(0);
}

/** Work order, milestone, and the good quantity for quantity-reported (as the e2e tests key them). */
const looseKey = (workOrder: string, milestone: string, good: number | undefined) =>
  `${workOrder}|${milestone}${milestone === 'quantity-reported' ? `|${good}` : ''}`;

/**
 * What holds when changes were missed (the plant ran while nobody could see it) and the
 * source caught up from current values: nothing is emitted twice; every emitted milestone
 * is one the plant made (work order, milestone, and count for quantities); every
 * quantity-reported and each line's final completion carry the plant's exact source time.
 * A catch-up state milestone may carry the time of the value that revealed it (a work order
 * first seen Running after a missed hold/resume is `started` at the resume's time).
 */
export async function expectFaithfulSubset(sim: PlantSimulator, ctx: MemorySourceContext): Promise<void> {
  await sim.finished();
  const exact = new Set(sim.truth.map(truthKey));
  const loose = new Set(sim.truth.map((t) => looseKey(t.workOrder, t.milestone, t.goodQuantity)));
  const lastPerLine = [...new Map(sim.truth.filter((t) => t.milestone === 'completed').map((t) => [t.line, truthKey(t)])).values()];
  await vi.waitFor(() => expect(emittedKeys(ctx)).toEqual(expect.arrayContaining(lastPerLine)), WAIT);
  const emitted = ctx.events.map((e) => {
    const d = e.draft.data as ProductionMilestoneV1;
    return { exact: `${d.workOrder}|${d.milestone}|${d.goodQuantity?.value}|${e.draft.fact.occurredAtMs}`, loose: looseKey(d.workOrder, d.milestone, d.goodQuantity?.value), milestone: d.milestone };
  });
  const looseKeys = emitted.map((e) => e.loose);
  expect(new Set(looseKeys).size).toBe(looseKeys.length);
  expect(looseKeys.filter((k) => !loose.has(k))).toEqual([]);
  expect(emitted.filter((e) => e.milestone === 'quantity-reported' && !exact.has(e.exact)).map((e) => e.exact)).toEqual([]);
  expect(ctx.duplicates).toBe(0);
}

export async function waitForHealth(source: OpcUaSource, state: SourceHealthState): Promise<void> {
  await vi.waitFor(() => expect(source.health().state).toBe(state), WAIT);
}

export async function waitForMilestones(sim: PlantSimulator, count: number): Promise<void> {
  await vi.waitFor(() => expect(sim.truth.length).toBeGreaterThanOrEqual(count), WAIT);
}

/**
 * The plant's truth as a deadband of `deadband` should report it, computed here on its own
 * (not with the line machine): per line, from 0 at every new work order, a good count more
 * than the deadband away from the baseline becomes the baseline, and is reported if it rose.
 * Every other milestone as the plant made it, with its exact count.
 */
export function truthWithDeadband(sim: PlantSimulator, deadband: number): string[] {
  const baseline = new Map<string, number>();
  const out: string[] = [];
  for (const t of sim.truth) {
    if (t.milestone === 'released') baseline.set(t.line, 0);
    const base = baseline.get(t.line) ?? 0;
    if (Math.abs(t.goodQuantity - base) > deadband) {
      baseline.set(t.line, t.goodQuantity);
      if (t.goodQuantity > base && t.milestone === 'quantity-reported') out.push(truthKey(t));
    }
    if (t.milestone !== 'quantity-reported') out.push(truthKey(t));
  }
  return out;
}
