// The emulator's Query resource (SOQL subset), sObject Collections delete and tamper routes, over real HTTP.
import { afterEach, describe, expect, it } from 'vitest';
import { parseSoql } from './soql.js';
import { SalesforceEmulator, type SalesforceEmulatorOptions } from './salesforce-emulator.js';

const running: SalesforceEmulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

async function start(options?: SalesforceEmulatorOptions): Promise<{ emulator: SalesforceEmulator; api: (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }> }> {
  const emulator = await SalesforceEmulator.start(options);
  running.push(emulator);
  const res = await fetch(`${emulator.url}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'plantlink-client', client_secret: 'plantlink-secret' }).toString(),
  });
  const { access_token: token } = (await res.json()) as { access_token: string };
  // `any`: answers are checked field by field in each test.
  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const answer = await fetch(`${emulator.url}${path.startsWith('/') ? path : `/services/data/v60.0/${path}`}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await answer.text();
    return { status: answer.status, body: text ? JSON.parse(text) : undefined };
  };
  return { emulator, api };
}

const q = (soql: string): string => `query?q=${encodeURIComponent(soql)}`;

async function seedOrders(api: Awaited<ReturnType<typeof start>>['api'], ...numbers: string[]): Promise<void> {
  const answer = await api('PATCH', 'composite/sobjects/Production_Order__c/Work_Order_Number__c', {
    allOrNone: false,
    records: numbers.map((n) => ({ attributes: { type: 'Production_Order__c' }, Work_Order_Number__c: n, Status__c: 'started' })),
  });
  expect(answer.status).toBe(200);
}

describe('parseSoql', () => {
  it('parses the supported subset with SOQL escapes and refuses anything else', () => {
    expect(parseSoql("select Id, A__c from Obj__c where A__c in ('x\\'y', 'b\\\\c', '\\u00e9')")).toEqual({
      ok: true,
      query: { fields: ['Id', 'A__c'], object: 'Obj__c', where: { field: 'A__c', values: ["x'y", 'b\\c', 'é'] } },
    });
    expect(parseSoql("SELECT Id FROM Obj__c WHERE A__c = 'v'")).toMatchObject({ ok: true, query: { where: { field: 'A__c', values: ['v'] } } });
    for (const bad of ['SELECT * FROM Obj__c', 'SELECT Id FROM', "SELECT Id FROM Obj__c WHERE A__c LIKE 'x'", "SELECT Id FROM Obj__c WHERE A__c = 'x' LIMIT 5", "SELECT Id FROM Obj__c WHERE A__c = 'a\\qb'", "SELECT Id FROM Obj__c WHERE A__c IN ('x'"]) {
      expect(parseSoql(bad).ok).toBe(false);
    }
  });
});

describe('Salesforce emulator: Query resource', () => {
  it('answers { totalSize, done, records } with attributes and null for unset fields', async () => {
    const { api } = await start();
    await seedOrders(api, 'WO-1', 'WO-2', "WO-'3");
    const answer = await api('GET', q("SELECT Id, Work_Order_Number__c, Status__c, Product__c FROM Production_Order__c WHERE Work_Order_Number__c IN ('WO-1', 'WO-\\'3', 'WO-9')"));
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ totalSize: 2, done: true });
    expect(answer.body.records).toEqual([
      { attributes: { type: 'Production_Order__c', url: expect.stringMatching(/^\/services\/data\/v60\.0\/sobjects\/Production_Order__c\/a01/) }, Id: expect.any(String), Work_Order_Number__c: 'WO-1', Status__c: 'started', Product__c: null },
      expect.objectContaining({ Work_Order_Number__c: "WO-'3" }),
    ]);
  });

  it('pages with nextRecordsUrl and answers a used locator INVALID_QUERY_LOCATOR', async () => {
    const { api } = await start({ queryPageSize: 2 });
    await seedOrders(api, 'WO-1', 'WO-2', 'WO-3');
    const first = await api('GET', q('SELECT Id FROM Production_Order__c'));
    expect(first.body).toMatchObject({ totalSize: 3, done: false, nextRecordsUrl: expect.stringMatching(/^\/services\/data\/v60\.0\/query\/01g[A-Z0-9]+-2$/) });
    expect(first.body.records).toHaveLength(2);
    const second = await api('GET', first.body.nextRecordsUrl);
    expect(second.body).toMatchObject({ totalSize: 3, done: true });
    expect(second.body.records).toHaveLength(1);
    expect(second.body).not.toHaveProperty('nextRecordsUrl');
    expect((await api('GET', first.body.nextRecordsUrl)).body).toEqual([{ message: 'invalid query locator', errorCode: 'INVALID_QUERY_LOCATOR' }]);
  });

  it('refuses unparsable queries, unknown objects and unknown fields with 400 as Salesforce does', async () => {
    const { api } = await start();
    const malformed = await api('GET', q('SELECT FROM Production_Order__c'));
    expect(malformed.status).toBe(400);
    expect(malformed.body[0].errorCode).toBe('MALFORMED_QUERY');
    const type = await api('GET', q('SELECT Id FROM Nope__c'));
    expect([type.status, type.body[0].errorCode]).toEqual([400, 'INVALID_TYPE']);
    const field = await api('GET', q('SELECT Id, Nope__c FROM Production_Order__c'));
    expect([field.status, field.body[0].errorCode]).toEqual([400, 'INVALID_FIELD']);
    expect(field.body[0].message).toContain("No such column 'Nope__c' on entity 'Production_Order__c'");
  });
});

