import { constants, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { NetSuiteEmulator, type NetSuiteEmulatorOptions, type UpsertEvent } from './netsuite-emulator.js';

const WO = 'customrecord_plantlink_workorder';
const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherEc = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

const running: NetSuiteEmulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

async function start(options: Partial<NetSuiteEmulatorOptions> = {}): Promise<NetSuiteEmulator> {
  const emulator = await NetSuiteEmulator.start({
    clients: [
      { clientId: 'client-ec', certificateId: 'cert-ec', publicKey: ec.publicKey },
      { clientId: 'client-rsa', certificateId: 'cert-rsa', publicKey: rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string },
    ],
    ...options,
  });
  running.push(emulator);
  return emulator;
}

/** A client assertion made here, independently of the sink's signer. */
function assertion(
  emulator: NetSuiteEmulator,
  overrides: { alg?: 'ES256' | 'PS256'; key?: KeyObject; kid?: string; claims?: Record<string, unknown>; nowS?: number } = {},
): string {
  const alg = overrides.alg ?? 'ES256';
  const nowS = overrides.nowS ?? Math.floor(Date.now() / 1000);
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const header = { typ: 'JWT', alg, kid: overrides.kid ?? (alg === 'ES256' ? 'cert-ec' : 'cert-rsa') };
  const payload = { iss: alg === 'ES256' ? 'client-ec' : 'client-rsa', scope: 'rest_webservices', aud: emulator.tokenUrl, iat: nowS, exp: nowS + 300, ...overrides.claims };
  const input = `${enc(header)}.${enc(payload)}`;
  const key = overrides.key ?? (alg === 'ES256' ? ec.privateKey : rsa.privateKey);
  const signature =
    alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
      : sign('sha256', Buffer.from(input), { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  return `${input}.${signature.toString('base64url')}`;
}

function tokenRequest(emulator: NetSuiteEmulator, form: Record<string, string>): Promise<Response> {
  return fetch(emulator.tokenUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
}

const grant = (clientAssertion: string): Record<string, string> => ({
  grant_type: 'client_credentials',
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  client_assertion: clientAssertion,
});

async function token(emulator: NetSuiteEmulator): Promise<string> {
  const res = await tokenRequest(emulator, grant(assertion(emulator)));
  return ((await res.json()) as { access_token: string }).access_token;
}

async function put(
  emulator: NetSuiteEmulator,
  accessToken: string | undefined,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(`${emulator.url}/services/rest/record/v1/${path}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', ...(accessToken ? { Authorization: `Bearer ${accessToken}` } : {}), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** Waits (without a deadline of its own: the test timeout bounds it) until `done()` holds. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 5));
}

const codes = (body: unknown): string[] => ((body as { 'o:errorDetails': { 'o:errorCode': string }[] })['o:errorDetails'] ?? []).map((d) => d['o:errorCode']);

describe('NetSuiteEmulator: OAuth 2.0 client credentials (M2M)', () => {
  it('issues a 60-minute bearer token for an ES256 or PS256 assertion signed with the mapped certificate', async () => {
    const emulator = await start();
    for (const alg of ['ES256', 'PS256'] as const) {
      const res = await tokenRequest(emulator, grant(assertion(emulator, { alg })));
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, string>;
      expect(body).toMatchObject({ expires_in: '3600', token_type: 'bearer' });
      expect(body.access_token!.split('.')).toHaveLength(3);
    }
    expect(emulator.stats()).toMatchObject({ tokenRequests: 2, tokensIssued: 2 });
    expect(emulator.loginAuditTrail().map((e) => [e.status, e.clientId])).toEqual([
      ['Success', 'client-ec'],
      ['Success', 'client-rsa'],
    ]);
  });

  it('refuses an assertion signed with another key: 401 invalid_client, InvalidSignature in the login audit trail', async () => {
    const emulator = await start();
    const res = await tokenRequest(emulator, grant(assertion(emulator, { key: otherEc.privateKey })));
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'invalid_client' });
    expect(emulator.loginAuditTrail()).toMatchObject([{ status: 'Failure', detail: 'InvalidSignature', certificateId: 'cert-ec' }]);
    expect(emulator.stats().tokensIssued).toBe(0);
  });

  it('refuses an unknown kid, a wrong iss or aud, a disallowed scope and expired or over-long assertions', async () => {
    const emulator = await start();
    const nowS = Math.floor(Date.now() / 1000);
    const cases: [Parameters<typeof assertion>[1], string][] = [
      [{ kid: 'cert-unknown' }, 'InvalidCertificateId'],
      [{ claims: { iss: 'client-rsa' } }, 'InvalidIntegration'],
      [{ claims: { aud: 'https://1234567.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token' } }, 'InvalidAudience'],
      [{ claims: { scope: ['rest_webservices', 'suite_analytics'] } }, 'ScopeMismatched'],
      [{ claims: { iat: nowS - 600, exp: nowS - 1 } }, 'InvalidTokenTimestamp'],
      [{ claims: { iat: nowS, exp: nowS + 3601 } }, 'InvalidTokenTimestamp'],
      [{ alg: 'PS256', kid: 'cert-ec' }, 'InvalidSignature'], // an RSA-PSS signature checked against the EC certificate
    ];
    for (const [overrides] of cases) {
      const res = await tokenRequest(emulator, grant(assertion(emulator, overrides)));
      expect(res.status).toBe(401);
    }
    expect(emulator.loginAuditTrail().map((e) => e.detail)).toEqual(cases.map(([, detail]) => detail));
  });

  it('answers malformed requests with OAuth errors: wrong grant type, missing assertion type', async () => {
    const emulator = await start();
    const wrongGrant = await tokenRequest(emulator, { ...grant(assertion(emulator)), grant_type: 'authorization_code' });
    expect(wrongGrant.status).toBe(400);
    expect(await wrongGrant.json()).toEqual({ error: 'unsupported_grant_type' });
    const { client_assertion_type: _dropped, ...noType } = grant(assertion(emulator));
    const missing = await tokenRequest(emulator, noType);
    expect(await missing.json()).toEqual({ error: 'invalid_request' });
  });

  it('accepts a scope claim as a comma-separated string or an array', async () => {
    const emulator = await start({
      clients: [{ clientId: 'client-ec', certificateId: 'cert-ec', publicKey: ec.publicKey, scopes: ['rest_webservices', 'restlets'] }],
    });
    for (const scope of ['rest_webservices,restlets', ['restlets', 'rest_webservices']]) {
      expect((await tokenRequest(emulator, grant(assertion(emulator, { claims: { scope } })))).status).toBe(200);
    }
  });

  it('answers 401 INVALID_LOGIN with NetSuite\'s error body once the access token is 60 minutes old', async () => {
    let now = Date.parse('2024-05-01T08:00:00Z');
    const emulator = await start({ now: () => now });
    const accessToken = await (async () => {
      const res = await tokenRequest(emulator, grant(assertion(emulator, { nowS: Math.floor(now / 1000) })));
      return ((await res.json()) as { access_token: string }).access_token;
    })();
    expect((await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1' })).status).toBe(204);

    now += 60 * 60 * 1000;
    const expired = await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1' });
    expect(expired.status).toBe(401);
    expect(expired.body).toEqual({
      type: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html',
      title: 'Unauthorized',
      status: 401,
      'o:errorDetails': [
        {
          detail: 'Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.',
          'o:errorCode': 'INVALID_LOGIN',
        },
      ],
    });
    expect(emulator.loginAuditTrail().at(-1)).toMatchObject({ status: 'Failure', detail: 'AccessTokenExpired', clientId: 'client-ec' });
    expect((await put(emulator, undefined, `${WO}/eid:WO-1`, { name: 'WO-1' })).status).toBe(401);
  });

  it('expireTokens() revokes every token issued so far', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    emulator.expireTokens();
    expect((await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1' })).status).toBe(401);
  });
});

describe('NetSuiteEmulator: REST record service upsert by external id', () => {
  it('creates on the first PUT (204 + Location), updates on the next; identical values change nothing', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    const events: UpsertEvent[] = [];
    emulator.on('upsert', (e) => events.push(e));
    const body = {
      name: 'WO-1',
      custrecord_plk_wo_status: { id: '2' },
      custrecord_plk_wo_good_qty: 40,
      custrecord_plk_wo_last_event_at: '2024-05-01T10:00:03.250+02:00',
    };

    const created = await put(emulator, accessToken, `${WO}/eid:WO-1`, body);
    expect(created.status).toBe(204);
    expect(created.body).toBeUndefined();
    const location = created.headers.get('location')!;
    expect(location).toMatch(new RegExp(`^${emulator.url}/services/rest/record/v1/${WO}/\\d+$`));

    const again = await put(emulator, accessToken, `${WO}/eid:WO-1`, { ...body, custrecord_plk_wo_last_event_at: '2024-05-01T08:00:03Z' });
    expect(again.status).toBe(204);
    expect(again.headers.get('location')).toBe(location);
    expect(emulator.record(WO, 'WO-1')).toMatchObject({
      id: location.split('/').at(-1),
      writes: 2,
      changes: 1,
      fields: { name: 'WO-1', custrecord_plk_wo_status: { id: '2', refName: 'Started' }, custrecord_plk_wo_good_qty: 40, custrecord_plk_wo_last_event_at: '2024-05-01T08:00:03Z' },
    });

    await put(emulator, accessToken, `${WO}/eid:WO-1`, { custrecord_plk_wo_status: { id: 4 } });
    expect(emulator.record(WO, 'WO-1')).toMatchObject({ writes: 3, changes: 2, fields: { name: 'WO-1', custrecord_plk_wo_good_qty: 40 } });
    expect(events.map((e) => [e.created, e.changed])).toEqual([
      [true, true],
      [false, false],
      [false, true],
    ]);
    expect(emulator.stats()).toMatchObject({ upserts: 3, created: 1, updated: 1, unchanged: 1, rejected: 0 });

    const got = await fetch(`${emulator.url}/services/rest/record/v1/${WO}/eid:WO-1`, { headers: { Authorization: `Bearer ${accessToken}` } });
    expect(await got.json()).toMatchObject({ id: location.split('/').at(-1), externalId: 'WO-1', custrecord_plk_wo_status: { id: '4', refName: 'Completed' } });
  });

  it('rejects bad field values with one o:errorDetails entry per field and writes nothing', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    const res = await put(emulator, accessToken, `${WO}/eid:WO-1`, {
      name: 'x'.repeat(301),
      custrecord_plk_wo_status: { id: '99' },
      custrecord_plk_wo_good_qty: '40',
      custrecord_plk_wo_last_event_at: 'yesterday',
      custrecord_unknown: 'a',
      externalId: 'WO-2',
    });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ type: 'https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1', title: 'Bad Request', status: 400 });
    const details = (res.body as { 'o:errorDetails': { 'o:errorCode': string; 'o:errorPath': string; detail: string }[] })['o:errorDetails'];
    expect(details.map((d) => d['o:errorPath'])).toEqual([
      'name',
      'custrecord_plk_wo_status',
      'custrecord_plk_wo_good_qty',
      'custrecord_plk_wo_last_event_at',
      'custrecord_unknown',
      'externalId',
    ]);
    expect(details.every((d) => d['o:errorCode'] === 'INVALID_CONTENT')).toBe(true);
    expect(details[1]!.detail).toBe('Error while accessing resource: You have entered an Invalid Field Value 99 for the following field: custrecord_plk_wo_status');
    expect(emulator.records(WO)).toEqual([]);
    expect(emulator.stats()).toMatchObject({ rejected: 1, upserts: 0 });
  });

  it('requires the name on create (USER_ERROR) and applies validation rules on the merged record', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    const missing = await put(emulator, accessToken, `${WO}/eid:WO-1`, { custrecord_plk_wo_good_qty: 1 });
    expect(missing.status).toBe(400);
    expect((missing.body as { 'o:errorDetails': { detail: string }[] })['o:errorDetails'][0]!.detail).toContain('Please enter value(s) for: Name');
    expect(codes(missing.body)).toEqual(['USER_ERROR']);

    emulator.addValidationRule(WO, { field: 'custrecord_plk_wo_sales_order', test: (v) => v !== 'SO-CLOSED', message: 'Sales order SO-CLOSED is closed.' });
    const ruled = await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1', custrecord_plk_wo_sales_order: 'SO-CLOSED' });
    expect(codes(ruled.body)).toEqual(['USER_ERROR']);
    emulator.clearValidationRules();
    expect((await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1', custrecord_plk_wo_sales_order: 'SO-CLOSED' })).status).toBe(204);
  });

  it('ignores unknown fields only when X-NetSuite-PropertyNameValidation says Ignore or Warning', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    const res = await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1', custrecord_unknown: 'a' }, { 'X-NetSuite-PropertyNameValidation': 'Ignore' });
    expect(res.status).toBe(204);
    expect(emulator.record(WO, 'WO-1')!.fields).toEqual({ name: 'WO-1' });
  });

  it('rejects external ids with characters NetSuite does not allow, unknown record types and PUT without eid:', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    expect(codes((await put(emulator, accessToken, `${WO}/eid:${encodeURIComponent('WO 1/2')}`, { name: 'x' })).body)).toEqual(['INVALID_ID']);
    const unknown = await put(emulator, accessToken, 'customrecord_missing/eid:WO-1', { name: 'x' });
    expect(unknown.status).toBe(404);
    expect(codes(unknown.body)).toEqual(['INVALID_RCRD_TYPE']);
    expect((await put(emulator, accessToken, `${WO}/17`, { name: 'x' })).status).toBe(400);
  });
});

describe('NetSuiteEmulator: governance and faults', () => {
  it('answers 429 SSS_REQUEST_LIMIT_EXCEEDED when the account\'s concurrency is in use by other integrations', async () => {
    const emulator = await start({ concurrencyLimit: 2 });
    const accessToken = await token(emulator);
    const release = emulator.occupy(2);
    const res = await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1' });
    expect(res.status).toBe(429);
    expect(res.body).toMatchObject({ title: 'Too Many Requests', status: 429 });
    expect(codes(res.body)).toEqual(['SSS_REQUEST_LIMIT_EXCEEDED']);
    expect(emulator.records(WO)).toEqual([]);
    release();
    expect((await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1' })).status).toBe(204);
    expect(emulator.stats()).toMatchObject({ throttled: 1, created: 1 });
  });

  it('counts requests in flight: above the limit they are refused while the others complete', async () => {
    const emulator = await start({ concurrencyLimit: 2 });
    const accessToken = await token(emulator);
    const release = emulator.hold();
    const pending = ['A', 'B', 'C', 'D'].map((k) => put(emulator, accessToken, `${WO}/eid:WO-${k}`, { name: `WO-${k}` }));
    await until(() => emulator.stats().inFlight === 2 && emulator.stats().throttled === 2);
    release();
    const answers = await Promise.all(pending);
    expect(answers.map((a) => a.status).sort()).toEqual([204, 204, 429, 429]);
    expect(emulator.stats()).toMatchObject({ inFlight: 0, maxInFlight: 2, throttled: 2, created: 2 });
  });

  it('reports governance limits in the documented shape', async () => {
    const emulator = await start({ concurrencyLimit: 5, integrationConcurrencyLimit: 2 });
    const res = await fetch(`${emulator.url}/services/rest/system/v1/governanceLimits`, { headers: { Authorization: `Bearer ${await token(emulator)}` } });
    expect(await res.json()).toEqual({
      accountConcurrencyLimit: 5,
      accountUnallocatedConcurrencyLimit: 3,
      integrationConcurrencyLimit: 2,
      integrationLimitType: 'integrationSpecific',
    });
  });

  it('failNext answers the next requests with the given status and a NetSuite error body', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    emulator.failNext(1, { status: 503, headers: { 'Retry-After': '7' } });
    const res = await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1' });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(codes(res.body)).toEqual(['SERVICE_UNAVAILABLE']);
    expect((await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1' })).status).toBe(204);
  });

  it('an outage closes connections without an answer; control routes keep working and drive faults from outside', async () => {
    const emulator = await start();
    const accessToken = await token(emulator);
    const control = (body: unknown): Promise<Response> =>
      fetch(`${emulator.url}/__emulator/faults`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    expect((await control({ outage: true })).status).toBe(204);
    await expect(put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1' })).rejects.toThrow();
    expect((await control({ outage: false })).status).toBe(204);
    expect((await put(emulator, accessToken, `${WO}/eid:WO-1`, { name: 'WO-1' })).status).toBe(204);
    const records = (await (await fetch(`${emulator.url}/__emulator/records?type=${WO}`)).json()) as { externalId: string }[];
    expect(records.map((r) => r.externalId)).toEqual(['WO-1']);
    expect(((await (await fetch(`${emulator.url}/__emulator/stats`)).json()) as { created: number }).created).toBe(1);
  });
});
