import { describe, expect, it } from 'vitest';
import {
  applyChanges,
  coerceLineState,
  initialLineState,
  type LineChange,
  type LineContext,
  type LineState,
  type NodeRole,
} from '../../../../agent/sources/opcua/line-machine.js';
import { DEFAULT_STATES } from '../../../../agent/sources/opcua/config.js';
import { ProductionMilestoneV1, PRODUCTION_MILESTONE_V1 } from '../../../../protocols/events/production-milestone.v1.js';
import { deriveEventId } from '../../../../protocols/events/event-id.js';

const ctx: LineContext = { plant: 'p1', sourceName: 'line-opcua', equipment: 'L1', unit: 'EA', states: DEFAULT_STATES };

let clock = 1_700_000_000_000;
function ch(role: NodeRole, value: unknown, ts = ++clock, statusGood = true): LineChange {
  return { role, value, sourceTimestampMs: ts, statusGood, ...(statusGood ? {} : { status: 'BadCommunicationError' }) };
}

/** Runs batches in order, returning every milestone as `wo:milestone:good` and the final state. */
function run(batches: LineChange[][], start?: LineState) {
  let state = start;
  const out: string[] = [];
  for (const batch of batches) {
    const r = applyChanges(ctx, state, batch);
    for (const d of r.drafts) {
      const data = ProductionMilestoneV1.parse(d.data);
      out.push(`${data.workOrder}:${data.milestone}:${data.goodQuantity?.value ?? '-'}`);
    }
    state = r.state;
  }
  return { out, state: state! };
}

function releaseOrder(wo: string): LineChange[] {
  return [ch('workOrder', wo), ch('salesOrder', `SO-${wo}`), ch('product', 'P-1'), ch('plannedQuantity', 5), ch('goodCount', 0), ch('scrapCount', 0), ch('state', 'Released')];
}

