import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../../../protocols/errors.js';
import type { UpsertEvent } from '../../../emulators/salesforce/salesforce-emulator.js';
import { milestoneEvent, shipmentEvent } from './fixtures.js';
import { expectDelivered, expectErrored, expectRejected, fresh, setup } from './harness.js';

describe('SalesforceSink against the Salesforce emulator', () => {
  it('delivers a batch: one milestone record per event, the latest status per work order, ids returned in order', async () => {
    const { emulator, sink } = await setup();
    await sink.start();
    const events = [
      milestoneEvent('WO-1', 'released', 1),
      milestoneEvent('WO-2', 'released', 2),
      milestoneEvent('WO-1', 'started', 3),
      milestoneEvent('WO-3', 'held', 4),
    ];
    const outcomes = await sink.deliver(fresh(...events));

    expect(outcomes).toHaveLength(4);
    outcomes.forEach((outcome, i) => {
      const [milestoneId, orderId] = expectDelivered(outcome);
      expect(milestoneId).toBe(emulator.record('Production_Milestone__c', events[i]!.id)!.id);
      expect(orderId).toBe(emulator.record('Production_Order__c', (events[i]!.data as { workOrder: string }).workOrder)!.id);
    });
    expect(emulator.records('Production_Milestone__c')).toHaveLength(4);
    expect(emulator.record('Production_Milestone__c', events[2]!.id)!.fields).toMatchObject({
      Work_Order__c: 'WO-1',
      Milestone__c: 'started',
      Good_Quantity__c: 30,
      Equipment__c: 'line-1',
      Plant__c: 'P1',
      Sales_Order__c: 'SO-100',
      Occurred_At__c: '2024-05-01T08:00:03.000+0000',
    });
    expect(emulator.records('Production_Order__c').map((r) => [r.externalId, r.fields.Status__c]).sort()).toEqual([
      ['WO-1', 'started'],
      ['WO-2', 'released'],
      ['WO-3', 'held'],
    ]);
    expect(emulator.record('Production_Order__c', 'WO-1')!.fields).toMatchObject({ Planned_Quantity__c: 500, Product__c: 'PUMP-7' });
    // One sObject Collections call per round: milestones of WO-1/2/3, their orders, then WO-1's second milestone and order.
    expect(emulator.stats().apiCalls).toBe(4);
    expect(sink.quota()).toEqual({ used: 4, max: 100_000 });
  });

  it('delivers a shipment to Shipment__c by shipment number', async () => {
    const { emulator, sink } = await setup();
    const [outcome] = await sink.deliver([{ event: shipmentEvent('SH-1', 'shipped', 1), stale: false }]);
    expect(expectDelivered(outcome)).toEqual([emulator.record('Shipment__c', 'SH-1')!.id]);
    expect(emulator.record('Shipment__c', 'SH-1')!.fields).toMatchObject({ Status__c: 'shipped', Carrier__c: 'DHL', Tracking_Number__c: 'TRK-SH-1' });
  });

  it('redelivery of a delivered batch writes every record again and changes nothing', async () => {
    const { emulator, sink } = await setup();
    const released = milestoneEvent('WO-1', 'released', 1);
    const started = milestoneEvent('WO-1', 'started', 2);
    const completed = milestoneEvent('WO-2', 'completed', 3);
    const first = await sink.deliver(fresh(released, started, completed));
    const before = [...emulator.records('Production_Milestone__c'), ...emulator.records('Production_Order__c')];

    // As the engine redelivers after a crash: WO-1 "started" was applied, so "released" is now stale.
    const second = await sink.deliver([
      { event: released, stale: true },
      { event: started, stale: false },
      { event: completed, stale: false },
    ]);

    expect(second.map(expectDelivered)).toEqual([[first.map(expectDelivered)[0]![0]], ...first.slice(1).map(expectDelivered)]);
    for (const record of before) {
      const after = emulator.record(record.object, record.externalId)!;
      expect(after.changes, `${record.object}/${record.externalId}`).toBe(record.changes);
      expect(after.writes, `${record.object}/${record.externalId}`).toBe(record.writes + 1);
      expect(after.fields).toEqual(record.fields);
    }
    expect(emulator.stats()).toMatchObject({ created: 5, unchanged: 5 });
  });

  it('a stale item writes its per-event record but skips the latest-state record', async () => {
    const { emulator, sink } = await setup();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'completed', 9))))[0]);
    const older = milestoneEvent('WO-1', 'started', 2);

    const [outcome] = await sink.deliver([{ event: older, stale: true }]);

    expect(expectDelivered(outcome)).toEqual([emulator.record('Production_Milestone__c', older.id)!.id]);
    expect(emulator.record('Production_Order__c', 'WO-1')!).toMatchObject({ writes: 1, fields: { Status__c: 'completed' } });
  });

  it('applies items of the same subject in batch order while other subjects run concurrently', async () => {
    const { emulator, sink } = await setup({ sink: { concurrency: 4 } });
    emulator.setLatency(2);
    const orderWrites: string[] = [];
    emulator.on('upsert', ({ record }: UpsertEvent) => {
      if (record.object === 'Production_Order__c' && record.externalId === 'WO-A') orderWrites.push(String(record.fields.Status__c));
    });
    const steps = ['released', 'started', 'quantity-reported', 'held', 'resumed', 'completed'] as const;
    const events = steps.flatMap((milestone, i) => [milestoneEvent('WO-A', milestone, i * 10), milestoneEvent(`WO-B${i}`, 'released', i * 10 + 1), milestoneEvent(`WO-C${i}`, 'started', i * 10 + 2)]);

    const outcomes = await sink.deliver(fresh(...events));

    outcomes.forEach(expectDelivered);
    expect(orderWrites).toEqual([...steps]);
    expect(emulator.record('Production_Order__c', 'WO-A')!.fields.Status__c).toBe('completed');
  });

  it('recovers transparently when the access token expires between batches', async () => {
    const { emulator, sink } = await setup();
    await sink.start();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    emulator.expireTokens();

    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 2), milestoneEvent('WO-2', 'started', 3)));

    outcomes.forEach(expectDelivered);
    expect(emulator.stats().tokenRequests).toBe(2);
    expect(emulator.stats().status[401]).toBeGreaterThanOrEqual(1);
    expect(emulator.record('Production_Order__c', 'WO-1')!.fields.Status__c).toBe('started');
  });

  it('503 with Retry-After: every item of the call is errored with retryAfterMs and the rest of the batch is not attempted', async () => {
    const { emulator, sink } = await setup({ sink: { concurrency: 1 } });
    await sink.start();
    emulator.failNext(1, { status: 503, headers: { 'Retry-After': '5' } });

    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2), milestoneEvent('WO-1', 'started', 3)));

    // WO-1 and WO-2 shared the failed Production_Milestone__c call.
    for (const outcome of outcomes.slice(0, 2)) {
      const error = expectErrored(outcome);
      expect(error.retryAfterMs).toBe(5_000);
      expect(error.message).toContain('upserting Production_Milestone__c/');
      expect(error.message).toContain('HTTP 503');
    }
    const later = expectErrored(outcomes[2]);
    expect(later.message).toMatch(/^not attempted/);
    expect(later.retryAfterMs).toBe(5_000);
    expect(emulator.stats()).toMatchObject({ upserts: 0, requests: 2 }); // the token and the failed call, nothing after it

    const retried = await sink.deliver(fresh(milestoneEvent('WO-3', 'released', 3)));
    expectDelivered(retried[0]);
  });

  it('429 and REQUEST_LIMIT_EXCEEDED are errored, with retryAfterMs when Salesforce sends Retry-After', async () => {
    const { emulator, sink } = await setup();
    emulator.failNext(1, { status: 429, headers: { 'Retry-After': '2' } });
    expect(expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).retryAfterMs).toBe(2_000);

    emulator.failNext(1, { status: 403, body: [{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }] });
    const limited = expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    expect(limited.message).toContain('REQUEST_LIMIT_EXCEEDED');
    expect(limited.retryAfterMs).toBeUndefined();
  });

  it('an outage (connections closed without an answer) is errored, and delivery resumes when it ends', async () => {
    const { emulator, sink } = await setup();
    await sink.start();
    emulator.setOutage(true);
    const down = expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    expect(down.message).toContain('upserting Production_Milestone__c/');

    emulator.setOutage(false);
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
  });

  it('a request without an answer within timeoutMs is errored', async () => {
    const { emulator, sink } = await setup({ sink: { timeoutMs: 200 } });
    await sink.start();
    emulator.setLatency(2_000);
    const error = expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    expect(error.message).toContain('no answer within 200 ms');
  });

  it('a validation failure rejects only its item, with Salesforce errorCode and message; neighbours are delivered', async () => {
    const { emulator, sink } = await setup();
    emulator.addValidationRule('Production_Order__c', {
      field: 'Sales_Order__c',
      test: (value) => value !== 'SO-BLOCKED',
      message: 'Sales order SO-BLOCKED is closed',
    });
    const outcomes = await sink.deliver(
      fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2, { salesOrder: 'SO-BLOCKED' }), milestoneEvent('WO-3', 'released', 3)),
    );

    expectDelivered(outcomes[0]);
    expectDelivered(outcomes[2]);
    const error = expectRejected(outcomes[1]);
    expect(error.code).toBe('FIELD_CUSTOM_VALIDATION_EXCEPTION');
    expect(error.message).toBe('upserting Production_Order__c/WO-2: FIELD_CUSTOM_VALIDATION_EXCEPTION: Sales order SO-BLOCKED is closed [Sales_Order__c]');
    expect(emulator.record('Production_Order__c', 'WO-2')).toBeUndefined();
  });

  it('a picklist value Salesforce does not know is rejected with INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', async () => {
    const { sink } = await setup({
      emulator: {
        objects: {
          Production_Milestone__c: {
            Plantlink_Event_Id__c: { type: 'string', externalId: true },
            Milestone__c: { type: 'string', picklist: ['released'] },
          },
        },
      },
      sink: {
        mappings: [{ eventType: 'com.plantlink.production.milestone.v1', object: 'Production_Milestone__c', externalIdField: 'Plantlink_Event_Id__c', externalId: 'id', fields: { Milestone__c: 'data.milestone' } }],
      },
    });
    const error = expectRejected((await sink.deliver(fresh(milestoneEvent('WO-1', 'held', 1))))[0]);
    expect(error.code).toBe('INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST');
  });

  it('an external id that matches several records (300) is rejected DUPLICATE_EXTERNAL_ID', async () => {
    const { emulator, sink } = await setup();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    emulator.seedDuplicate('Production_Order__c', 'WO-1');
    const error = expectRejected((await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 2))))[0]);
    expect(error.code).toBe('DUPLICATE_EXTERNAL_ID');
    expect(error.message).toMatch(/^upserting Production_Order__c\/WO-1: DUPLICATE_EXTERNAL_ID/);
  });

  it('a mapping that yields no external id is rejected mapping_error without calling Salesforce', async () => {
    const { emulator, sink } = await setup({
      sink: {
        mappings: [{ eventType: 'com.plantlink.production.milestone.v1', object: 'Production_Order__c', externalIdField: 'Work_Order_Number__c', externalId: 'data.jobOrder', fields: {} }],
      },
    });
    const error = expectRejected((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    expect(error.code).toBe('mapping_error');
    expect(error.message).toContain('data.jobOrder');
    expect(emulator.stats().requests).toBe(0);
  });

  it('an unknown object is rejected NOT_FOUND', async () => {
    const { sink } = await setup({
      sink: { mappings: [{ eventType: 'com.plantlink.production.milestone.v1', object: 'Missing__c', externalIdField: 'Key__c', externalId: 'id' }] },
    });
    expect(expectRejected((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).code).toBe('NOT_FOUND');
  });

  it('refused client credentials fail start(); deliveries are errored with a long retry hint; the secret appears in no message or log', async () => {
    const { sink, logs } = await setup({ sink: { auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'wrong-secret-value' } } });
    const started = sink.start();
    await expect(started).rejects.toThrow(PermanentError);
    await expect(started).rejects.toThrow(/invalid_client: invalid client credentials/);

    const { sink: other, emulator: otherEmulator, logs: otherLogs } = await setup({ sink: { auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'wrong-secret-value' } } });
    const outcomes = await other.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)));
    const error = expectErrored(outcomes[0]);
    expect(error.retryAfterMs).toBe(60_000);
    expect(error.message).toContain('invalid_client: invalid client credentials');
    expect(error.message).not.toContain('wrong-secret-value');
    expect(expectErrored(outcomes[1]).retryAfterMs).toBe(60_000);
    expect(otherEmulator.stats().tokenRequests).toBe(1); // concurrent items share one token request
    expect(logs() + otherLogs()).not.toContain('wrong-secret-value');
  });

  it('never logs the access token or the client secret', async () => {
    const { emulator, sink, logs } = await setup();
    await sink.start();
    emulator.expireTokens();
    emulator.failNext(1, { status: 500 });
    await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1)));
    emulator.failNext(1, { status: 400, body: [{ message: 'bad value', errorCode: 'INVALID_FIELD' }] });
    await sink.deliver(fresh(milestoneEvent('WO-2', 'released', 2)));
    const text = logs();
    expect(text).toContain('obtained a Salesforce access token');
    expect(text).not.toContain('plantlink-secret');
    expect(text).not.toMatch(/00D5P0000000PLT!/);
  });

  it('stop() aborts requests in flight: their items are errored', async () => {
    const { emulator, sink } = await setup();
    await sink.start();
    emulator.setLatency(5_000);
    const pending = sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1)));
    await new Promise((resolve) => setImmediate(resolve));
    await sink.stop();
    const error = expectErrored((await pending)[0]);
    expect(error.message).toContain('stopping');
    expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
  });
});
