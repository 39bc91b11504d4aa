import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { SalesforceEmulator, type SalesforceEmulatorOptions, type UpsertEvent } from './salesforce-emulator.js';

const running: SalesforceEmulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

async function start(options?: SalesforceEmulatorOptions): Promise<SalesforceEmulator> {
  const emulator = await SalesforceEmulator.start(options);
  running.push(emulator);
  return emulator;
}

function tokenRequest(emulator: SalesforceEmulator, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${emulator.url}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
}

async function token(emulator: SalesforceEmulator): Promise<string> {
  const res = await tokenRequest(emulator, { grant_type: 'client_credentials', client_id: 'plantlink-client', client_secret: 'plantlink-secret' });
  return ((await res.json()) as { access_token: string }).access_token;
}

async function upsert(
  emulator: SalesforceEmulator,
  accessToken: string | undefined,
  path: string,
  body: unknown,
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(`${emulator.url}/services/data/v60.0/sobjects/${path}`, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/json', ...(accessToken ? { Authorization: `Bearer ${accessToken}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const milestone = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  Work_Order__c: 'WO-1',
  Milestone__c: 'started',
  Occurred_At__c: '2024-05-01T08:00:00Z',
  Good_Quantity__c: 0,
  ...overrides,
});

describe('SalesforceEmulator: OAuth 2.0 client credentials', () => {
  it('issues a bearer token with instance_url and a verifiable signature for valid client credentials', async () => {
    const emulator = await start();
    const res = await tokenRequest(emulator, { grant_type: 'client_credentials', client_id: 'plantlink-client', client_secret: 'plantlink-secret' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, string>;
    expect(body).toMatchObject({ token_type: 'Bearer', instance_url: emulator.url, scope: 'api' });
    expect(body.access_token).toMatch(/^00D/);
    expect(body.issued_at).toMatch(/^\d+$/);
    expect(body.signature).toBe(createHmac('sha256', 'plantlink-secret').update(body.id! + body.issued_at!).digest('base64'));
    expect(emulator.stats().tokenRequests).toBe(1);
  });

  it('accepts client credentials in an HTTP Basic header', async () => {
    const emulator = await start();
    const basic = Buffer.from('plantlink-client:plantlink-secret').toString('base64');
    const res = await tokenRequest(emulator, { grant_type: 'client_credentials' }, { Authorization: `Basic ${basic}` });
    expect(res.status).toBe(200);
  });

  it('refuses a wrong secret, an unknown client and another grant type with OAuth error bodies', async () => {
    const emulator = await start();
    const wrongSecret = await tokenRequest(emulator, { grant_type: 'client_credentials', client_id: 'plantlink-client', client_secret: 'nope' });
    expect(wrongSecret.status).toBe(400);
    expect(await wrongSecret.json()).toEqual({ error: 'invalid_client', error_description: 'invalid client credentials' });
    const unknown = await tokenRequest(emulator, { grant_type: 'client_credentials', client_id: 'who', client_secret: 'x' });
    expect(await unknown.json()).toMatchObject({ error: 'invalid_client_id' });
    const password = await tokenRequest(emulator, { grant_type: 'password', client_id: 'plantlink-client', client_secret: 'plantlink-secret' });
    expect(await password.json()).toMatchObject({ error: 'unsupported_grant_type' });
  });

  it('answers 401 INVALID_SESSION_ID without a token, after expireTokens() and after the token lifetime', async () => {
    const emulator = await start();
    const expected = [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }];
    expect(await upsert(emulator, undefined, 'Production_Milestone__c/Plantlink_Event_Id__c/e1', milestone())).toMatchObject({ status: 401, body: expected });

    const accessToken = await token(emulator);
    expect((await upsert(emulator, accessToken, 'Production_Milestone__c/Plantlink_Event_Id__c/e1', milestone())).status).toBe(201);
    emulator.expireTokens();
    expect(await upsert(emulator, accessToken, 'Production_Milestone__c/Plantlink_Event_Id__c/e1', milestone())).toMatchObject({ status: 401, body: expected });

    const shortLived = await start({ tokenTtlMs: 0 });
    const expired = await token(shortLived);
    expect((await upsert(shortLived, expired, 'Production_Milestone__c/Plantlink_Event_Id__c/e1', milestone())).status).toBe(401);
  });
});

describe('SalesforceEmulator: upsert by external id', () => {
  it('creates (201, created:true), updates (200, created:false) and counts unchanged rewrites', async () => {
    const emulator = await start();
    const events: UpsertEvent[] = [];
    emulator.on('upsert', (e) => events.push(e));
    const accessToken = await token(emulator);
    const path = 'Production_Milestone__c/Plantlink_Event_Id__c/evt-1';

    const created = await upsert(emulator, accessToken, path, milestone());
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ success: true, errors: [], created: true });
    const id = (created.body as { id: string }).id;
    expect(id).toMatch(/^a00[0-9A-Za-z]{15}$/);
    expect(created.headers.get('sforce-limit-info')).toBe('api-usage=1/100000');

    const updated = await upsert(emulator, accessToken, path, milestone({ Milestone__c: 'completed', Good_Quantity__c: 5 }));
    expect(updated).toMatchObject({ status: 200, body: { id, success: true, errors: [], created: false } });
    const same = await upsert(emulator, accessToken, path, milestone({ Milestone__c: 'completed', Good_Quantity__c: 5, Occurred_At__c: '2024-05-01T08:00:00.000+0000' }));
    expect(same.status).toBe(200);

    const record = emulator.record('Production_Milestone__c', 'evt-1')!;
    expect(record).toMatchObject({ id, writes: 3, changes: 2, externalIdField: 'Plantlink_Event_Id__c' });
    expect(record.fields).toMatchObject({ Plantlink_Event_Id__c: 'evt-1', Milestone__c: 'completed', Good_Quantity__c: 5, Occurred_At__c: '2024-05-01T08:00:00.000+0000' });
    expect(emulator.stats()).toMatchObject({ upserts: 3, created: 1, updated: 1, unchanged: 1, rejected: 0 });
    expect(events.map((e) => [e.created, e.changed])).toEqual([
      [true, true],
      [false, true],
      [false, false],
    ]);
  });

  it('keeps fields a later upsert leaves out, and clears a field set to null', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    const path = 'Production_Order__c/Work_Order_Number__c/WO%2F7';
    await upsert(emulator, accessToken, path, { Status__c: 'started', Product__c: 'P-1', Plant__c: 'P1' });
    await upsert(emulator, accessToken, path, { Status__c: 'held', Product__c: null });
    expect(emulator.record('Production_Order__c', 'WO/7')!.fields).toEqual({ Work_Order_Number__c: 'WO/7', Status__c: 'held', Plant__c: 'P1' });
  });

  it('rejects bad bodies with Salesforce error arrays and writes nothing', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    const path = 'Production_Milestone__c/Plantlink_Event_Id__c/evt-2';
    const cases: [unknown, number, string, string[] | undefined][] = [
      [milestone({ Bogus__c: 1 }), 400, 'INVALID_FIELD', []],
      [milestone({ Good_Quantity__c: 'ten' }), 400, 'JSON_PARSER_ERROR', undefined],
      [milestone({ Occurred_At__c: 'yesterday' }), 400, 'JSON_PARSER_ERROR', undefined],
      [milestone({ Milestone__c: 'exploded' }), 400, 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', ['Milestone__c']],
      [milestone({ Work_Order__c: 'W'.repeat(81) }), 400, 'STRING_TOO_LONG', ['Work_Order__c']],
      [{ Work_Order__c: 'WO-1' }, 400, 'REQUIRED_FIELD_MISSING', ['Milestone__c', 'Occurred_At__c']],
      [milestone({ Plantlink_Event_Id__c: 'evt-2' }), 400, 'INVALID_FIELD', ['Plantlink_Event_Id__c']],
      [[milestone()], 400, 'JSON_PARSER_ERROR', undefined],
      ['{"Work_Order__c": ', 400, 'JSON_PARSER_ERROR', undefined],
    ];
    for (const [body, status, errorCode, fields] of cases) {
      const res = await upsert(emulator, accessToken, path, body);
      expect(res.status, errorCode).toBe(status);
      const [error] = res.body as { errorCode: string; message: string; fields?: string[] }[];
      expect(error).toMatchObject({ errorCode });
      expect(error!.message.length).toBeGreaterThan(0);
      if (fields) expect(error!.fields).toEqual(fields);
    }
    expect(emulator.records('Production_Milestone__c')).toEqual([]);
    expect(emulator.stats()).toMatchObject({ upserts: 0, rejected: cases.length });
  });

  it('answers 404 NOT_FOUND for an unknown object or a field that is not an external id', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    const notFound = [{ message: 'The requested resource does not exist', errorCode: 'NOT_FOUND' }];
    expect(await upsert(emulator, accessToken, 'Nope__c/Plantlink_Event_Id__c/e', {})).toMatchObject({ status: 404, body: notFound });
    expect(await upsert(emulator, accessToken, 'Production_Milestone__c/Work_Order__c/e', {})).toMatchObject({ status: 404, body: notFound });
  });

  it('fails a validation rule with FIELD_CUSTOM_VALIDATION_EXCEPTION on the merged record', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    emulator.addValidationRule('Production_Order__c', {
      field: 'Status__c',
      test: (value, record) => !(value === 'completed' && record.Sales_Order__c === undefined),
      message: 'A completed work order needs a sales order',
    });
    const path = 'Production_Order__c/Work_Order_Number__c/WO-9';
    expect((await upsert(emulator, accessToken, path, { Status__c: 'started' })).status).toBe(201);
    expect(await upsert(emulator, accessToken, path, { Status__c: 'completed' })).toMatchObject({
      status: 400,
      body: [{ errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: 'A completed work order needs a sales order', fields: ['Status__c'] }],
    });
    expect(emulator.record('Production_Order__c', 'WO-9')!.fields.Status__c).toBe('started');
    emulator.clearValidationRules();
    expect((await upsert(emulator, accessToken, path, { Status__c: 'completed' })).status).toBe(200);
  });

  it('answers 300 with the matching record URLs when the external id matches several records', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    const path = 'Production_Order__c/Work_Order_Number__c/WO-D';
    await upsert(emulator, accessToken, path, { Status__c: 'started' });
    emulator.seedDuplicate('Production_Order__c', 'WO-D');
    const res = await upsert(emulator, accessToken, path, { Status__c: 'held' });
    expect(res.status).toBe(300);
    expect(res.body).toHaveLength(2);
    expect(emulator.records('Production_Order__c').map((r) => r.fields.Status__c)).toEqual(['started', 'started']);
  });

  it('answers 413 for a body over the limit', async () => {
    const emulator = await start({ maxBodyBytes: 100 });
    const accessToken = await token(emulator);
    const res = await upsert(emulator, accessToken, 'Production_Milestone__c/Plantlink_Event_Id__c/e', milestone({ Equipment__c: 'x'.repeat(200) }));
    expect(res.status).toBe(413);
  });

  it('answers 403 REQUEST_LIMIT_EXCEEDED once the daily API allocation is used up', async () => {
    const emulator = await start({ apiLimit: 2 });
    const accessToken = await token(emulator);
    for (const id of ['a', 'b']) expect((await upsert(emulator, accessToken, `Production_Milestone__c/Plantlink_Event_Id__c/${id}`, milestone())).status).toBe(201);
    const res = await upsert(emulator, accessToken, 'Production_Milestone__c/Plantlink_Event_Id__c/c', milestone());
    expect(res).toMatchObject({ status: 403, body: [{ errorCode: 'REQUEST_LIMIT_EXCEEDED' }] });
    expect(res.headers.get('sforce-limit-info')).toBe('api-usage=2/2');
  });
});

