import { generateKeyPairSync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../../protocols/log.js';
import { defaultNetSuiteMappings, NetSuiteSink, type NetSuiteSinkConfigInput } from '../../../../relay/sinks/netsuite/index.js';
import { isRecordReader, type DeliveryItem, type Outcome } from '../../../../relay/sinks/sink.js';
import { NetSuiteEmulator, type NetSuiteEmulatorOptions } from '../../../emulators/netsuite/netsuite-emulator.js';
import { milestoneEvent, shipmentEvent } from '../salesforce/fixtures.js';

const WO = 'customrecord_plantlink_workorder';
const SH = 'customrecord_plantlink_shipment';
const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const ecPem = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(options: { emulator?: Partial<NetSuiteEmulatorOptions>; sink?: Partial<NetSuiteSinkConfigInput> } = {}): Promise<{ emulator: NetSuiteEmulator; sink: NetSuiteSink }> {
  const emulator = await NetSuiteEmulator.start({ clients: [{ clientId: 'plantlink-client', certificateId: 'cert-1', publicKey: ec.publicKey }], ...options.emulator });
  const logger = createLogger('netsuite-reader-test', { level: 'debug', destination: { write: () => undefined } });
  const sink = new NetSuiteSink(
    {
      name: 'erp',
      kind: 'netsuite',
      accountId: 'TSTDRV1234567',
      baseUrl: emulator.url,
      auth: { flow: 'client_credentials', clientId: 'plantlink-client', certificateId: 'cert-1', privateKey: ecPem, algorithm: 'ES256' },
      timeoutMs: 5_000,
      mappings: defaultNetSuiteMappings,
      ...options.sink,
    },
    logger,
  );
  cleanups.push(async () => {
    await sink.stop();
    await emulator.stop();
  });
  return { emulator, sink };
}

const workOrder = (wo: string) => ({ object: WO, externalIdField: 'externalId', externalId: wo });
const fresh = (...events: ReturnType<typeof milestoneEvent>[]): DeliveryItem[] => events.map((event) => ({ event, stale: false }));

function expectDelivered(outcome: Outcome | undefined): void {
  if (outcome?.status !== 'delivered') throw new Error(`expected delivered, got ${JSON.stringify(outcome)}`);
}

/** Written `{ id }` selects come back as `{ id, refName }`; everything else as written. */
function expectFieldsAsWritten(found: Record<string, unknown>, written: Record<string, unknown>): void {
  for (const [field, value] of Object.entries(written)) {
    if (typeof value === 'object' && value !== null) expect(found[field]).toMatchObject(value);
    else if (field.endsWith('_at')) expect(Date.parse(String(found[field]))).toBe(Date.parse(String(value)));
    else expect(found[field]).toEqual(value);
  }
}

describe('NetSuiteSink as a RecordReader', () => {
  it('expectedRecords matches what deliver writes; stale items expect no latest-state record', async () => {
    const { emulator, sink } = await setup();
    expect(isRecordReader(sink)).toBe(true);
    const event = milestoneEvent('WO-1', 'completed', 3);
    const plan = sink.expectedRecords({ event, stale: false });
    if (!plan.ok) throw plan.error;
    expect(plan.records.map((r) => [r.object, r.externalIdField, r.externalId, r.apply])).toEqual([[WO, 'externalId', 'WO-1', 'latest']]);
    expect(plan.records[0]!.fields).toMatchObject({ name: 'WO-1', custrecord_plk_wo_status: { id: expect.any(String) } });
    expectDelivered((await sink.deliver([{ event, stale: false }]))[0]);
    expectFieldsAsWritten(emulator.record(WO, 'WO-1')!.fields, plan.records[0]!.fields);
    expect(sink.expectedRecords({ event, stale: true })).toEqual({ ok: true, records: [] });
  });

  it('reads back delivered records with the fields the mappings write; missing ones come back empty', async () => {
    const { sink } = await setup();
    const items = fresh(milestoneEvent('WO-1', 'started', 1), milestoneEvent('WO-2', 'completed', 2), shipmentEvent('SH-1', 'shipped', 3));
    for (const outcome of await sink.deliver(items)) expectDelivered(outcome);
    const expected = items.flatMap((item) => {
      const plan = sink.expectedRecords(item);
      if (!plan.ok) throw plan.error;
      return plan.records;
    });
    const found = await sink.readRecords([...expected, workOrder('WO-404'), { object: SH, externalIdField: 'externalId', externalId: 'SH-404' }]);
    expected.forEach((record, i) => {
      expect(found[i]).toHaveLength(1);
      expectFieldsAsWritten(found[i]![0]!.fields, record.fields);
    });
    expect(found.slice(expected.length)).toEqual([[], []]);
  });

  it('sees records deleted and changed behind its back; deleting removes a record and redelivery recreates it', async () => {
    const { emulator, sink } = await setup();
    for (const outcome of await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 1), milestoneEvent('WO-2', 'started', 2), milestoneEvent('WO-3', 'started', 3)))) {
      expectDelivered(outcome);
    }
    expect(emulator.deleteRecord(WO, 'WO-1')).toBe(true);
    expect(emulator.setFields(WO, 'WO-2', { custrecord_plk_wo_status: { id: '1', refName: 'Released' } })).toBe(true);
    const [wo1, wo2, wo3] = await sink.readRecords([workOrder('WO-1'), workOrder('WO-2'), workOrder('WO-3')]);
    expect(wo1).toEqual([]);
    expect(wo2![0]!.fields.custrecord_plk_wo_status).toEqual({ id: '1', refName: 'Released' });
    expect(wo3).toHaveLength(1);

    await sink.deleteRecords(WO, [wo3![0]!.id]);
    expect(emulator.record(WO, 'WO-3')).toBeUndefined();
    await sink.deleteRecords(WO, [wo3![0]!.id]); // already gone: not an error
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-3', 'completed', 4))))[0]);
    const [again] = await sink.readRecords([workOrder('WO-3')]);
    expect(again).toHaveLength(1);
    expect(again![0]!.id).not.toBe(wo3![0]!.id);
  });

  it('reads one record per request within the concurrency cap', async () => {
    const { emulator, sink } = await setup({ sink: { concurrency: 2 } });
    for (const outcome of await sink.deliver(fresh(...Array.from({ length: 6 }, (_, i) => milestoneEvent(`WO-${i}`, 'started', i))))) expectDelivered(outcome);
    const before = emulator.stats();
    const release = emulator.hold();
    const reading = sink.readRecords(Array.from({ length: 6 }, (_, i) => workOrder(`WO-${i}`)));
    while (emulator.stats().inFlight < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    release();
    expect((await reading).map((f) => f.length)).toEqual([1, 1, 1, 1, 1, 1]);
    const after = emulator.stats();
    expect(after.requests - before.requests).toBe(6);
    expect(after.maxInFlight).toBeLessThanOrEqual(2);
    expect(after.throttled).toBe(0);
  });

  it('gets a fresh token after a 401 and classifies refusals like deliveries', async () => {
    const { emulator, sink } = await setup();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 1))))[0]);
    const tokens = emulator.stats().tokensIssued;
    emulator.expireTokens();
    expect((await sink.readRecords([workOrder('WO-1')]))[0]).toHaveLength(1);
    expect(emulator.stats().tokensIssued).toBe(tokens + 1);

    emulator.failNext(1, { status: 503, headers: { 'Retry-After': '4' } });
    await expect(sink.readRecords([workOrder('WO-1')])).rejects.toMatchObject({ name: 'TransientError', retryAfterMs: 4000 });
    await expect(sink.readRecords([{ object: 'customrecord_nope', externalIdField: 'externalId', externalId: 'X' }])).rejects.toMatchObject({ code: 'INVALID_RCRD_TYPE' });
  });
});
