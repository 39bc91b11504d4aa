import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../../protocols/log.js';
import { defaultHubSpotMappings, HubSpotSink, type HubSpotSinkConfigInput } from '../../../../relay/sinks/hubspot/index.js';
import { isRecordReader, type DeliveryItem, type Outcome } from '../../../../relay/sinks/sink.js';
import { DEFAULT_TOKEN, HubSpotEmulator, type HubSpotEmulatorOptions } from '../../../emulators/hubspot/hubspot-emulator.js';
import { milestoneEvent, shipmentEvent } from '../salesforce/fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function setup(options: { emulator?: HubSpotEmulatorOptions; sink?: Partial<HubSpotSinkConfigInput> } = {}): Promise<{ emulator: HubSpotEmulator; sink: HubSpotSink }> {
  const emulator = await HubSpotEmulator.start(options.emulator);
  const logger = createLogger('hubspot-reader-test', { level: 'debug', destination: { write: () => undefined } });
  const sink = new HubSpotSink(
    { name: 'crm-hubspot', kind: 'hubspot', baseUrl: emulator.url, token: DEFAULT_TOKEN, timeoutMs: 5_000, mappings: defaultHubSpotMappings, ...options.sink },
    logger,
  );
  cleanups.push(async () => {
    await sink.stop();
    await emulator.stop();
  });
  return { emulator, sink };
}

const WORK_ORDERS = 'p_plantlink_work_orders';
const MILESTONES = 'p_plantlink_milestones';
const workOrder = (wo: string) => ({ object: WORK_ORDERS, externalIdField: 'plantlink_work_order', externalId: wo });
const fresh = (...events: ReturnType<typeof milestoneEvent>[]): DeliveryItem[] => events.map((event) => ({ event, stale: false }));

function expectDelivered(outcome: Outcome | undefined): void {
  if (outcome?.status !== 'delivered') throw new Error(`expected delivered, got ${JSON.stringify(outcome)}`);
}

describe('HubSpotSink as a RecordReader', () => {
  it('expectedRecords matches what deliver writes, and skips latest mappings for stale items', async () => {
    const { emulator, sink } = await setup();
    expect(isRecordReader(sink)).toBe(true);
    const event = milestoneEvent('WO-1', 'completed', 3, { goodQuantity: 12.5 });
    const plan = sink.expectedRecords({ event, stale: false });
    if (!plan.ok) throw plan.error;
    expect(plan.records.map((r) => [r.object, r.externalIdField, r.externalId, r.apply])).toEqual([
      [MILESTONES, 'plantlink_event_id', event.id, 'event'],
      [WORK_ORDERS, 'plantlink_work_order', 'WO-1', 'latest'],
    ]);
    expectDelivered((await sink.deliver([{ event, stale: false }]))[0]);
    for (const record of plan.records) {
      const stored = emulator.record(record.object, record.externalIdField, record.externalId)!;
      expect(stored.properties).toMatchObject(record.fields);
    }
    const stale = sink.expectedRecords({ event, stale: true });
    expect(stale.ok && stale.records.map((r) => r.object)).toEqual([MILESTONES]);
  });

  it('reads back delivered records with the properties the mappings write; missing ones come back empty', async () => {
    const { sink } = await setup();
    const items = fresh(milestoneEvent('WO-1', 'started', 1), milestoneEvent('WO-2', 'completed', 2), shipmentEvent('SH-1', 'shipped', 3));
    for (const outcome of await sink.deliver(items)) expectDelivered(outcome);
    const expected = items.flatMap((item) => {
      const plan = sink.expectedRecords(item);
      if (!plan.ok) throw plan.error;
      return plan.records;
    });
    const found = await sink.readRecords([workOrder('WO-404'), ...expected]);
    expect(found[0]).toEqual([]);
    expected.forEach((record, i) => {
      expect(found[i + 1]).toHaveLength(1);
      expect(found[i + 1]![0]!.fields).toMatchObject(record.fields);
    });
  });

  it('sees records deleted and changed behind its back; archiving removes a record and redelivery recreates it', async () => {
    const { emulator, sink } = await setup();
    for (const outcome of await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 1), milestoneEvent('WO-2', 'started', 2), milestoneEvent('WO-3', 'started', 3)))) {
      expectDelivered(outcome);
    }
    expect(emulator.deleteRecord(WORK_ORDERS, 'plantlink_work_order', 'WO-1')).toBe(true);
    expect(emulator.setProperties(WORK_ORDERS, 'plantlink_work_order', 'WO-2', { plantlink_status: 'released' })).toBe(true);
    const [wo1, wo2, wo3] = await sink.readRecords([workOrder('WO-1'), workOrder('WO-2'), workOrder('WO-3')]);
    expect(wo1).toEqual([]);
    expect(wo2![0]!.fields.plantlink_status).toBe('released');
    expect(wo3).toHaveLength(1);

    await sink.deleteRecords(WORK_ORDERS, [wo3![0]!.id]);
    expect(await sink.readRecords([workOrder('WO-3')])).toEqual([[]]);
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-3', 'completed', 4))))[0]);
    const [again] = await sink.readRecords([workOrder('WO-3')]);
    expect(again).toHaveLength(1);
    expect(again![0]!.id).not.toBe(wo3![0]!.id);
    expect(again![0]!.fields.plantlink_status).toBe('completed');
  });

  it('batches reads within the batch size and reports refusals like deliveries', async () => {
    const { emulator, sink } = await setup({ sink: { batchSize: 2 } });
    for (const outcome of await sink.deliver(fresh(...Array.from({ length: 5 }, (_, i) => milestoneEvent(`WO-${i}`, 'started', i))))) expectDelivered(outcome);
    const before = emulator.stats().requests;
    const found = await sink.readRecords(Array.from({ length: 5 }, (_, i) => workOrder(`WO-${i}`)));
    expect(found.map((f) => f.length)).toEqual([1, 1, 1, 1, 1]);
    expect(emulator.stats().requests - before).toBe(3);

    emulator.failNext(1, { status: 429, body: { status: 'error', message: 'You have reached your ten_secondly_rolling limit.', policyName: 'TEN_SECONDLY_ROLLING' }, headers: { 'Retry-After': '3' } });
    await expect(sink.readRecords([workOrder('WO-1')])).rejects.toMatchObject({ name: 'TransientError', retryAfterMs: 3000 });
    emulator.revokeToken(DEFAULT_TOKEN);
    await expect(sink.readRecords([workOrder('WO-1')])).rejects.toMatchObject({ name: 'TransientError' });
  });
});