describe('SalesforceEmulator: fault injection', () => {
  it('failNext answers the next n API requests with the given status, headers and body, then recovers', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    emulator.failNext(2, { status: 429, headers: { 'Retry-After': '7' } });
    const path = 'Production_Milestone__c/Plantlink_Event_Id__c/e';
    for (let i = 0; i < 2; i++) {
      const res = await upsert(emulator, accessToken, path, milestone());
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('7');
    }
    expect((await upsert(emulator, accessToken, path, milestone())).status).toBe(201);
    expect(emulator.stats().status).toMatchObject({ 200: 1, 201: 1, 429: 2 });
  });

  it('an outage closes connections without an HTTP answer until it ends; the control plane keeps working', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    emulator.setOutage(true);
    await expect(upsert(emulator, accessToken, 'Production_Milestone__c/Plantlink_Event_Id__c/e', milestone())).rejects.toThrow(TypeError);
    await expect(token(emulator)).rejects.toThrow(TypeError);
    const stats = (await (await fetch(`${emulator.url}/__emulator/stats`)).json()) as { requests: number };
    expect(stats.requests).toBe(3);
    await fetch(`${emulator.url}/__emulator/faults`, { method: 'POST', body: JSON.stringify({ outage: false }) });
    expect((await upsert(emulator, accessToken, 'Production_Milestone__c/Plantlink_Event_Id__c/e', milestone())).status).toBe(201);
  });

  it('is driven over HTTP: faults, records and stats', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    const faults = await fetch(`${emulator.url}/__emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ failNext: { n: 1, status: 503 }, latencyMs: 1 }),
    });
    expect(faults.status).toBe(204);
    const path = 'Production_Milestone__c/Plantlink_Event_Id__c/e';
    expect(await upsert(emulator, accessToken, path, milestone())).toMatchObject({ status: 503, body: [{ errorCode: 'SERVER_UNAVAILABLE' }] });
    expect((await upsert(emulator, accessToken, path, milestone())).status).toBe(201);
    const records = (await (await fetch(`${emulator.url}/__emulator/records?object=Production_Milestone__c`)).json()) as { externalId: string }[];
    expect(records.map((r) => r.externalId)).toEqual(['e']);
    await fetch(`${emulator.url}/__emulator/faults`, { method: 'POST', body: JSON.stringify({ expireTokens: true }) });
    expect((await upsert(emulator, accessToken, path, milestone())).status).toBe(401);
  });

  it('restarts on the same port', async () => {
    const first = await SalesforceEmulator.start();
    const port = first.port;
    await first.stop();
    const second = await start({ port });
    expect(second.url).toBe(`http://127.0.0.1:${port}`);
    expect((await tokenRequest(second, { grant_type: 'client_credentials', client_id: 'plantlink-client', client_secret: 'plantlink-secret' })).status).toBe(200);
  });
});
