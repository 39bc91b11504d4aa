// The emulator's sObject Collections upsert endpoint, over real HTTP.
import { afterEach, describe, expect, it } from 'vitest';
import { SalesforceEmulator, type CollectionCallEvent, type SalesforceEmulatorOptions, type UpsertEvent, type UpsertResult } from './salesforce-emulator.js';

const running: SalesforceEmulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

async function start(options?: SalesforceEmulatorOptions): Promise<{ emulator: SalesforceEmulator; accessToken: string }> {
  const emulator = await SalesforceEmulator.start(options);
  running.push(emulator);
  const res = await fetch(`${emulator.url}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'plantlink-client', client_secret: 'plantlink-secret' }).toString(),
  });
  return { emulator, accessToken: ((await res.json()) as { access_token: string }).access_token };
}

interface Answer {
  status: number;
  body: unknown;
  headers: Headers;
}

async function collection(
  emulator: SalesforceEmulator,
  accessToken: string | undefined,
  path: string,
  body: unknown,
  method = 'PATCH',
): Promise<Answer> {
  const res = await fetch(`${emulator.url}/services/data/v60.0/composite/sobjects/${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(accessToken ? { Authorization: `Bearer ${accessToken}` } : {}) },
    ...(method === 'GET' ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const MILESTONES = 'Production_Milestone__c/Plantlink_Event_Id__c';
const ORDERS = 'Production_Order__c/Work_Order_Number__c';

const milestone = (eventId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  attributes: { type: 'Production_Milestone__c' },
  Plantlink_Event_Id__c: eventId,
  Work_Order__c: 'WO-1',
  Milestone__c: 'started',
  Occurred_At__c: '2024-05-01T08:00:00Z',
  ...overrides,
});

const order = (workOrder: string, overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  attributes: { type: 'Production_Order__c' },
  Work_Order_Number__c: workOrder,
  Status__c: 'started',
  ...overrides,
});

const results = (answer: Answer): UpsertResult[] => answer.body as UpsertResult[];

describe('SalesforceEmulator: sObject Collections upsert', () => {
  it('creates and updates records in request order, one result each, as one API call', async () => {
    const { emulator, accessToken } = await start();
    const upserts: UpsertEvent[] = [];
    const calls: CollectionCallEvent[] = [];
    emulator.on('upsert', (e) => upserts.push(e));
    emulator.on('collection', (e) => calls.push(e));

    const first = await collection(emulator, accessToken, MILESTONES, { allOrNone: false, records: [milestone('e1'), milestone('e2')] });
    expect(first.status).toBe(200);
    expect(first.headers.get('sforce-limit-info')).toBe('api-usage=1/100000');
    expect(results(first)).toEqual([
      { id: emulator.record('Production_Milestone__c', 'e1')!.id, success: true, errors: [], created: true },
      { id: emulator.record('Production_Milestone__c', 'e2')!.id, success: true, errors: [], created: true },
    ]);

    // allOrNone defaults to false; an unchanged rewrite counts as a write, not a change.
    const second = await collection(emulator, accessToken, MILESTONES, { records: [milestone('e3'), milestone('e1', { Milestone__c: 'completed' }), milestone('e2')] });
    expect(results(second).map((r) => [r.success, r.created])).toEqual([
      [true, true],
      [true, false],
      [true, false],
    ]);
    expect(emulator.record('Production_Milestone__c', 'e1')).toMatchObject({ writes: 2, changes: 2, fields: { Plantlink_Event_Id__c: 'e1', Milestone__c: 'completed' } });
    expect(emulator.record('Production_Milestone__c', 'e2')).toMatchObject({ writes: 2, changes: 1 });
    expect(emulator.stats()).toMatchObject({ apiCalls: 2, upserts: 5, created: 3, updated: 1, unchanged: 1, rejected: 0 });
    expect(upserts.map((e) => e.record.externalId)).toEqual(['e1', 'e2', 'e3', 'e1', 'e2']);
    expect(calls).toEqual([
      { object: 'Production_Milestone__c', externalIdField: 'Plantlink_Event_Id__c', externalIds: ['e1', 'e2'], allOrNone: false },
      { object: 'Production_Milestone__c', externalIdField: 'Plantlink_Event_Id__c', externalIds: ['e3', 'e1', 'e2'], allOrNone: false },
    ]);
  });

  it('writes the same record the single-record endpoint reads and writes', async () => {
    const { emulator, accessToken } = await start();
    await collection(emulator, accessToken, ORDERS, { records: [order('WO/7', { Plant__c: 'P1' })] });
    const single = await fetch(`${emulator.url}/services/data/v60.0/sobjects/Production_Order__c/Work_Order_Number__c/WO%2F7`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${accessToken}` },
      body: JSON.stringify({ Status__c: 'held' }),
    });
    expect(single.status).toBe(200);
    expect(emulator.record('Production_Order__c', 'WO/7')).toMatchObject({ writes: 2, fields: { Status__c: 'held', Plant__c: 'P1' } });
  });

  it('allOrNone false: a failing record fails alone with statusCode, message and fields; the call still answers 200', async () => {
    const { emulator, accessToken } = await start();
    emulator.addValidationRule('Production_Order__c', { field: 'Sales_Order__c', test: (v) => v !== 'SO-BLOCKED', message: 'Sales order SO-BLOCKED is closed' });
    const answer = await collection(emulator, accessToken, ORDERS, {
      allOrNone: false,
      records: [order('WO-1'), order('WO-2', { Sales_Order__c: 'SO-BLOCKED' }), order('WO-3', { Status__c: 'exploded' }), order('WO-4', { Id: 'a01000000000001AAA' })],
    });
    expect(answer.status).toBe(200);
    const [ok, blocked, picklist, withId] = results(answer);
    expect(ok).toMatchObject({ success: true, created: true });
    expect(blocked).toEqual({ success: false, errors: [{ statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: 'Sales order SO-BLOCKED is closed', fields: ['Sales_Order__c'] }] });
    expect(picklist!.errors).toEqual([{ statusCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', message: 'bad value for restricted picklist field: exploded', fields: ['Status__c'] }]);
    expect(withId!.errors[0]).toMatchObject({ statusCode: 'INVALID_FIELD', fields: ['Id'] });
    expect(emulator.records('Production_Order__c').map((r) => r.externalId)).toEqual(['WO-1']);
    expect(emulator.stats()).toMatchObject({ upserts: 1, rejected: 3 });
  });

  it('allOrNone true: one failing record rolls back the whole request', async () => {
    const { emulator, accessToken } = await start();
    const answer = await collection(emulator, accessToken, ORDERS, { allOrNone: true, records: [order('WO-1'), order('WO-2', { Status__c: 'exploded' })] });
    expect(answer.status).toBe(200);
    expect(results(answer)).toEqual([
      {
        success: false,
        errors: [{ statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK', message: 'Record rolled back because not all records were valid and the request was using AllOrNone header', fields: [] }],
      },
      { success: false, errors: [{ statusCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', message: 'bad value for restricted picklist field: exploded', fields: ['Status__c'] }] },
    ]);
    expect(emulator.records('Production_Order__c')).toEqual([]);
    expect(emulator.stats().upserts).toBe(0);
  });

  it('the same external id twice in one request fails every record carrying it with DUPLICATE_VALUE; the others are written', async () => {
    const { emulator, accessToken } = await start();
    const answer = await collection(emulator, accessToken, ORDERS, { records: [order('WO-1'), order('WO-2'), order('WO-1', { Status__c: 'held' })] });
    const duplicate = { success: false, errors: [{ statusCode: 'DUPLICATE_VALUE', message: 'Duplicate external id specified: WO-1', fields: ['Work_Order_Number__c'] }] };
    expect(results(answer)).toEqual([duplicate, expect.objectContaining({ success: true }), duplicate]);
    expect(emulator.records('Production_Order__c').map((r) => r.externalId)).toEqual(['WO-2']);
  });

  it('an external id matching several stored records fails that record with DUPLICATE_EXTERNAL_ID', async () => {
    const { emulator, accessToken } = await start();
    await collection(emulator, accessToken, ORDERS, { records: [order('WO-D')] });
    emulator.seedDuplicate('Production_Order__c', 'WO-D');
    const [result] = results(await collection(emulator, accessToken, ORDERS, { records: [order('WO-D', { Status__c: 'held' })] }));
    expect(result).toMatchObject({ success: false, errors: [{ statusCode: 'DUPLICATE_EXTERNAL_ID', fields: ['Work_Order_Number__c'] }] });
    expect(result!.errors[0]!.message).toMatch(/^more than one record found for external id field: \[a01\w{15}, a01\w{15}\]$/);
    expect(emulator.records('Production_Order__c').map((r) => r.fields.Status__c)).toEqual(['started', 'started']);
  });

  it('a record without its external id value fails with MISSING_ARGUMENT', async () => {
    const { emulator, accessToken } = await start();
    const { Work_Order_Number__c: _, ...noId } = order('WO-1');
    const [result] = results(await collection(emulator, accessToken, ORDERS, { records: [noId] }));
    expect(result).toMatchObject({ success: false, errors: [{ statusCode: 'MISSING_ARGUMENT', fields: ['Work_Order_Number__c'] }] });
  });

  it('takes 200 records and refuses 201 whole with 400 EXCEEDED_ID_LIMIT, writing nothing; the refused request is still one API call', async () => {
    const { emulator, accessToken } = await start();
    const records = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => milestone(`${prefix}-${i}`));
    const over = await collection(emulator, accessToken, MILESTONES, { records: records(201, 'over') });
    expect(over).toMatchObject({ status: 400, body: [{ errorCode: 'EXCEEDED_ID_LIMIT', message: 'record limit reached. cannot submit more than 200 records into this call' }] });
    expect(over.headers.get('sforce-limit-info')).toBe('api-usage=1/100000');
    expect(emulator.records('Production_Milestone__c')).toEqual([]);

    const full = await collection(emulator, accessToken, MILESTONES, { records: records(200, 'full') });
    expect(full.status).toBe(200);
    expect(results(full).every((r) => r.success)).toBe(true);
    expect(emulator.records('Production_Milestone__c')).toHaveLength(200);
    expect(emulator.stats()).toMatchObject({ apiCalls: 2, upserts: 200, rejected: 1 });
  });

  it('refuses malformed requests whole with 400, and unknown objects or non-external-id fields with 404', async () => {
    const { emulator, accessToken } = await start();
    const { attributes: _, ...untyped } = milestone('e1');
    const cases: [string, unknown, number, string][] = [
      [MILESTONES, { records: [untyped] }, 400, 'INVALID_TYPE'],
      [MILESTONES, { records: [order('WO-1')] }, 400, 'INVALID_TYPE'],
      [MILESTONES, { allOrNone: false }, 400, 'JSON_PARSER_ERROR'],
      [MILESTONES, [milestone('e1')], 400, 'JSON_PARSER_ERROR'],
      [MILESTONES, { allOrNone: 'yes', records: [milestone('e1')] }, 400, 'JSON_PARSER_ERROR'],
      [MILESTONES, '{"records": [', 400, 'JSON_PARSER_ERROR'],
      ['Nope__c/Plantlink_Event_Id__c', { records: [] }, 404, 'NOT_FOUND'],
      ['Production_Milestone__c/Work_Order__c', { records: [milestone('e1')] }, 404, 'NOT_FOUND'],
    ];
    for (const [path, body, status, errorCode] of cases) {
      const answer = await collection(emulator, accessToken, path, body);
      expect(answer.status, `${JSON.stringify(body)} -> ${errorCode}`).toBe(status);
      expect((answer.body as { errorCode: string }[])[0]!.errorCode).toBe(errorCode);
    }
    expect(emulator.records('Production_Milestone__c')).toEqual([]);
    expect((await collection(emulator, accessToken, MILESTONES, undefined, 'GET')).status).toBe(405);
  });

  it('answers 401 without a valid session and 403 REQUEST_LIMIT_EXCEEDED past the daily allocation', async () => {
    const { emulator, accessToken } = await start({ apiLimit: 1 });
    expect(await collection(emulator, undefined, MILESTONES, { records: [milestone('e1')] })).toMatchObject({ status: 401, body: [{ errorCode: 'INVALID_SESSION_ID' }] });
    expect((await collection(emulator, accessToken, MILESTONES, { records: [milestone('e1')] })).status).toBe(200);
    const limited = await collection(emulator, accessToken, MILESTONES, { records: [milestone('e2')] });
    expect(limited).toMatchObject({ status: 403, body: [{ errorCode: 'REQUEST_LIMIT_EXCEEDED' }] });
    expect(limited.headers.get('sforce-limit-info')).toBe('api-usage=1/1');
  });

  it('honours failNext, outages and latency like the single-record endpoint', async () => {
    const { emulator, accessToken } = await start();
    emulator.failNext(1, { status: 503, headers: { 'Retry-After': '3' } });
    const failed = await collection(emulator, accessToken, MILESTONES, { records: [milestone('e1')] });
    expect(failed).toMatchObject({ status: 503, body: [{ errorCode: 'SERVER_UNAVAILABLE' }] });
    expect(failed.headers.get('retry-after')).toBe('3');

    emulator.setOutage(true);
    await expect(collection(emulator, accessToken, MILESTONES, { records: [milestone('e1')] })).rejects.toThrow(TypeError);
    emulator.setOutage(false);
    emulator.setLatency(1);
    expect((await collection(emulator, accessToken, MILESTONES, { records: [milestone('e1')] })).status).toBe(200);
    expect(emulator.stats().upserts).toBe(1);
  });

  it('failRecord makes one record fail with the given statusCode (e.g. UNABLE_TO_LOCK_ROW) while its neighbours are written; also over HTTP', async () => {
    const { emulator, accessToken } = await start();
    emulator.failRecord('Production_Order__c', 'WO-2', { statusCode: 'UNABLE_TO_LOCK_ROW', message: 'unable to obtain exclusive access to this record', fields: [] });
    const first = results(await collection(emulator, accessToken, ORDERS, { records: [order('WO-1'), order('WO-2')] }));
    expect(first.map((r) => r.success)).toEqual([true, false]);
    expect(first[1]!.errors[0]!.statusCode).toBe('UNABLE_TO_LOCK_ROW');
    expect(results(await collection(emulator, accessToken, ORDERS, { records: [order('WO-2')] }))[0]!.success).toBe(true);

    const control = await fetch(`${emulator.url}/__emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ failRecord: { object: 'Production_Order__c', externalId: 'WO-3', statusCode: 'UNABLE_TO_LOCK_ROW', message: 'locked' } }),
    });
    expect(control.status).toBe(204);
    expect(results(await collection(emulator, accessToken, ORDERS, { records: [order('WO-3')] }))[0]).toEqual({
      success: false,
      errors: [{ statusCode: 'UNABLE_TO_LOCK_ROW', message: 'locked', fields: [] }],
    });
  });
});