describe('Salesforce emulator: sObject Collections delete', () => {
  it('deletes up to 200 records by id with one result per id', async () => {
    const { emulator, api } = await start();
    await seedOrders(api, 'WO-1', 'WO-2');
    const id1 = emulator.record('Production_Order__c', 'WO-1')!.id;
    const answer = await api('DELETE', `composite/sobjects?ids=${id1},a015P000000000ZZZZ&allOrNone=false`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual([
      { id: id1, success: true, errors: [] },
      { id: 'a015P000000000ZZZZ', success: false, errors: [{ statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] }] },
    ]);
    expect(emulator.record('Production_Order__c', 'WO-1')).toBeUndefined();
    expect((await api('DELETE', `composite/sobjects?ids=${id1}`)).body[0].errors[0].statusCode).toBe('ENTITY_IS_DELETED');
    const tooMany = await api('DELETE', `composite/sobjects?ids=${Array.from({ length: 201 }, (_, i) => `a01${i}`).join(',')}`);
    expect([tooMany.status, tooMany.body[0].errorCode]).toEqual([400, 'EXCEEDED_ID_LIMIT']);
  });

  it('rolls back every delete when allOrNone is true and one fails', async () => {
    const { emulator, api } = await start();
    await seedOrders(api, 'WO-1');
    const id1 = emulator.record('Production_Order__c', 'WO-1')!.id;
    const answer = await api('DELETE', `composite/sobjects?ids=${id1},a015P000000000ZZZZ&allOrNone=true`);
    expect(answer.body[0].errors[0].statusCode).toBe('ALL_OR_NONE_OPERATION_ROLLED_BACK');
    expect(emulator.record('Production_Order__c', 'WO-1')).toBeDefined();
  });
});

describe('Salesforce emulator: tamper control route', () => {
  it('duplicates, changes and deletes records for another process', async () => {
    const { emulator, api } = await start();
    await seedOrders(api, 'WO-1', 'WO-2');
    const tamper = (body: unknown): Promise<Response> => fetch(`${emulator.url}/__emulator/tamper`, { method: 'POST', body: JSON.stringify(body) });
    const before = emulator.stats();
    expect((await tamper({ duplicate: { object: 'Production_Order__c', externalId: 'WO-1' }, setFields: { object: 'Production_Order__c', externalId: 'WO-2', fields: { Status__c: 'held' } } })).status).toBe(204);
    const rows = await api('GET', q("SELECT Id, Status__c FROM Production_Order__c WHERE Work_Order_Number__c IN ('WO-1','WO-2')"));
    expect(rows.body.totalSize).toBe(3);
    expect(rows.body.records.map((r: { Status__c: string }) => r.Status__c)).toEqual(['started', 'held', 'started']);
    expect((await tamper({ deleteRecord: { object: 'Production_Order__c', externalId: 'WO-1' } })).status).toBe(204);
    expect(emulator.records('Production_Order__c').map((r) => r.externalId)).toEqual(['WO-2']);
    expect((await tamper({ deleteRecord: { object: 'Production_Order__c', externalId: 'WO-1' } })).status).toBe(404);
    expect(emulator.stats().upserts).toBe(before.upserts);
  });
});
