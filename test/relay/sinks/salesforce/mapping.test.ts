// Covers relay/sinks/mapping.ts (shared by sinks) and relay/sinks/salesforce/plan.ts.
import { describe, expect, it } from 'vitest';
import { applyFieldMap, FieldMap, FieldPath, resolvePath } from '../../../../relay/sinks/mapping.js';
import { defaultSalesforceMappings, planWrites, SalesforceMapping } from '../../../../relay/sinks/salesforce/index.js';
import { milestoneEvent, shipmentEvent } from './fixtures.js';

const mappings = defaultSalesforceMappings.map((m) => SalesforceMapping.parse(m));

describe('field paths', () => {
  it('resolves envelope attributes, nested data and array indexes', () => {
    const event = shipmentEvent('SH-1', 'shipped', 1);
    expect(resolvePath(event, 'id')).toBe(event.id);
    expect(resolvePath(event, 'plant')).toBe('P1');
    expect(resolvePath(event, 'data.shipment')).toBe('SH-1');
    expect(resolvePath(event, 'data.lines.0.quantity.value')).toBe(5);
  });

  it('yields nothing for missing steps, null values and inherited members', () => {
    const event = milestoneEvent('WO-1', 'held', 1);
    (event.data as Record<string, unknown>).operation = null;
    for (const path of ['data.nothing', 'data.workOrder.length', 'data.operation', 'data.constructor', 'data.__proto__', 'dataschema']) {
      expect(resolvePath(event, path), path).toBeUndefined();
    }
  });

  it('fills templates of paths, for plant-qualified ids, and yields nothing when a path is missing or not a scalar', () => {
    const event = milestoneEvent('WO-1', 'held', 1);
    expect(resolvePath(event, '{plant}:{data.workOrder}')).toBe('P1:WO-1');
    expect(resolvePath(event, 'WO {data.workOrder} qty {data.goodQuantity.value}')).toBe('WO WO-1 qty 10');
    expect(resolvePath(event, '{plant}:{data.nothing}')).toBeUndefined();
    expect(resolvePath(event, '{plant}:{data.goodQuantity}')).toBeUndefined();
    expect(resolvePath(event, '{data.__proto__}')).toBeUndefined();
    for (const ok of ['{plant}:{data.workOrder}', 'x-{id}', '{data.lines.0.product}']) expect(FieldPath.safeParse(ok).success, ok).toBe(true);
    for (const bad of ['{plant', '{}', 'plain text', '{Data.x}', '{plant}}']) expect(FieldPath.safeParse(bad).success, bad).toBe(false);
  });

  it('with a plant-qualified external id, two plants\' WO-1 are two records', () => {
    const qualified = mappings.map((m) => (m.apply === 'latest' ? { ...m, externalId: '{plant}:{data.workOrder}' } : m));
    const p1 = milestoneEvent('WO-1', 'started', 1);
    const p2 = { ...milestoneEvent('WO-1', 'started', 1), plant: 'P2', source: '/plantlink/plants/P2/sources/line-opcua' };
    const ids = [p1, p2].map((event) => {
      const plan = planWrites({ event, stale: false }, qualified);
      if (!plan.ok) throw plan.error;
      return plan.writes.find((w) => w.object === 'Production_Order__c')!.externalId;
    });
    expect(ids).toEqual(['P1:WO-1', 'P2:WO-1']);
  });

  it('applyFieldMap leaves out fields whose path is missing', () => {
    const event = milestoneEvent('WO-1', 'held', 1);
    expect(applyFieldMap(event, { A: 'data.workOrder', B: 'data.scrapQuantity.value', C: 'subject' })).toEqual({ A: 'WO-1', C: 'work-order/WO-1' });
  });

  it('rejects malformed paths when the config loads', () => {
    for (const path of ['', 'data..x', 'data.', '.id', ' id', 'Data.x', '$.data', 'data[0]', 'data.a b']) {
      expect(FieldPath.safeParse(path).success, JSON.stringify(path)).toBe(false);
    }
    for (const path of ['id', 'correlationid', 'data.goodQuantity.value', 'data.lines.0.product', 'data.snake_case']) {
      expect(FieldPath.safeParse(path).success, path).toBe(true);
    }
    expect(FieldMap.safeParse({ Status__c: 'data.milestone', Bad__c: 'data..x' }).success).toBe(false);
  });
});

describe('planWrites', () => {
  it('plans every matching mapping in order, with the external id from the event', () => {
    const event = milestoneEvent('WO-1', 'started', 2);
    const plan = planWrites({ event, stale: false }, mappings);
    expect(plan.ok && plan.writes.map((w) => [w.object, w.externalIdField, w.externalId])).toEqual([
      ['Production_Milestone__c', 'Plantlink_Event_Id__c', event.id],
      ['Production_Order__c', 'Work_Order_Number__c', 'WO-1'],
    ]);
    expect(plan.ok && plan.writes[1]!.body).toEqual({
      Sales_Order__c: 'SO-100',
      Status__c: 'started',
      Good_Quantity__c: 20,
      Planned_Quantity__c: 500,
      Last_Milestone_At__c: '2024-05-01T08:00:02.000Z',
      Plant__c: 'P1',
      Product__c: 'PUMP-7',
    });
  });

  it('skips latest-state mappings for a stale item', () => {
    const plan = planWrites({ event: milestoneEvent('WO-1', 'started', 2), stale: true }, mappings);
    expect(plan.ok && plan.writes.map((w) => w.object)).toEqual(['Production_Milestone__c']);
  });

  it('rejects an event type no mapping covers as no_mapping', () => {
    const plan = planWrites({ event: { ...milestoneEvent('WO-1', 'started', 2), type: 'com.plantlink.other.v1' }, stale: false }, mappings);
    expect(!plan.ok && plan.error.code).toBe('no_mapping');
  });

  it('rejects a field mapped to an object as mapping_error', () => {
    const mapping = SalesforceMapping.parse({ eventType: 'com.plantlink.production.milestone.v1', object: 'X__c', externalIdField: 'K__c', externalId: 'id', fields: { Qty__c: 'data.goodQuantity' } });
    const plan = planWrites({ event: milestoneEvent('WO-1', 'started', 2), stale: false }, [mapping]);
    expect(!plan.ok && plan.error.code).toBe('mapping_error');
    expect(!plan.ok && plan.error.message).toContain('Qty__c');
  });
});