describe('line machine', () => {
  it('emits released, started, quantity-reported, held, resumed and completed for the matching transitions', () => {
    const { out } = run([
      releaseOrder('WO-1'),
      [ch('state', 'Running')],
      [ch('goodCount', 1)],
      [ch('state', 'Held')],
      [ch('state', 'Running')],
      [ch('goodCount', 2)],
      [ch('state', 'Completed')],
    ]);
    expect(out).toEqual([
      'WO-1:released:0',
      'WO-1:started:0',
      'WO-1:quantity-reported:1',
      'WO-1:held:1',
      'WO-1:resumed:1',
      'WO-1:quantity-reported:2',
      'WO-1:completed:2',
    ]);
  });

  it('builds drafts with subject, type, quantities, sales order, product and a fact whose time is the source timestamp', () => {
    const state = run([releaseOrder('WO-7')]).state;
    clock += 2;
    const t = clock;
    const r = applyChanges(ctx, state, [ch('state', 'Running', t - 1), ch('goodCount', 3, t)]);
    expect(r.drafts).toHaveLength(2);
    const q = r.drafts[1]!;
    expect(q.type).toBe(PRODUCTION_MILESTONE_V1);
    expect(q.subject).toBe('work-order/WO-7');
    expect(q.fact).toEqual({ plant: 'p1', source: 'line-opcua', key: 'WO-7', what: 'quantity-reported', occurredAtMs: t, discriminator: 3 });
    expect(q.data).toEqual({
      workOrder: 'WO-7',
      salesOrder: 'SO-WO-7',
      product: 'P-1',
      milestone: 'quantity-reported',
      equipment: 'L1',
      occurredAt: new Date(t).toISOString(),
      goodQuantity: { value: 3, unit: 'EA' },
      scrapQuantity: { value: 0, unit: 'EA' },
      plannedQuantity: { value: 5, unit: 'EA' },
    });
    expect(r.drafts[0]!.fact.discriminator).toBeUndefined();
  });

  it('emits nothing for the initial values of a resubscription (same timestamps) and keeps the state', () => {
    const batch = [...releaseOrder('WO-1'), ch('state', 'Running'), ch('goodCount', 2)];
    const first = run([batch]);
    expect(first.out).toEqual(['WO-1:released:0', 'WO-1:started:0', 'WO-1:quantity-reported:2']);
    // the server re-sends the current value of every node with its original timestamp
    const current = (Object.entries(first.state.nodes) as Array<[NodeRole, { value: string | number; ts: number }]>).map(([role, seen]) =>
      ch(role, seen.value, seen.ts),
    );
    const again = applyChanges(ctx, first.state, current);
    expect(again.drafts).toEqual([]);
    expect(again.state).toEqual(first.state);
    expect(again.ignored.every((i) => i.reason === 'not-newer')).toBe(true);
  });

  it('emits nothing when a restarted server re-stamps unchanged values with newer timestamps', () => {
    const first = run([[...releaseOrder('WO-1'), ch('state', 'Running'), ch('goodCount', 2)]]);
    const restamped = (Object.entries(first.state.nodes) as Array<[NodeRole, { value: string | number }]>).map(([role, seen]) =>
      ch(role, seen.value),
    );
    const again = applyChanges(ctx, first.state, restamped);
    expect(again.drafts).toEqual([]);
  });

  it('catches up after a gap: Running with 3 good, now Completed with 5 good -> quantity-reported 5 then completed', () => {
    const before = run([releaseOrder('WO-1'), [ch('state', 'Running')], [ch('goodCount', 3)]]).state;
    const goodAt = ++clock;
    const completedAt = ++clock;
    // initial values after a reconnection arrive in one batch, in any order
    const r = applyChanges(ctx, before, [ch('state', 'Completed', completedAt), ch('goodCount', 5, goodAt), ch('workOrder', 'WO-1', before.nodes.workOrder!.ts)]);
    expect(r.drafts.map((d) => [d.fact.what, (d.data as ProductionMilestoneV1).goodQuantity?.value, d.fact.occurredAtMs])).toEqual([
      ['quantity-reported', 5, goodAt],
      ['completed', 5, completedAt],
    ]);
  });

  it('catches up across a work-order change: the new order starts from zero and gets started + its quantity', () => {
    const before = run([releaseOrder('WO-1'), [ch('state', 'Running')], [ch('goodCount', 4)]]).state;
    const r = applyChanges(ctx, before, [ch('goodCount', 2, clock + 3), ch('state', 'Running', clock + 2), ch('workOrder', 'WO-2', clock + 1)]);
    clock += 3;
    expect(r.drafts.map((d) => `${d.fact.key}:${d.fact.what}:${(d.data as ProductionMilestoneV1).goodQuantity?.value}`)).toEqual([
      'WO-2:started:0',
      'WO-2:quantity-reported:2',
    ]);
    expect(r.notes.join()).toMatch(/WO-1 left line L1 while running/);
  });

  it('ignores bad-status values and reports them', () => {
    const before = run([releaseOrder('WO-1'), [ch('state', 'Running')]]).state;
    const r = applyChanges(ctx, before, [ch('goodCount', 4, ++clock, false), ch('state', 'Completed', ++clock, false)]);
    expect(r.drafts).toEqual([]);
    expect(r.ignored.map((i) => i.reason)).toEqual(['bad-status', 'bad-status']);
    expect(r.state).toEqual(before);
    // the next good value still counts
    expect(run([[ch('goodCount', 4)]], r.state).out).toEqual(['WO-1:quantity-reported:4']);
  });

  it('sorts out-of-order changes by source timestamp before applying them', () => {
    const t = clock + 10;
    clock = t + 10;
    const r = applyChanges(ctx, initialLineState(), [
      ch('state', 'Running', t + 8),
      ch('goodCount', 1, t + 9),
      ch('state', 'Released', t + 7),
      ch('workOrder', 'WO-9', t + 1),
      ch('goodCount', 0, t + 2),
    ]);
    expect(r.drafts.map((d) => d.fact.what)).toEqual(['released', 'started', 'quantity-reported']);
    expect(r.drafts.map((d) => d.fact.occurredAtMs)).toEqual([t + 7, t + 8, t + 9]);
  });

  it('drops a change that is older than the last seen one (a replay), even if its value differs', () => {
    const before = run([releaseOrder('WO-1'), [ch('state', 'Running')], [ch('goodCount', 3)]]).state;
    const r = applyChanges(ctx, before, [ch('goodCount', 2, before.nodes.goodCount!.ts - 1), ch('state', 'Held', before.nodes.state!.ts)]);
    expect(r.drafts).toEqual([]);
    expect(r.ignored.map((i) => i.reason)).toEqual(['not-newer', 'not-newer']);
  });

  it('reports quantities only while the work order is active, and treats a decrease as a counter reset', () => {
    const { out } = run([
      releaseOrder('WO-1'),
      [ch('state', 'Running')],
      [ch('goodCount', 2)],
      [ch('state', 'Completed')],
      [ch('goodCount', 3)], // after completion: not reported
      [ch('goodCount', 0)], // reset
    ]);
    expect(out).toEqual(['WO-1:released:0', 'WO-1:started:0', 'WO-1:quantity-reported:2', 'WO-1:completed:2']);
  });

  it('gives equal facts equal ids, so a re-derived milestone is a duplicate downstream', () => {
    const a = run([releaseOrder('WO-1')]);
    const replay = applyChanges(ctx, undefined, releaseOrder('WO-1').map((c, i) => ({ ...c, sourceTimestampMs: Object.values(a.state.nodes)[i]?.ts ?? c.sourceTimestampMs })));
    expect(replay.drafts).toHaveLength(1);
    const b = applyChanges(ctx, undefined, [ch('workOrder', 'WO-X', 10), ch('state', 'Released', 11)]);
    const c = applyChanges(ctx, undefined, [ch('workOrder', 'WO-X', 10), ch('state', 'Released', 11)]);
    expect(deriveEventId(b.drafts[0]!.fact)).toBe(deriveEventId(c.drafts[0]!.fact));
  });

  it('maps numeric state values through the states table and ignores unmapped values', () => {
    const numeric: LineContext = { ...ctx, states: { '1': 'released', '2': 'running', '3': 'completed' } };
    const r = applyChanges(numeric, undefined, [ch('workOrder', 'WO-N'), ch('state', 1), ch('state', 2), ch('state', 99), ch('state', 3)]);
    expect(r.drafts.map((d) => d.fact.what)).toEqual(['released', 'started', 'completed']);
    expect(r.ignored.map((i) => [i.reason, i.detail])).toEqual([['unmapped-state', '99']]);
  });

  it('emits no milestone without a work order, and never an invalid event', () => {
    const r = applyChanges(ctx, undefined, [ch('state', 'Running'), ch('goodCount', 1)]);
    expect(r.drafts).toEqual([]);
    const long = applyChanges(ctx, undefined, [ch('workOrder', 'W'.repeat(200)), ch('state', 'Released')]);
    expect(long.drafts).toEqual([]);
    expect(long.ignored.map((i) => i.reason)).toEqual(['invalid-event']);
  });

  it('starts fresh from a persisted state it does not recognise', () => {
    expect(coerceLineState(undefined)).toEqual(initialLineState());
    expect(coerceLineState({ version: 99 })).toEqual(initialLineState());
    const s = run([releaseOrder('WO-1')]).state;
    expect(coerceLineState(JSON.parse(JSON.stringify(s)))).toEqual(s);
  });
});
