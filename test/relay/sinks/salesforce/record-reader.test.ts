import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../../../protocols/errors.js';
import { buildQueries, defaultSalesforceMappings, encodeQueryValue, MAX_QUERY_URL_CHARS, soqlLiteral } from '../../../../relay/sinks/salesforce/index.js';
import { SalesforceSink } from '../../../../relay/sinks/salesforce/salesforce-sink.js';
import { testLogger } from '../../../helpers/temp.js';
import { isRecordReader, type DeliveryItem } from '../../../../relay/sinks/sink.js';
import type { QueryCallEvent } from '../../../emulators/salesforce/salesforce-emulator.js';
import { milestoneEvent, shipmentEvent } from './fixtures.js';
import { expectDelivered, fresh, setup } from './harness.js';

const ORDER = 'Production_Order__c';
const MILESTONE = 'Production_Milestone__c';
const ref = (object: string, externalIdField: string, externalId: string) => ({ object, externalIdField, externalId });
const order = (wo: string) => ref(ORDER, 'Work_Order_Number__c', wo);

describe('SalesforceSink as a RecordReader', () => {
  it('is recognised by isRecordReader', async () => {
    const { sink } = await setup();
    expect(isRecordReader(sink)).toBe(true);
  });

  it('expectedRecords matches what deliver writes, and skips latest mappings for stale items', async () => {
    const { emulator, sink } = await setup();
    const event = milestoneEvent('WO-1', 'started', 1, { goodQuantity: 7 });
    const plan = sink.expectedRecords({ event, stale: false });
    if (!plan.ok) throw plan.error;
    expect(plan.records.map((r) => [r.object, r.externalIdField, r.externalId, r.apply])).toEqual([
      [MILESTONE, 'Plantlink_Event_Id__c', event.id, 'event'],
      [ORDER, 'Work_Order_Number__c', 'WO-1', 'latest'],
    ]);
    expect(plan.records[1]!.fields).toMatchObject({ Status__c: 'started', Good_Quantity__c: 7, Sales_Order__c: 'SO-100' });
    expect(plan.records[1]!.fields).not.toHaveProperty('Work_Order_Number__c');

    expectDelivered((await sink.deliver([{ event, stale: false }]))[0]);
    for (const record of plan.records) {
      const stored = emulator.record(record.object, record.externalId)!;
      for (const [field, value] of Object.entries(record.fields)) {
        if (field.endsWith('_At__c')) continue; // Salesforce returns datetimes as 2024-05-01T08:00:01.000+0000
        expect(stored.fields[field]).toEqual(value);
      }
    }

    const stale = sink.expectedRecords({ event, stale: true });
    expect(stale.ok && stale.records.map((r) => r.object)).toEqual([MILESTONE]);
    const unmapped = sink.expectedRecords({ event: { ...event, type: 'com.example.unknown.v1' }, stale: false });
    expect(unmapped.ok).toBe(false);
    expect(!unmapped.ok && unmapped.error).toBeInstanceOf(PermanentError);
    expect(!unmapped.ok && unmapped.error.code).toBe('no_mapping');
  });

  it('reads back delivered records with the fields the mappings write', async () => {
    const { sink } = await setup();
    const items = fresh(milestoneEvent('WO-1', 'started', 1), milestoneEvent('WO-2', 'completed', 2), shipmentEvent('SH-1', 'shipped', 3));
    for (const outcome of await sink.deliver(items)) expectDelivered(outcome);
    const expected = items.flatMap((item) => {
      const plan = sink.expectedRecords(item);
      if (!plan.ok) throw plan.error;
      return plan.records;
    });
    const found = await sink.readRecords([...expected, order('WO-404')]);
    expect(found).toHaveLength(expected.length + 1);
    expected.forEach((record, i) => {
      expect(found[i]).toHaveLength(1);
      const fields = found[i]![0]!.fields;
      expect(Object.keys(fields)).toEqual(expect.arrayContaining(Object.keys(record.fields)));
      for (const [field, value] of Object.entries(record.fields)) {
        if (field.endsWith('_At__c')) expect(Date.parse(String(fields[field]).replace('+0000', 'Z'))).toBe(Date.parse(String(value)));
        else expect(fields[field]).toEqual(value);
      }
    });
    expect(found[expected.length]).toEqual([]);
  });

  it('reads fields back under the mapping\'s names when the mapping spells them in another case (Salesforce answers with the describe\'s names)', async () => {
    const { emulator, sink } = await setup();
    const event = milestoneEvent('WO-7', 'started', 1);
    for (const outcome of await sink.deliver(fresh(event))) expectDelivered(outcome);
    // The same org read by a relay whose mapping writes the fields in lower case.
    const lower = defaultSalesforceMappings.map((m) => ({ ...m, fields: Object.fromEntries(Object.entries(m.fields ?? {}).map(([k, v]) => [k.toLowerCase(), v])) }));
    const reader = new SalesforceSink(
      { name: 'crm-lower', kind: 'salesforce', loginUrl: emulator.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, timeoutMs: 5_000, mappings: lower },
      testLogger(),
    );
    try {
      const plan = reader.expectedRecords({ event, stale: false });
      if (!plan.ok) throw plan.error;
      const orderRecord = plan.records.find((r) => r.object === ORDER)!;
      const [found] = await reader.readRecords([orderRecord]);
      expect(found).toHaveLength(1);
      expect(found![0]!.fields).toMatchObject({ status__c: 'started', plant__c: 'P1' });
      expect(Object.keys(found![0]!.fields)).not.toContain('Status__c');
    } finally {
      await reader.stop();
    }
  });

  it('sees records deleted, changed and duplicated behind its back, and deletes the duplicate', async () => {
    const { emulator, sink } = await setup();
    for (const outcome of await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 1), milestoneEvent('WO-2', 'started', 2), milestoneEvent('WO-3', 'started', 3)))) {
      expectDelivered(outcome);
    }
    expect(emulator.deleteRecord(ORDER, 'WO-1')).toBe(1);
    expect(emulator.setFields(ORDER, 'WO-2', { Status__c: 'released' })).toBe(true);
    const duplicate = emulator.seedDuplicate(ORDER, 'WO-3');

    const [wo1, wo2, wo3] = await sink.readRecords([order('WO-1'), order('WO-2'), order('WO-3')]);
    expect(wo1).toEqual([]);
    expect(wo2).toHaveLength(1);
    expect(wo2![0]!.fields.Status__c).toBe('released');
    expect(wo3!.map((r) => r.id).sort()).toEqual([emulator.record(ORDER, 'WO-3')!.id, duplicate.id].sort());

    // The duplicate blocks upserts of WO-3 (DUPLICATE_EXTERNAL_ID) until it is deleted.
    const blocked = await sink.deliver(fresh(milestoneEvent('WO-3', 'completed', 4)));
    expect(blocked[0]!.status).toBe('rejected');
    await sink.deleteRecords(ORDER, [duplicate.id]);
    expect(await sink.readRecords([order('WO-3')])).toEqual([[expect.objectContaining({ id: emulator.record(ORDER, 'WO-3')!.id })]]);
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-3', 'completed', 5))))[0]);
    expect(emulator.record(ORDER, 'WO-3')!.fields.Status__c).toBe('completed');

    // Deleting again is not an error: the record is already gone.
    await sink.deleteRecords(ORDER, [duplicate.id]);
  });

  it('fails a delete of an id Salesforce does not know with its error code', async () => {
    const { sink } = await setup();
    await expect(sink.deleteRecords(ORDER, ['a015P000000000ZZZZ'])).rejects.toMatchObject({ code: 'INVALID_CROSS_REFERENCE_KEY' });
  });

  it('splits long IN lists so every query URL stays under the limit', async () => {
    const { emulator, sink } = await setup();
    const long = (i: number): string => `WO-${String(i).padStart(4, '0')}-${"x'\\".repeat(20)}`;
    const refs = Array.from({ length: 150 }, (_, i) => order(long(i)));
    const queries: QueryCallEvent[] = [];
    emulator.on('query', (q) => queries.push(q));
    const found = await sink.readRecords(refs);
    expect(found).toEqual(refs.map(() => []));
    expect(queries.length).toBeGreaterThan(1);
    for (const q of queries) expect(q.urlLength).toBeLessThanOrEqual(MAX_QUERY_URL_CHARS);
    // Every value was asked for exactly once, quotes and backslashes escaped.
    const asked = queries.flatMap((q) => q.soql!.slice(q.soql!.indexOf('IN (') + 4, -1).split(/,(?=')/));
    expect(asked.sort()).toEqual(refs.map((r) => soqlLiteral(r.externalId)).sort());
  });

  it('follows nextRecordsUrl until done', async () => {
    const { emulator, sink } = await setup({ emulator: { queryPageSize: 2 } });
    const items: DeliveryItem[] = fresh(...Array.from({ length: 5 }, (_, i) => milestoneEvent(`WO-${i}`, 'started', i)));
    for (const outcome of await sink.deliver(items)) expectDelivered(outcome);
    emulator.seedDuplicate(ORDER, 'WO-4');
    const queries: QueryCallEvent[] = [];
    emulator.on('query', (q) => queries.push(q));
    const found = await sink.readRecords(Array.from({ length: 5 }, (_, i) => order(`WO-${i}`)));
    expect(found.map((f) => f.length)).toEqual([1, 1, 1, 1, 2]);
    expect(queries.map((q) => q.done)).toEqual([false, false, true]);
    expect(queries.filter((q) => q.soql !== undefined)).toHaveLength(1);
  });

  it('gets a fresh token when the session expired, as deliveries do', async () => {
    const { emulator, sink } = await setup();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 1))))[0]);
    const before = emulator.stats().tokenRequests;
    emulator.expireTokens();
    expect((await sink.readRecords([order('WO-1')]))[0]).toHaveLength(1);
    expect(emulator.stats().tokenRequests).toBe(before + 1);
    expect(emulator.stats().status[401]).toBe(1);
  });

  it('classifies failed reads like deliveries: 503 transient, refused query permanent', async () => {
    const { emulator, sink } = await setup();
    emulator.failNext(1, { status: 503, headers: { 'Retry-After': '7' } });
    await expect(sink.readRecords([order('WO-1')])).rejects.toMatchObject({ name: 'TransientError', retryAfterMs: 7000 });
    await expect(sink.readRecords([ref('Nope__c', 'Key__c', 'A')])).rejects.toMatchObject({ code: 'INVALID_TYPE' });
  });
});

describe('buildQueries', () => {
  it('quotes values with SOQL escapes and keeps each encoded query within the budget', () => {
    expect(soqlLiteral("O'Brien\\x")).toBe("'O\\'Brien\\\\x'");
    const values = Array.from({ length: 100 }, (_, i) => `ID-${i}-${'y'.repeat(50)}`);
    const queries = buildQueries('Obj__c', 'Key__c', ['A__c', 'Key__c'], values, 2_000);
    expect(queries.length).toBeGreaterThan(1);
    for (const q of queries) {
      expect(q.startsWith('SELECT Id, Key__c, A__c FROM Obj__c WHERE Key__c IN (')).toBe(true);
      expect(encodeQueryValue(q).length + '/services/data/v000.0/query?q='.length).toBeLessThanOrEqual(2_000);
    }
    expect(() => buildQueries('Obj__c', 'Key__c', [], ['z'.repeat(3_000)], 2_000)).toThrow(RangeError);
  });
});
