import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PermanentError, TransientError } from '../../../../protocols/errors.js';
import { createLogger, type Logger } from '../../../../protocols/log.js';
import { defaultNetSuiteMappings, NetSuiteSink, type NetSuiteSinkConfigInput, type NetSuiteSinkOptions } from '../../../../relay/sinks/netsuite/index.js';
import type { DeliveryItem, Outcome } from '../../../../relay/sinks/sink.js';
import { NetSuiteEmulator, type NetSuiteEmulatorOptions, type UpsertEvent } from '../../../emulators/netsuite/netsuite-emulator.js';
import { tempDir } from '../../../helpers/temp.js';
import { milestoneEvent, shipmentEvent } from '../salesforce/fixtures.js';

const WO = 'customrecord_plantlink_workorder';
const SH = 'customrecord_plantlink_shipment';
const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const ecPem = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const otherEcPem = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function captureLogger(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const logger = createLogger('netsuite-sink-test', { level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
  return { logger, text: () => lines.join('') };
}

async function setup(
  options: { emulator?: Partial<NetSuiteEmulatorOptions>; sink?: Partial<NetSuiteSinkConfigInput>; sinkOptions?: NetSuiteSinkOptions } = {},
): Promise<{ emulator: NetSuiteEmulator; sink: NetSuiteSink; logs: () => string }> {
  const emulator = await NetSuiteEmulator.start({
    clients: [{ clientId: 'plantlink-client', certificateId: 'cert-1', publicKey: ec.publicKey }],
    ...options.emulator,
  });
  const { logger, text } = captureLogger();
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
    options.sinkOptions,
  );
  cleanups.push(async () => {
    await sink.stop();
    await emulator.stop();
  });
  return { emulator, sink, logs: text };
}

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

async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('NetSuiteSink against the NetSuite emulator', () => {
  it('delivers a batch: the latest status per work order and per shipment, with typed fields, select values and record ids', async () => {
    const { emulator, sink } = await setup();
    await sink.start();
    const events = [milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2), milestoneEvent('WO-1', 'started', 3), shipmentEvent('SH-1', 'shipped', 4)];

    const outcomes = await sink.deliver(fresh(...events));

    expect(outcomes.map(expectDelivered)).toEqual([
      [`${WO}/${emulator.record(WO, 'WO-1')!.id}`],
      [`${WO}/${emulator.record(WO, 'WO-2')!.id}`],
      [`${WO}/${emulator.record(WO, 'WO-1')!.id}`],
      [`${SH}/${emulator.record(SH, 'SH-1')!.id}`],
    ]);
    expect(emulator.record(WO, 'WO-1')!.fields).toEqual({
      name: 'WO-1',
      custrecord_plk_wo_sales_order: 'SO-100',
      custrecord_plk_wo_status: { id: '2', refName: 'Started' },
      custrecord_plk_wo_good_qty: 30,
      custrecord_plk_wo_planned_qty: 500,
      custrecord_plk_wo_last_event_at: '2024-05-01T08:00:03Z',
      custrecord_plk_wo_product: 'PUMP-7',
      custrecord_plk_wo_equipment: 'line-1',
      custrecord_plk_wo_plant: 'P1',
    });
    expect(emulator.record(SH, 'SH-1')!.fields).toMatchObject({
      name: 'SH-1',
      custrecord_plk_sh_status: { id: '2', refName: 'Shipped' },
      custrecord_plk_sh_carrier: 'DHL',
      custrecord_plk_sh_tracking: 'TRK-SH-1',
    });
    expect(emulator.stats()).toMatchObject({ tokensIssued: 1, created: 3, updated: 1, throttled: 0 });
  });

  it('redelivery of a delivered batch writes the records again and changes nothing; a stale item skips its latest-state write', async () => {
    const { emulator, sink } = await setup();
    const released = milestoneEvent('WO-1', 'released', 1);
    const started = milestoneEvent('WO-1', 'started', 2);
    const shipped = shipmentEvent('SH-1', 'shipped', 3);
    const first = await sink.deliver(fresh(released, started, shipped));
    first.forEach(expectDelivered);
    const before = [...emulator.records(WO), ...emulator.records(SH)];

    // As the engine redelivers after a crash: WO-1 "started" was applied, so "released" is now stale.
    const second = await sink.deliver([
      { event: released, stale: true },
      { event: started, stale: false },
      { event: shipped, stale: false },
    ]);

    expect(second.map(expectDelivered)).toEqual([[], ...first.slice(1).map(expectDelivered)]);
    for (const record of before) {
      const after = emulator.record(record.recordType, record.externalId)!;
      expect(after.changes, `${record.recordType}/${record.externalId}`).toBe(record.changes);
      expect(after.fields).toEqual(record.fields);
    }
    expect(emulator.record(WO, 'WO-1')!.writes).toBe(3);
    expect(emulator.stats()).toMatchObject({ created: 2, updated: 1, unchanged: 2 });
  });

  it('a stale item never overwrites the newer status', async () => {
    const { emulator, sink } = await setup();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'completed', 9))))[0]);

    const [outcome] = await sink.deliver([{ event: milestoneEvent('WO-1', 'started', 2), stale: true }]);

    expect(expectDelivered(outcome)).toEqual([]);
    expect(emulator.record(WO, 'WO-1')).toMatchObject({ writes: 1, fields: { custrecord_plk_wo_status: { id: '4' } } });
  });

  it('applies items of the same subject in batch order while other subjects run concurrently', async () => {
    const { emulator, sink } = await setup({ sink: { concurrency: 2 } });
    emulator.setLatency(2);
    const statuses: string[] = [];
    emulator.on('upsert', ({ record }: UpsertEvent) => {
      if (record.externalId === 'WO-A') statuses.push((record.fields.custrecord_plk_wo_status as { refName: string }).refName);
    });
    const steps = ['released', 'started', 'quantity-reported', 'held', 'resumed', 'completed'] as const;
    const events = steps.flatMap((milestone, i) => [milestoneEvent('WO-A', milestone, i * 10), milestoneEvent(`WO-B${i}`, 'released', i * 10 + 1)]);

    const outcomes = await sink.deliver(fresh(...events));

    outcomes.forEach(expectDelivered);
    expect(statuses).toEqual(['Released', 'Started', 'Quantity Reported', 'Held', 'Resumed', 'Completed']);
  });

  it('keeps at most `concurrency` requests in flight', async () => {
    const { emulator, sink } = await setup({ sink: { concurrency: 2 }, emulator: { concurrencyLimit: 5 } });
    await sink.start();
    const release = emulator.hold();
    const pending = sink.deliver(fresh(...['A', 'B', 'C', 'D', 'E'].map((k, i) => milestoneEvent(`WO-${k}`, 'released', i))));
    await until(() => emulator.stats().inFlight === 2);
    release();
    (await pending).forEach(expectDelivered);
    expect(emulator.stats()).toMatchObject({ maxInFlight: 2, throttled: 0, created: 5 });
  });

  it('a validation failure rejects only its item, with NetSuite\'s o:errorCode and detail naming record type and external id', async () => {
    const { emulator, sink } = await setup();
    emulator.addValidationRule(WO, { field: 'custrecord_plk_wo_sales_order', test: (v) => v !== 'SO-BLOCKED', message: 'Sales order SO-BLOCKED is closed.' });

    const outcomes = await sink.deliver(
      fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2, { salesOrder: 'SO-BLOCKED' }), milestoneEvent('WO-3', 'released', 3)),
    );

    expectDelivered(outcomes[0]);
    expectDelivered(outcomes[2]);
    const error = expectRejected(outcomes[1]);
    expect(error.code).toBe('USER_ERROR');
    expect(error.message).toBe(
      `upserting ${WO}/eid:WO-2: USER_ERROR: Error while accessing a resource. Sales order SO-BLOCKED is closed. [custrecord_plk_wo_sales_order]`,
    );
    expect(emulator.record(WO, 'WO-2')).toBeUndefined();
  });

  it('a field the record type does not have is rejected INVALID_CONTENT, not silently dropped', async () => {
    const { emulator, sink } = await setup({
      sink: { mappings: [{ eventType: 'com.plantlink.production.milestone.v1', recordType: WO, externalIdFrom: 'data.workOrder', fields: { name: 'data.workOrder', custrecord_typo: 'data.product' } }] },
    });
    const error = expectRejected((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    expect(error.code).toBe('INVALID_CONTENT');
    expect(error.message).toContain('[custrecord_typo]');
    expect(emulator.records(WO)).toEqual([]);
  });

  it('429 SSS_REQUEST_LIMIT_EXCEEDED (concurrency used by other integrations) is errored with a retry hint; the rest of the batch is not attempted', async () => {
    const { emulator, sink } = await setup({ emulator: { concurrencyLimit: 2 }, sink: { concurrency: 1 } });
    await sink.start();
    const release = emulator.occupy(2);

    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)));

    const first = expectErrored(outcomes[0]);
    expect(first.message).toContain(`upserting ${WO}/eid:WO-1: HTTP 429: SSS_REQUEST_LIMIT_EXCEEDED`);
    expect(first.retryAfterMs).toBe(2_000);
    const second = expectErrored(outcomes[1]);
    expect(second.message).toMatch(/^not attempted/);
    expect(second.retryAfterMs).toBe(2_000);
    expect(emulator.stats()).toMatchObject({ throttled: 1, upserts: 0 });

    release();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
  });

  it('honours Retry-After on 429 and 503', async () => {
    const { emulator, sink } = await setup();
    emulator.failNext(1, { status: 429, headers: { 'Retry-After': '5' } });
    expect(expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).retryAfterMs).toBe(5_000);
    emulator.failNext(1, { status: 503, headers: { 'Retry-After': '7' } });
    const unavailable = expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    expect(unavailable.retryAfterMs).toBe(7_000);
    expect(unavailable.message).toContain('HTTP 503: SERVICE_UNAVAILABLE');
  });

  it('an outage (connections closed without an answer) is errored, and delivery resumes when it ends', async () => {
    const { emulator, sink } = await setup();
    await sink.start();
    emulator.setOutage(true);
    const down = expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    expect(down.message).toContain(`upserting ${WO}/eid:WO-1`);

    emulator.setOutage(false);
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
  });

  it('a request without an answer within timeoutMs is errored', async () => {
    const { emulator, sink } = await setup({ sink: { timeoutMs: 200 } });
    await sink.start();
    emulator.setLatency(2_000);
    expect(expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]).message).toContain('no answer within 200 ms');
  });

  it('replaces the access token before it expires, without meeting a 401', async () => {
    let now = Date.parse('2024-05-01T08:00:00Z');
    const clock = (): number => now;
    const { emulator, sink } = await setup({ emulator: { now: clock }, sinkOptions: { now: clock } });
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);

    now += 56 * 60 * 1000; // within the last 5 minutes of the 60-minute token
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 2))))[0]);

    expect(emulator.stats()).toMatchObject({ tokensIssued: 2 });
    expect(emulator.stats().status[401]).toBeUndefined();
  });

  it('a revoked token (401 INVALID_LOGIN) is replaced once and the write retried', async () => {
    const { emulator, sink } = await setup();
    await sink.start();
    emulator.expireTokens();

    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 2), milestoneEvent('WO-2', 'started', 3)));

    outcomes.forEach(expectDelivered);
    expect(emulator.stats().tokensIssued).toBe(2);
    expect(emulator.stats().status[401]).toBeGreaterThanOrEqual(1);
  });

  it('an assertion signed with the wrong key fails start(); deliveries are errored with a long retry hint; no key material is logged', async () => {
    const config = { auth: { flow: 'client_credentials' as const, clientId: 'plantlink-client', certificateId: 'cert-1', privateKey: otherEcPem, algorithm: 'ES256' as const } };
    const { emulator, sink, logs } = await setup({ sink: config });
    const started = sink.start();
    await expect(started).rejects.toThrow(PermanentError);
    await expect(started).rejects.toThrow(/invalid_client/);
    expect(emulator.loginAuditTrail()[0]).toMatchObject({ detail: 'InvalidSignature' });

    const { sink: other, emulator: otherEmulator, logs: otherLogs } = await setup({ sink: config });
    const outcomes = await other.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)));
    const error = expectErrored(outcomes[0]);
    expect(error.retryAfterMs).toBe(60_000);
    expect(error.message).toContain('invalid_client');
    expect(expectErrored(outcomes[1]).retryAfterMs).toBe(60_000);
    expect(otherEmulator.stats().tokenRequests).toBe(1); // concurrent items share one token request
    const keyBody = otherEcPem.split('\n')[1]!;
    expect(logs() + otherLogs() + error.message).not.toContain(keyBody);
  });

  it('never logs the access token or the private key', async () => {
    const { emulator, sink, logs } = await setup();
    await sink.start();
    emulator.expireTokens();
    emulator.failNext(1, { status: 500 });
    await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1)));
    await sink.deliver(fresh(milestoneEvent('WO-2', 'released', 2)));
    const text = logs();
    expect(text).toContain('obtained a NetSuite access token');
    expect(text).not.toContain(ecPem.split('\n')[1]!);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./); // no JWT (assertion or access token)
  });

  it('an event value without a select list value, or without an external id, is rejected mapping_error without calling NetSuite', async () => {
    const { emulator, sink } = await setup({
      sink: {
        mappings: [
          {
            eventType: 'com.plantlink.production.milestone.v1',
            recordType: WO,
            externalIdFrom: 'data.workOrder',
            fields: { name: 'data.workOrder' },
            selects: { custrecord_plk_wo_status: { from: 'data.milestone', values: { released: '1' } } },
          },
          { eventType: 'com.plantlink.shipment.v1', recordType: SH, externalIdFrom: 'data.jobOrder' },
        ],
      },
    });
    const [held, shipped] = await sink.deliver([
      { event: milestoneEvent('WO-1', 'held', 1), stale: false },
      { event: shipmentEvent('SH-1', 'shipped', 2), stale: false },
    ]);
    const select = expectRejected(held);
    expect(select.code).toBe('mapping_error');
    expect(select.message).toContain('custrecord_plk_wo_status has no list value for "held"');
    expect(expectRejected(shipped).message).toContain('no external id at "data.jobOrder"');
    expect(emulator.stats().requests).toBe(0);
  });

  it('reads governance limits at start and warns when concurrency is above the integration\'s limit', async () => {
    const { sink, logs } = await setup({ emulator: { concurrencyLimit: 5, integrationConcurrencyLimit: 2 }, sink: { concurrency: 4 } });
    await sink.start();
    expect(sink.governanceLimits()).toEqual({
      accountConcurrencyLimit: 5,
      accountUnallocatedConcurrencyLimit: 3,
      integrationConcurrencyLimit: 2,
      integrationLimitType: 'integrationSpecific',
    });
    expect(logs()).toContain('concurrency is above the NetSuite concurrency limit');
  });

  it('signs with PS256 and an RSA key read from privateKeyFile', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const { dir, cleanup } = tempDir('plantlink-netsuite-');
    cleanups.push(cleanup);
    const file = join(dir, 'private.pem');
    writeFileSync(file, rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    const { sink } = await setup({
      emulator: { clients: [{ clientId: 'plantlink-client', certificateId: 'cert-rsa', publicKey: rsa.publicKey }] },
      sink: { auth: { flow: 'client_credentials', clientId: 'plantlink-client', certificateId: 'cert-rsa', privateKeyFile: file, algorithm: 'PS256' } },
    });
    await sink.start();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
  });

  it('refuses a key that does not suit the algorithm when the sink is built', () => {
    const { logger } = captureLogger();
    const build = (): NetSuiteSink =>
      new NetSuiteSink(
        {
          name: 'erp',
          kind: 'netsuite',
          accountId: '1234567',
          auth: { flow: 'client_credentials', clientId: 'c', certificateId: 'k', privateKey: ecPem, algorithm: 'PS256' },
          mappings: defaultNetSuiteMappings,
        },
        logger,
      );
    expect(build).toThrow(PermanentError);
    expect(build).toThrow(/PS256 needs an RSA key/);
  });

  it('stop() aborts requests in flight: their items are errored', async () => {
    const { emulator, sink } = await setup();
    await sink.start();
    const release = emulator.hold();
    cleanups.push(release);
    const pending = sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1)));
    await until(() => emulator.stats().inFlight === 1);
    await sink.stop();
    expect(expectErrored((await pending)[0]).message).toContain('stopping');
    expectErrored((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
  });
});
