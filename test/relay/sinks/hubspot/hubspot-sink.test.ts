import { afterEach, describe, expect, it } from 'vitest';
import { PermanentError, TransientError } from '../../../../protocols/errors.js';
import { createLogger, type Logger } from '../../../../protocols/log.js';
import { defaultHubSpotMappings, HubSpotSink, type HubSpotMappingInput, type HubSpotSinkConfigInput } from '../../../../relay/sinks/hubspot/index.js';
import type { DeliveryItem, Outcome } from '../../../../relay/sinks/sink.js';
import { DEFAULT_TOKEN, HubSpotEmulator, type HubSpotEmulatorOptions, type UpsertEvent } from '../../../emulators/hubspot/hubspot-emulator.js';
import { milestoneEvent, shipmentEvent } from '../salesforce/fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

function captureLogger(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const logger = createLogger('hubspot-sink-test', { level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
  return { logger, text: () => lines.join('') };
}

async function setup(
  options: { emulator?: HubSpotEmulatorOptions; sink?: Partial<HubSpotSinkConfigInput> } = {},
): Promise<{ emulator: HubSpotEmulator; sink: HubSpotSink; logs: () => string }> {
  const emulator = await HubSpotEmulator.start(options.emulator);
  const { logger, text } = captureLogger();
  const sink = new HubSpotSink(
    { name: 'crm-hubspot', kind: 'hubspot', baseUrl: emulator.url, token: DEFAULT_TOKEN, timeoutMs: 5_000, mappings: defaultHubSpotMappings, ...options.sink },
    logger,
  );
  cleanups.push(async () => {
    await sink.stop();
    await emulator.stop();
  });
  return { emulator, sink, logs: text };
}

/** Only the per-event milestone record: one write per event. */
const milestonesOnly: HubSpotMappingInput[] = [defaultHubSpotMappings[0]!];
const MILESTONES = 'p_plantlink_milestones';
const WORK_ORDERS = 'p_plantlink_work_orders';

const fresh = (...events: ReturnType<typeof milestoneEvent>[]): DeliveryItem[] => events.map((event) => ({ event, stale: false }));

function expectDelivered(outcome: Outcome | undefined): string[] {
  if (outcome?.status !== 'delivered') throw new Error(`expected delivered, got ${JSON.stringify(outcome)}`);
  return outcome.recordIds;
}

function expectErrored(outcome: Outcome | undefined): TransientError {
  if (outcome?.status !== 'errored') throw new Error(`expected errored, got ${JSON.stringify(outcome)}`);
  expect(outcome.error).toBeInstanceOf(TransientError);
  return outcome.error;
}

function expectRejected(outcome: Outcome | undefined): PermanentError {
  if (outcome?.status !== 'rejected') throw new Error(`expected rejected, got ${JSON.stringify(outcome)}`);
  expect(outcome.error).toBeInstanceOf(PermanentError);
  return outcome.error;
}

describe('HubSpotSink against the HubSpot emulator', () => {
  it('delivers a batch: one milestone record per event, the latest status per work order, record ids in write order', async () => {
    const { emulator, sink } = await setup();
    await sink.start();
    const events = [milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2), milestoneEvent('WO-3', 'held', 4)];
    const outcomes = await sink.deliver(fresh(...events));

    expect(outcomes).toHaveLength(3);
    outcomes.forEach((outcome, i) => {
      const [milestoneId, orderId] = expectDelivered(outcome);
      expect(milestoneId).toBe(emulator.record(MILESTONES, 'plantlink_event_id', events[i]!.id)!.id);
      expect(orderId).toBe(emulator.record(WORK_ORDERS, 'plantlink_work_order', (events[i]!.data as { workOrder: string }).workOrder)!.id);
    });
    expect(emulator.record(MILESTONES, 'plantlink_event_id', events[2]!.id)!.properties).toEqual({
      plantlink_event_id: events[2]!.id,
      plantlink_work_order: 'WO-3',
      plantlink_sales_order: 'SO-100',
      plantlink_milestone: 'held',
      plantlink_good_quantity: '40',
      plantlink_equipment: 'line-1',
      plantlink_occurred_at: '2024-05-01T08:00:04.000Z',
      plantlink_plant: 'P1',
    });
    expect(emulator.record(WORK_ORDERS, 'plantlink_work_order', 'WO-1')!.properties).toMatchObject({ plantlink_status: 'released', plantlink_planned_quantity: '500' });
    // One probe at start, then one call per object type.
    expect(emulator.stats()).toMatchObject({ requests: 3, batchCalls: 2 });
    expect(sink.quota()).toEqual({ max: 190, remaining: 187, intervalMs: 10_000, daily: 1_000_000, dailyRemaining: 999_997 });
  });

  it('delivers a shipment to p_plantlink_shipments by shipment number', async () => {
    const { emulator, sink } = await setup();
    const [outcome] = await sink.deliver([{ event: shipmentEvent('SH-1', 'shipped', 1), stale: false }]);
    expect(expectDelivered(outcome)).toEqual([emulator.record('p_plantlink_shipments', 'plantlink_shipment', 'SH-1')!.id]);
    expect(emulator.record('p_plantlink_shipments', 'plantlink_shipment', 'SH-1')!.properties).toMatchObject({
      plantlink_status: 'shipped',
      plantlink_carrier: 'DHL',
      plantlink_tracking_number: 'TRK-SH-1',
    });
  });

  it('a batch of 250 takes 3 calls; redelivering it writes every record again and changes nothing', async () => {
    const { emulator, sink } = await setup({ sink: { mappings: milestonesOnly } });
    const events = Array.from({ length: 250 }, (_, i) => milestoneEvent(`WO-${i}`, 'started', i));
    const first = await sink.deliver(fresh(...events));
    expect(first.map(expectDelivered).flat()).toHaveLength(250);
    expect(emulator.stats()).toMatchObject({ batchCalls: 3, created: 250 });
    expect(emulator.records(MILESTONES)).toHaveLength(250);
    const before = emulator.records(MILESTONES);

    const second = await sink.deliver(fresh(...events));

    expect(second.map(expectDelivered)).toEqual(first.map(expectDelivered));
    for (const record of before) {
      const after = emulator.record(MILESTONES, 'plantlink_event_id', record.properties.plantlink_event_id!)!;
      expect(after).toMatchObject({ id: record.id, writes: record.writes + 1, changes: record.changes, properties: record.properties });
    }
    expect(emulator.stats()).toMatchObject({ batchCalls: 6, created: 250, unchanged: 250, updated: 0 });
  });

  it('a validation error in a 207 rejects only its item, with HubSpot category and message naming the object and id', async () => {
    const { emulator, sink } = await setup();
    emulator.addValidationRule(WORK_ORDERS, { property: 'plantlink_sales_order', test: (v) => v !== 'SO-BLOCKED', message: 'Sales order SO-BLOCKED is closed' });
    const outcomes = await sink.deliver(
      fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2, { salesOrder: 'SO-BLOCKED' }), milestoneEvent('WO-3', 'released', 3)),
    );

    expectDelivered(outcomes[0]);
    expectDelivered(outcomes[2]);
    const error = expectRejected(outcomes[1]);
    expect(error.code).toBe('VALIDATION_ERROR');
    expect(error.message).toBe(
      'upserting p_plantlink_work_orders/WO-2: VALIDATION_ERROR: Property values were not valid: VALIDATION_RULE_FAILED (plantlink_sales_order): Sales order SO-BLOCKED is closed',
    );
    expect(emulator.record(WORK_ORDERS, 'plantlink_work_order', 'WO-2')).toBeUndefined();
    expect(emulator.stats().batchCalls).toBe(2);
  });

  it('an option HubSpot does not know and a property that does not exist are rejected with HubSpot words', async () => {
    const { sink } = await setup({
      emulator: {
        objects: {
          p_plantlink_milestones: {
            objectTypeId: '2-9',
            properties: { plantlink_event_id: { type: 'string', hasUniqueValue: true }, plantlink_milestone: { type: 'enumeration', options: ['released'] } },
          },
        },
      },
      sink: { mappings: [{ ...milestonesOnly[0]!, properties: { plantlink_milestone: 'data.milestone' } }] },
    });
    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'held', 1), milestoneEvent('WO-2', 'released', 2)));
    expect(expectRejected(outcomes[0]).message).toMatch(/VALIDATION_ERROR: Property values were not valid: INVALID_OPTION \(plantlink_milestone\): held was not one of the allowed options: \[released\]$/);
    expectDelivered(outcomes[1]);

    const { sink: other } = await setup({ sink: { mappings: [{ ...milestonesOnly[0]!, properties: { plantlink_colour: 'data.milestone' } }] } });
    expect(expectRejected((await other.deliver(fresh(milestoneEvent('WO-1', 'held', 1))))[0]).message).toContain(
      'PROPERTY_DOESNT_EXIST (plantlink_colour): Property "plantlink_colour" does not exist',
    );
  });

  it('when HubSpot refuses a whole call (400, no partial success), the call is split until only the bad item is rejected', async () => {
    const { emulator, sink } = await setup({ emulator: { partialSuccess: 'never' }, sink: { mappings: milestonesOnly } });
    emulator.addValidationRule(MILESTONES, { property: 'plantlink_work_order', test: (v) => v !== 'WO-5', message: 'WO-5 is blocked' });
    const events = Array.from({ length: 8 }, (_, i) => milestoneEvent(`WO-${i}`, 'started', i));

    const outcomes = await sink.deliver(fresh(...events));

    expect(outcomes).toHaveLength(8);
    outcomes.forEach((outcome, i) => (i === 5 ? expect(expectRejected(outcome).message).toContain('WO-5 is blocked') : expectDelivered(outcome)));
    expect(emulator.records(MILESTONES)).toHaveLength(7);
    // 8 -> 4 + 4 -> (4 ok) 2 + 2 -> (2 ok) 1 + 1.
    expect(emulator.stats().batchCalls).toBe(7);
  });

  it('an answer that does not account for some inputs: they are resent in smaller calls', async () => {
    const { emulator, sink } = await setup({ sink: { mappings: milestonesOnly } });
    emulator.failNext(1, { status: 207, body: { status: 'COMPLETE', results: [], numErrors: 1, errors: [{ status: 'error', category: 'VALIDATION_ERROR', message: 'something' }] } });
    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 1), milestoneEvent('WO-2', 'started', 2), milestoneEvent('WO-3', 'started', 3)));
    expect(outcomes.map(expectDelivered)).toHaveLength(3);
    expect(emulator.records(MILESTONES)).toHaveLength(3);
  });

  it('items of one subject land in batch order: the latest-state record ends at the newest event', async () => {
    const { emulator, sink } = await setup();
    const statuses: string[] = [];
    emulator.on('upsert', ({ record }: UpsertEvent) => {
      if (record.objectType === WORK_ORDERS && record.properties.plantlink_work_order === 'WO-A') statuses.push(record.properties.plantlink_status!);
    });
    const steps = ['released', 'started', 'quantity-reported', 'held', 'resumed', 'completed'] as const;
    const events = steps.flatMap((milestone, i) => [milestoneEvent('WO-A', milestone, i * 10), milestoneEvent(`WO-B${i}`, 'released', i * 10 + 1)]);

    const outcomes = await sink.deliver(fresh(...events));

    expect(outcomes.map(expectDelivered)).toHaveLength(12);
    expect(statuses).toEqual([...steps]);
    expect(emulator.record(WORK_ORDERS, 'plantlink_work_order', 'WO-A')!.properties).toMatchObject({ plantlink_status: 'completed', plantlink_good_quantity: '500' });
    expect(emulator.records(MILESTONES)).toHaveLength(12);
    // Round 1: milestones + work orders; rounds 2..6: one more WO-A write each.
    expect(emulator.stats().batchCalls).toBe(7);
  });

  it('a stale item writes its per-event record but skips the latest-state record', async () => {
    const { emulator, sink } = await setup();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'completed', 9))))[0]);
    const older = milestoneEvent('WO-1', 'started', 2);

    const [outcome] = await sink.deliver([{ event: older, stale: true }]);

    expect(expectDelivered(outcome)).toEqual([emulator.record(MILESTONES, 'plantlink_event_id', older.id)!.id]);
    expect(emulator.record(WORK_ORDERS, 'plantlink_work_order', 'WO-1')).toMatchObject({ writes: 1, properties: { plantlink_status: 'completed' } });
  });

  it('429 from the rolling window: errored with the Retry-After hint, and the rest of the batch is not attempted', async () => {
    const { emulator, sink } = await setup({ emulator: { rateLimit: { max: 1, intervalMs: 60_000 } }, sink: { mappings: defaultHubSpotMappings } });
    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)));

    // The milestone call used the window; the work order call got 429.
    for (const outcome of outcomes) {
      const error = expectErrored(outcome);
      expect(error.message).toContain('upserting p_plantlink_work_orders/WO-');
      expect(error.message).toContain('HTTP 429 (policy TEN_SECONDLY_ROLLING)');
      expect(error.retryAfterMs).toBeGreaterThan(0);
      expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
    }
    expect(emulator.stats()).toMatchObject({ batchCalls: 1, rateLimited: 1 });
    expect(sink.quota()).toMatchObject({ max: 1, remaining: 0 });
  });

  it('429 without Retry-After: the hint is the rolling window for TEN_SECONDLY_ROLLING and an hour for DAILY', async () => {
    const { emulator, sink } = await setup({ emulator: { rateLimit: { max: 1, intervalMs: 30_000 }, retryAfter: false }, sink: { mappings: milestonesOnly } });
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    const windowed = expectErrored((await sink.deliver(fresh(milestoneEvent('WO-2', 'released', 2), milestoneEvent('WO-3', 'released', 3))))[0]);
    expect(windowed.retryAfterMs).toBe(30_000);

    emulator.resetRateLimits();
    emulator.failNext(1, { status: 429, body: { status: 'error', message: 'You have reached your daily limit.', errorType: 'RATE_LIMIT', policyName: 'DAILY' } });
    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-2', 'released', 2)));
    expect(expectErrored(outcomes[0]).retryAfterMs).toBe(60 * 60_000);
  });

  it('503 with Retry-After is errored with the hint; later calls of the batch are not attempted', async () => {
    const { emulator, sink } = await setup();
    emulator.failNext(1, { status: 503, headers: { 'Retry-After': '5' } });
    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)));
    for (const outcome of outcomes) {
      const error = expectErrored(outcome);
      expect(error.message).toMatch(/^upserting p_plantlink_milestones\/.*HTTP 503/);
      expect(error.retryAfterMs).toBe(5_000);
    }
    expect(emulator.stats()).toMatchObject({ batchCalls: 0, upserts: 0 });
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-3', 'released', 3))))[0]);
  });

  it('an outage (connections closed without an answer) is errored, and delivery resumes when it ends', async () => {
    const { emulator, sink } = await setup();
    emulator.setOutage(true);
    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)));
    outcomes.forEach((o) => expect(expectErrored(o).message).toMatch(/^upserting p_plantlink_milestones\//));

    emulator.setOutage(false);
    (await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1)))).forEach(expectDelivered);
  });

  it('a request without an answer within timeoutMs is errored', async () => {
    const { emulator, sink } = await setup({ sink: { timeoutMs: 200 } });
    emulator.setLatency(2_000);
    expect(expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).message).toContain('no answer within 200 ms');
  });

  it('a refused token: start() fails; deliveries are errored with a long hint; the token appears in no message or log', async () => {
    const token = 'pat-na1-revoked-secret-token';
    const { emulator, sink, logs } = await setup({ emulator: { tokens: [token] }, sink: { token } });
    await sink.start();
    emulator.revokeToken(token);

    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1), shipmentEvent('SH-1', 'packed', 2)));

    for (const outcome of outcomes) {
      const error = expectErrored(outcome);
      expect(error.retryAfterMs).toBe(60_000);
      expect(error.message).not.toContain(token);
    }
    expect(expectErrored(outcomes[0]).message).toContain('HubSpot refused the private app token (INVALID_AUTHENTICATION: Authentication credentials not found');
    expect(emulator.stats().status[401]).toBe(1);

    const { sink: other, logs: otherLogs } = await setup({ sink: { token } });
    const started = other.start();
    await expect(started).rejects.toThrow(PermanentError);
    await expect(started).rejects.toThrow(/INVALID_AUTHENTICATION/);
    expect(expectErrored((await other.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).message).toContain('stopped');
    expect(logs() + otherLogs()).toContain('HubSpot call failed transiently');
    expect(logs() + otherLogs()).not.toContain(token);
  });

  it('an unknown object type rejects every item of its call; a missing id is mapping_error without calling HubSpot', async () => {
    const { sink } = await setup({ sink: { mappings: [{ ...milestonesOnly[0]!, objectType: 'butterflies' }] } });
    const unknown = expectRejected((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    expect(unknown.code).toBe('http_400');
    expect(unknown.message).toMatch(/^upserting butterflies\/.*: Unable to infer object type from: butterflies$/);

    const { emulator, sink: noId } = await setup({ sink: { mappings: [{ ...defaultHubSpotMappings[1]!, idFrom: 'data.jobOrder' }] } });
    expect(expectRejected((await noId.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).code).toBe('mapping_error');
    expect(expectRejected((await noId.deliver([{ event: shipmentEvent('SH-1', 'packed', 1), stale: false }]))[0]).code).toBe('no_mapping');
    expect(emulator.stats().requests).toBe(0);
  });

  it('stop() aborts requests in flight: their items are errored', async () => {
    const { emulator, sink } = await setup();
    emulator.setLatency(5_000);
    const pending = sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1)));
    await new Promise((resolve) => setImmediate(resolve));
    await sink.stop();
    expect(expectErrored((await pending)[0]).message).toContain('stopping');
    expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
  });
});
