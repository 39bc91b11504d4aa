// The Salesforce sink's sObject Collections batching, against the emulator over real HTTP.
import { describe, expect, it } from 'vitest';
import type { CollectionCallEvent, UpsertEvent } from '../../../emulators/salesforce/salesforce-emulator.js';
import { milestoneEvent } from './fixtures.js';
import { expectDelivered, expectErrored, expectRejected, fresh, setup } from './harness.js';

const MILESTONE = 'com.plantlink.production.milestone.v1';

/** `n` milestone events of `n` different work orders (so `n` different subjects). */
const manyWorkOrders = (n: number, extra: (i: number) => { salesOrder?: string } = () => ({})) =>
  Array.from({ length: n }, (_, i) => milestoneEvent(`WO-${String(i).padStart(4, '0')}`, 'released', i, extra(i)));

function recordCalls(emulator: { on(event: 'collection', listener: (e: CollectionCallEvent) => void): unknown }): CollectionCallEvent[] {
  const calls: CollectionCallEvent[] = [];
  emulator.on('collection', (e) => calls.push(e));
  return calls;
}

/** Record counts of the calls for `object`, largest first (calls of one round arrive in any order). */
const sizesOf = (calls: CollectionCallEvent[], object: string): number[] =>
  calls
    .filter((c) => c.object === object)
    .map((c) => c.externalIds.length)
    .sort((a, b) => b - a);

