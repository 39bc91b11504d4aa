import { describe, expect, it } from 'vitest';
import {
  applyChanges,
  coerceLineState,
  deadbandStep,
  initialLineState,
  type LineChange,
  type LineContext,
  type LineState,
  type NodeRole,
} from '../../../../agent/sources/opcua/line-machine.js';
import { DEFAULT_STATES } from '../../../../agent/sources/opcua/config.js';
import { ProductionMilestoneV1, PRODUCTION_MILESTONE_V1 } from '../../../../protocols/events/production-milestone.v1.js';
import { deriveEventId } from '../../../../protocols/events/event-id.js';

const ctx: LineContext = { plant: 'p1', sourceName: 'line-opcua', equipment: 'L1', unit: 'EA', states: DEFAULT_STATES, quantityDeadband: 0 };

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

describe('line machine: quantity deadband', () => {
  const band = (n: number): LineContext => ({ ...ctx, quantityDeadband: n });

  /** Runs batches through the machine, JSON round-tripping the state between them as the outbox does. */
  function runWith(context: LineContext, batches: LineChange[][], start?: LineState) {
    let state = start;
    const drafts: Array<{ id: string; key: string; discriminator: string }> = [];
    for (const batch of batches) {
      const r = applyChanges(context, state, batch);
      for (const d of r.drafts) {
        const data = ProductionMilestoneV1.parse(d.data);
        drafts.push({
          id: deriveEventId(d.fact),
          key: `${data.workOrder}:${data.milestone}:${data.goodQuantity?.value ?? '-'}/${data.scrapQuantity?.value ?? '-'}@${d.fact.occurredAtMs}`,
          discriminator: String(d.fact.discriminator ?? ''),
        });
      }
      state = JSON.parse(JSON.stringify(r.state)) as LineState;
    }
    return { drafts, state: state! };
  }

  it('reports a count only when it rose MORE than the deadband above the last report; holds and completions carry the exact counts', () => {
    const t = (clock += 100);
    const changes = [
      ...releaseOrder('WO-D').map((c, i) => ({ ...c, sourceTimestampMs: t + i })),
      ch('state', 'Running', t + 10),
      ...[1, 2, 3, 4].map((n) => ch('goodCount', n, t + 10 + n)),
      ch('state', 'Held', t + 20),
      ch('state', 'Running', t + 21),
      ...[5, 6, 7, 8].map((n) => ch('goodCount', n, t + 20 + n)),
      ch('state', 'Completed', t + 30),
    ];
    clock = t + 31;
    const { drafts } = runWith(band(2), changes.map((c) => [c]));
    expect(drafts.map((d) => d.key)).toEqual([
      `WO-D:released:0/0@${t + 6}`,
      `WO-D:started:0/0@${t + 10}`,
      `WO-D:quantity-reported:3/0@${t + 13}`, // 3 - 0 > 2
      `WO-D:held:4/0@${t + 20}`, // the exact count, though 4 was not reported
      `WO-D:resumed:4/0@${t + 21}`,
      `WO-D:quantity-reported:6/0@${t + 26}`, // 6 - 3 > 2 (a move of exactly 2 is not enough)
      `WO-D:completed:8/0@${t + 30}`, // the final count
    ]);
  });

  it('reports every increase with deadband 0, as before deadbands existed', () => {
    const { drafts } = runWith(band(0), [releaseOrder('WO-Z'), [ch('state', 'Running')], [ch('goodCount', 1)], [ch('goodCount', 2)], [ch('goodCount', 2.5)]]);
    expect(drafts.map((d) => d.key.split('@')[0])).toEqual(['WO-Z:released:0/0', 'WO-Z:started:0/0', 'WO-Z:quantity-reported:1/0', 'WO-Z:quantity-reported:2/0', 'WO-Z:quantity-reported:2.5/0']);
  });

  it('gives the same events, with the same ids, whether the values arrive one by one (live), all at once (history) or across restarts', () => {
    // a seeded walk of a plant: counts that go up by 1..3, scrap now and then, holds, new work orders, counter resets
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const changes: LineChange[] = [];
    let ts = (clock += 1000);
    for (let order = 1; order <= 6; order++) {
      for (const c of releaseOrder(`WO-R${order}`)) changes.push({ ...c, sourceTimestampMs: ++ts });
      changes.push(ch('state', 'Running', ++ts));
      let good = 0;
      let scrap = 0;
      for (let step = 0; step < 25; step++) {
        const r = random();
        if (r < 0.7) changes.push(ch('goodCount', (good += 1 + Math.floor(random() * 3)), ++ts));
        else if (r < 0.85) changes.push(ch('scrapCount', (scrap += 1), ++ts));
        else if (r < 0.9) changes.push(ch('goodCount', (good = Math.max(0, good - 1)), ++ts)); // a correction
        else if (r < 0.95) changes.push(ch('state', 'Held', ++ts), ch('state', 'Running', ++ts));
        else {
          // good and scrap move at the same instant
          const at = ++ts;
          changes.push(ch('scrapCount', (scrap += 1), at), ch('goodCount', (good += 1), at));
        }
      }
      changes.push(ch('state', 'Completed', ++ts));
    }
    clock = ts;
    for (const deadband of [0, 1, 2.5, 4]) {
      const live = runWith(band(deadband), changes.map((c) => [c]));
      const history = runWith(band(deadband), [changes]);
      // restarts: random cuts, reversed arrival order inside each batch (the machine orders them)
      const cuts: LineChange[][] = [];
      for (let i = 0; i < changes.length; ) {
        const n = 1 + Math.floor(random() * 12);
        cuts.push(changes.slice(i, i + n).reverse());
        i += n;
      }
      const restarted = runWith(band(deadband), cuts);
      const ids = (r: typeof live) => r.drafts.map((d) => d.id).sort(); // within one instant the order may differ
      expect(ids(history)).toEqual(ids(live));
      expect(ids(restarted)).toEqual(ids(live));
      // the data too, except which of two reports of one instant carries the other counter's new value
      const sameInstant = new Set(changes.filter((c, i) => changes.some((o, j) => j !== i && o.sourceTimestampMs === c.sourceTimestampMs && o.role !== c.role && o.role !== 'state' && c.role !== 'state')).map((c) => c.sourceTimestampMs));
      const data = (r: typeof live) => r.drafts.filter((d) => !sameInstant.has(Number(d.key.split('@')[1]))).map((d) => d.key);
      expect(data(history)).toEqual(data(live));
      expect(data(restarted)).toEqual(data(live));
      expect(restarted.state).toEqual(live.state);

      // ... and they are exactly what the rule predicts, computed here on its own
      const expected: string[] = [];
      let base = { good: 0, scrap: 0 };
      let counts = { good: 0, scrap: 0 };
      let wo = '';
      let active = false;
      for (const c of changes) {
        if (c.role === 'workOrder') {
          wo = String(c.value);
          base = { good: 0, scrap: 0 };
          counts = { good: 0, scrap: 0 };
        }
        if (c.role === 'state') active = c.value === 'Running' || c.value === 'Held' || c.value === 'Released';
        if (c.role !== 'goodCount' && c.role !== 'scrapCount') continue;
        const k = c.role === 'goodCount' ? 'good' : 'scrap';
        const v = Number(c.value);
        counts[k] = v;
        if (Math.abs(v - base[k]) > deadband) {
          const rose = v > base[k];
          base[k] = v;
          if (rose && active) expected.push(`${wo}:${k === 'good' ? v : `scrap:${v}`}@${c.sourceTimestampMs}`);
        }
      }
      // (the machine applies an instant's good count before its scrap count; the generator wrote scrap first)
      const reports = live.drafts.filter((d) => d.key.includes(':quantity-reported:')).map((d) => `${d.key.split(':')[0]}:${d.discriminator}@${d.key.split('@')[1]}`);
      expect([...reports].sort()).toEqual([...expected].sort());
      expect(reports.length).toBeGreaterThan(10);
      expect(new Set(live.drafts.map((d) => d.id)).size).toBe(live.drafts.length);
    }
  });

  it('reports scrap past the deadband too; good and scrap moving at one instant make one report each, with the same ids however they arrive', () => {
    const start = run([releaseOrder('WO-S'), [ch('state', 'Running')]]).state;
    const at = ++clock;
    const a = applyChanges(band(0), start, [ch('goodCount', 1, at), ch('scrapCount', 1, at)]);
    const b = applyChanges(band(0), start, [ch('scrapCount', 1, at), ch('goodCount', 1, at)]);
    const split = [...applyChanges(band(0), start, [ch('scrapCount', 1, at)]).drafts];
    split.push(...applyChanges(band(0), applyChanges(band(0), start, [ch('scrapCount', 1, at)]).state, [ch('goodCount', 1, at)]).drafts);
    const ids = (drafts: typeof a.drafts) => drafts.map((d) => deriveEventId(d.fact)).sort();
    expect(a.drafts.map((d) => d.fact.discriminator)).toEqual([1, 'scrap:1']);
    expect(b.drafts).toEqual(a.drafts); // one batch: the same order whatever the arrival order
    expect(ids(split)).toEqual(ids(a.drafts)); // split over two batches: the same ids
    expect(a.drafts[1]!.data).toMatchObject({ milestone: 'quantity-reported', goodQuantity: { value: 1 }, scrapQuantity: { value: 1 } });
    // scrap alone, past the deadband
    const c = applyChanges(band(1), b.state, [ch('scrapCount', 2), ch('scrapCount', 3)]);
    expect(c.drafts.map((d) => [(d.data as ProductionMilestoneV1).scrapQuantity?.value, d.fact.discriminator])).toEqual([[3, 'scrap:3']]);
  });

  it('applies a count and a state stamped with the same instant count first: the completion carries it, whatever the arrival order', () => {
    const start = run([releaseOrder('WO-T'), [ch('state', 'Running')], [ch('goodCount', 4)]]).state;
    const at = ++clock;
    for (const batch of [
      [ch('state', 'Completed', at), ch('goodCount', 5, at)],
      [ch('goodCount', 5, at), ch('state', 'Completed', at)],
    ]) {
      const r = applyChanges(band(0), start, batch);
      expect(r.drafts.map((d) => `${d.fact.what}:${(d.data as ProductionMilestoneV1).goodQuantity?.value}`)).toEqual(['quantity-reported:5', 'completed:5']);
    }
  });

  it('treats a fall of more than the deadband as a counter reset, ignores smaller wobbles, and restarts baselines with a new work order', () => {
    const { drafts, state } = runWith(band(3), [
      releaseOrder('WO-A'),
      [ch('state', 'Running')],
      [ch('goodCount', 10)], // reported: 10 - 0 > 3
      [ch('goodCount', 8)], // a wobble within the deadband: nothing
      [ch('goodCount', 13)], // 13 - 10 = 3: not more than 3
      [ch('goodCount', 14)], // reported
      [ch('goodCount', 2)], // a reset: new baseline 2, nothing reported
      [ch('goodCount', 6)], // 6 - 2 > 3: reported
      [ch('workOrder', 'WO-B')],
      [ch('state', 'Running')],
      [ch('goodCount', 9)], // the new order counts from 0: reported
    ]);
    expect(drafts.map((d) => d.key.split('@')[0])).toEqual([
      'WO-A:released:0/0',
      'WO-A:started:0/0',
      'WO-A:quantity-reported:10/0',
      'WO-A:quantity-reported:14/0',
      'WO-A:quantity-reported:6/0',
      'WO-B:started:0/0',
      'WO-B:quantity-reported:9/0',
    ]);
    expect(state.baseline).toEqual({ good: 9, scrap: 0 });
    expect(deadbandStep(10, 13, 3)).toEqual({ baseline: 10, rose: false });
    expect(deadbandStep(10, 6, 3)).toEqual({ baseline: 6, rose: false });
    expect(deadbandStep(10, 13.5, 3)).toEqual({ baseline: 13.5, rose: true });
  });

  it('upgrades a version 1 state: the good count it reported from, the scrap last seen, so nothing is re-reported', () => {
    const v2 = run([releaseOrder('WO-1'), [ch('state', 'Running')], [ch('goodCount', 3)], [ch('scrapCount', 2)]]).state;
    const { baseline: _baseline, ...rest } = v2;
    const v1 = { ...rest, version: 1 };
    const upgraded = coerceLineState(JSON.parse(JSON.stringify(v1)));
    expect(upgraded).toEqual({ ...v2, baseline: { good: 3, scrap: 2 } });
    expect(applyChanges(ctx, upgraded, [ch('scrapCount', 2), ch('goodCount', 3)]).drafts).toEqual([]);
    expect(coerceLineState({ ...v2, baseline: { good: 'x' } })).toEqual(initialLineState());
  });
});
