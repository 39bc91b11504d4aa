// Covers relay/sinks/hubspot/plan.ts (event -> upserts) and rounds.ts (upserts -> calls).
import { describe, expect, it } from 'vitest';
import { defaultHubSpotMappings, HubSpotMapping, nextRound, planWrites, toCalls, type PendingWrite } from '../../../../relay/sinks/hubspot/index.js';
import { milestoneEvent, shipmentEvent } from '../salesforce/fixtures.js';

const mappings = defaultHubSpotMappings.map((m) => HubSpotMapping.parse(m));

describe('planWrites', () => {
  it('makes one upsert per matching mapping, with property values as strings', () => {
    const event = milestoneEvent('WO-1', 'started', 3);
    const plan = planWrites({ event, stale: false }, mappings);
    if (!plan.ok) throw plan.error;
    expect(plan.writes).toEqual([
      {
        objectType: 'p_plantlink_milestones',
        idProperty: 'plantlink_event_id',
        id: event.id,
        properties: {
          plantlink_work_order: 'WO-1',
          plantlink_sales_order: 'SO-100',
          plantlink_milestone: 'started',
          plantlink_good_quantity: '30',
          plantlink_equipment: 'line-1',
          plantlink_occurred_at: '2024-05-01T08:00:03.000Z',
          plantlink_plant: 'P1',
        },
      },
      {
        objectType: 'p_plantlink_work_orders',
        idProperty: 'plantlink_work_order',
        id: 'WO-1',
        properties: {
          plantlink_sales_order: 'SO-100',
          plantlink_status: 'started',
          plantlink_good_quantity: '30',
          plantlink_planned_quantity: '500',
          plantlink_last_milestone_at: '2024-05-01T08:00:03.000Z',
          plantlink_plant: 'P1',
          plantlink_product: 'PUMP-7',
        },
      },
    ]);
  });

  it('skips latest mappings for a stale item', () => {
    const plan = planWrites({ event: milestoneEvent('WO-1', 'started', 3), stale: true }, mappings);
    expect(plan.ok && plan.writes.map((w) => w.objectType)).toEqual(['p_plantlink_milestones']);
    const shipment = planWrites({ event: shipmentEvent('SH-1', 'shipped', 1), stale: true }, mappings);
    expect(shipment).toEqual({ ok: true, writes: [] });
  });

  it('rejects an event without an id value or with a non-scalar value (mapping_error), and an unmapped type (no_mapping)', () => {
    const noId = planWrites({ event: milestoneEvent('WO-1', 'held', 1), stale: false }, [HubSpotMapping.parse({ ...defaultHubSpotMappings[1], idFrom: 'data.jobOrder' })]);
    expect(!noId.ok && [noId.error.code, noId.error.message]).toEqual([
      'mapping_error',
      'mapping com.plantlink.production.milestone.v1 -> p_plantlink_work_orders: no plantlink_work_order value at "data.jobOrder"',
    ]);
    const object = planWrites({ event: milestoneEvent('WO-1', 'held', 1), stale: false }, [
      HubSpotMapping.parse({ ...defaultHubSpotMappings[1], properties: { plantlink_good_quantity: 'data.goodQuantity' } }),
    ]);
    expect(!object.ok && object.error.message).toContain('property plantlink_good_quantity ("data.goodQuantity") is an object');
    const unmapped = planWrites({ event: shipmentEvent('SH-1', 'shipped', 1), stale: false }, mappings.slice(0, 2));
    expect(!unmapped.ok && unmapped.error.code).toBe('no_mapping');
  });
});

const write = (item: number, objectType: string, id: string): PendingWrite => ({ item, index: 0, write: { objectType, idProperty: 'key', id, properties: {} } });

describe('rounds and calls', () => {
  it('cuts 250 writes to distinct records into calls of at most 100 per object type', () => {
    const pending = Array.from({ length: 250 }, (_, i) => write(i, 'p_a', `R-${i}`));
    const { round, later } = nextRound(pending);
    expect(later).toEqual([]);
    expect(toCalls(round, 100).map((c) => c.inputs.length)).toEqual([100, 100, 50]);
    const mixed = toCalls([write(0, 'p_a', '1'), write(1, 'deals', '1'), write(2, 'p_a', '2')], 100);
    expect(mixed.map((c) => [c.objectType, c.inputs.map((p) => p.item)])).toEqual([
      ['p_a', [0, 2]],
      ['deals', [1]],
    ]);
  });

  it('puts writes to the same record into successive rounds, in batch order', () => {
    let pending = [write(0, 'p_a', 'WO-1'), write(1, 'p_a', 'WO-2'), write(2, 'p_a', 'WO-1'), write(3, 'p_b', 'WO-1'), write(4, 'p_a', 'WO-1')];
    const rounds: number[][] = [];
    while (pending.length > 0) {
      const { round, later } = nextRound(pending);
      rounds.push(round.map((p) => p.item));
      pending = later;
    }
    expect(rounds).toEqual([[0, 1, 3], [2], [4]]);
  });
});