describe('SalesforceSink: sObject Collections batching', () => {
  it('450 milestone events: each mapping goes in 3 calls of at most 200 records, milestones before orders, one API call each', async () => {
    const { emulator, sink } = await setup();
    await sink.start();
    const calls = recordCalls(emulator);
    const events = manyWorkOrders(450);

    const outcomes = await sink.deliver(fresh(...events));

    outcomes.forEach((outcome, i) => {
      const event = events[i]!;
      expect(expectDelivered(outcome)).toEqual([
        emulator.record('Production_Milestone__c', event.id)!.id,
        emulator.record('Production_Order__c', (event.data as { workOrder: string }).workOrder)!.id,
      ]);
    });
    expect(sizesOf(calls, 'Production_Milestone__c')).toEqual([200, 200, 50]);
    expect(sizesOf(calls, 'Production_Order__c')).toEqual([200, 200, 50]);
    expect(calls.slice(0, 3).map((c) => c.object)).toEqual(Array(3).fill('Production_Milestone__c'));
    // Each call holds a run of the batch in batch order (the three calls themselves may arrive in any order).
    const position = new Map(events.map((e, i) => [e.id, i]));
    const milestoneCalls = calls.filter((c) => c.object === 'Production_Milestone__c').sort((a, b) => position.get(a.externalIds[0]!)! - position.get(b.externalIds[0]!)!);
    expect(milestoneCalls.flatMap((c) => c.externalIds)).toEqual(events.map((e) => e.id));
    expect(emulator.stats()).toMatchObject({ requests: 7, apiCalls: 6, upserts: 900, created: 900 }); // 1 token request + 6 calls
  });

  it('redelivering the 450 events rewrites every record, changes nothing and costs the same 6 calls', async () => {
    const { emulator, sink } = await setup();
    const events = manyWorkOrders(450);
    (await sink.deliver(fresh(...events))).forEach(expectDelivered);
    const before = [...emulator.records('Production_Milestone__c'), ...emulator.records('Production_Order__c')];

    (await sink.deliver(fresh(...events))).forEach(expectDelivered);

    for (const record of before) {
      const after = emulator.record(record.object, record.externalId)!;
      expect({ writes: after.writes, changes: after.changes, fields: after.fields }).toEqual({ writes: record.writes + 1, changes: record.changes, fields: record.fields });
    }
    expect(emulator.stats()).toMatchObject({ apiCalls: 12, created: 900, unchanged: 900, updated: 0 });
  });

  it('a per-record validation error rejects only its item; the other records of the same calls are written', async () => {
    const { emulator, sink } = await setup();
    emulator.addValidationRule('Production_Order__c', { field: 'Sales_Order__c', test: (v) => v !== 'SO-BLOCKED', message: 'Sales order SO-BLOCKED is closed' });
    const events = manyWorkOrders(250, (i) => (i === 123 ? { salesOrder: 'SO-BLOCKED' } : {}));

    const outcomes = await sink.deliver(fresh(...events));

    const error = expectRejected(outcomes[123]);
    expect(error.code).toBe('FIELD_CUSTOM_VALIDATION_EXCEPTION');
    expect(error.message).toBe('upserting Production_Order__c/WO-0123: FIELD_CUSTOM_VALIDATION_EXCEPTION: Sales order SO-BLOCKED is closed [Sales_Order__c]');
    outcomes.filter((_, i) => i !== 123).forEach(expectDelivered);
    expect(emulator.records('Production_Order__c')).toHaveLength(249);
    expect(emulator.stats()).toMatchObject({ apiCalls: 4, rejected: 1 }); // no retry, no split of the calls
  });

  it("a record refused in an earlier round keeps the item's later writes out of later calls", async () => {
    const { emulator, sink } = await setup();
    const calls = recordCalls(emulator);
    emulator.addValidationRule('Production_Milestone__c', { field: 'Work_Order__c', test: (v) => v !== 'WO-0001', message: 'WO-0001 is on credit hold' });

    const outcomes = await sink.deliver(fresh(...manyWorkOrders(3)));

    expect(expectRejected(outcomes[1]).message).toMatch(/^upserting Production_Milestone__c\/\S+: FIELD_CUSTOM_VALIDATION_EXCEPTION: WO-0001 is on credit hold/);
    expectDelivered(outcomes[0]);
    expectDelivered(outcomes[2]);
    expect(calls.find((c) => c.object === 'Production_Order__c')!.externalIds).toEqual(['WO-0000', 'WO-0002']);
    expect(emulator.record('Production_Order__c', 'WO-0001')).toBeUndefined();
  });

  it('the same external id from different subjects goes into successive calls, in batch order', async () => {
    const { emulator, sink } = await setup({
      sink: {
        // One Production_Order__c record per sales order: several work orders (subjects) share it.
        mappings: [{ eventType: MILESTONE, object: 'Production_Order__c', externalIdField: 'Work_Order_Number__c', externalId: 'data.salesOrder', apply: 'latest', fields: { Status__c: 'data.milestone' } }],
      },
    });
    const calls = recordCalls(emulator);
    const statuses: string[] = [];
    emulator.on('upsert', ({ record }: UpsertEvent) => {
      if (record.externalId === 'SO-100') statuses.push(String(record.fields.Status__c));
    });
    const events = [
      milestoneEvent('WO-1', 'released', 1, { salesOrder: 'SO-100' }),
      milestoneEvent('WO-2', 'started', 2, { salesOrder: 'SO-100' }),
      milestoneEvent('WO-3', 'held', 3, { salesOrder: 'SO-200' }),
      milestoneEvent('WO-4', 'completed', 4, { salesOrder: 'SO-100' }),
    ];

    const outcomes = await sink.deliver(fresh(...events));

    outcomes.forEach(expectDelivered);
    expect(calls.map((c) => c.externalIds)).toEqual([['SO-100', 'SO-200'], ['SO-100'], ['SO-100']]);
    expect(statuses).toEqual(['released', 'started', 'completed']);
    expect(emulator.record('Production_Order__c', 'SO-100')!.fields.Status__c).toBe('completed');
  });

  it('a per-record UNABLE_TO_LOCK_ROW errors its item and halts the batch; the rest of its call is written', async () => {
    const { emulator, sink } = await setup();
    emulator.failRecord('Production_Order__c', 'WO-2', { statusCode: 'UNABLE_TO_LOCK_ROW', message: 'unable to obtain exclusive access to this record', fields: [] });

    const outcomes = await sink.deliver(
      fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2), milestoneEvent('WO-3', 'released', 3), milestoneEvent('WO-1', 'started', 4)),
    );

    expectDelivered(outcomes[0]);
    expectDelivered(outcomes[2]);
    expect(expectErrored(outcomes[1]).message).toBe('upserting Production_Order__c/WO-2: UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record');
    expect(expectErrored(outcomes[3]).message).toMatch(/^not attempted: .*UNABLE_TO_LOCK_ROW/);
    expect(emulator.record('Production_Order__c', 'WO-1')!.fields.Status__c).toBe('released');
    expect(emulator.stats().apiCalls).toBe(2);
  });

  it('a call refused as a whole with a 4xx rejects every item in it, with Salesforce errorCode', async () => {
    const { emulator, sink } = await setup();
    emulator.failNext(1, { status: 400, body: [{ message: 'Json Deserialization failed on token', errorCode: 'JSON_PARSER_ERROR' }] });

    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)));

    for (const outcome of outcomes) {
      const error = expectRejected(outcome);
      expect(error.code).toBe('JSON_PARSER_ERROR');
      expect(error.message).toMatch(/^upserting Production_Milestone__c\/\S+: sObject Collections call of 2 records: JSON_PARSER_ERROR: Json Deserialization failed on token$/);
    }
    expect(emulator.records('Production_Order__c')).toEqual([]); // their later writes were not sent
  });

  it('maxRecordsPerCall caps the records of each call', async () => {
    const { emulator, sink } = await setup({ sink: { maxRecordsPerCall: 2 } });
    const calls = recordCalls(emulator);
    (await sink.deliver(fresh(...manyWorkOrders(5)))).forEach(expectDelivered);
    expect(sizesOf(calls, 'Production_Milestone__c')).toEqual([2, 2, 1]);
    expect(sizesOf(calls, 'Production_Order__c')).toEqual([2, 2, 1]);
  });
});
