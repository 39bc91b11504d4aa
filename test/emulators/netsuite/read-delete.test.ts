// The emulator's record retrieval with ?fields=, record deletion and tamper routes, over real HTTP.
import { generateKeyPairSync, sign } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { NetSuiteEmulator } from './netsuite-emulator.js';

const WO = 'customrecord_plantlink_workorder';
const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

const running: NetSuiteEmulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

async function start(): Promise<{ emulator: NetSuiteEmulator; api: (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }> }> {
  const emulator = await NetSuiteEmulator.start({ clients: [{ clientId: 'client-ec', certificateId: 'cert-ec', publicKey: ec.publicKey }] });
  running.push(emulator);
  const nowS = Math.floor(Date.now() / 1000);
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${enc({ typ: 'JWT', alg: 'ES256', kid: 'cert-ec' })}.${enc({ iss: 'client-ec', scope: 'rest_webservices', aud: emulator.tokenUrl, iat: nowS, exp: nowS + 300 })}`;
  const assertion = `${input}.${sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  const tokenRes = await fetch(emulator.tokenUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }).toString(),
  });
  const { access_token: token } = (await tokenRes.json()) as { access_token: string };
  // `any`: answers are checked field by field in each test.
  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${emulator.url}/services/rest/record/v1/${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  for (const wo of ['WO-1', 'WO-2']) {
    expect((await api('PUT', `${WO}/eid:${wo}`, { name: wo, custrecord_plk_wo_status: { id: '2' }, custrecord_plk_wo_product: 'PUMP-7' })).status).toBe(204);
  }
  return { emulator, api };
}

describe('NetSuite emulator: read and delete', () => {
  it('returns only the fields asked for, with links and id; 404 NONEXISTENT_ID for an unknown external id', async () => {
    const { api } = await start();
    const answer = await api('GET', `${WO}/eid:WO-1?fields=name,custrecord_plk_wo_status,custrecord_plk_wo_good_qty`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      links: [{ rel: 'self', href: expect.stringMatching(/\/record\/v1\/customrecord_plantlink_workorder\/\d+$/) }],
      id: expect.any(String),
      name: 'WO-1',
      custrecord_plk_wo_status: { id: '2', refName: 'Started' },
    });
    const missing = await api('GET', `${WO}/eid:WO-9?fields=name`);
    expect([missing.status, missing.body['o:errorDetails'][0]['o:errorCode']]).toEqual([404, 'NONEXISTENT_ID']);
  });

  it('deletes by internal id with 204; a second delete is 404 NONEXISTENT_ID', async () => {
    const { emulator, api } = await start();
    const id = emulator.record(WO, 'WO-1')!.id;
    const deleted = await api('DELETE', `${WO}/${id}`);
    expect([deleted.status, deleted.body]).toEqual([204, undefined]);
    expect(emulator.record(WO, 'WO-1')).toBeUndefined();
    expect((await api('DELETE', `${WO}/${id}`)).status).toBe(404);
  });

  it('changes and deletes records for another process over /__emulator/tamper', async () => {
    const { emulator } = await start();
    const tamper = (body: unknown): Promise<Response> => fetch(`${emulator.url}/__emulator/tamper`, { method: 'POST', body: JSON.stringify(body) });
    const writes = emulator.record(WO, 'WO-2')!.writes;
    expect((await tamper({ setFields: { type: WO, externalId: 'WO-2', fields: { custrecord_plk_wo_status: { id: '5', refName: 'Held' }, custrecord_plk_wo_product: null } } })).status).toBe(204);
    expect(emulator.record(WO, 'WO-2')!.fields).toMatchObject({ custrecord_plk_wo_status: { id: '5', refName: 'Held' } });
    expect(emulator.record(WO, 'WO-2')!.fields).not.toHaveProperty('custrecord_plk_wo_product');
    expect(emulator.record(WO, 'WO-2')!.writes).toBe(writes);
    expect((await tamper({ deleteRecord: { type: WO, externalId: 'WO-1' } })).status).toBe(204);
    expect((await tamper({ deleteRecord: { type: WO, externalId: 'WO-1' } })).status).toBe(404);
  });
});
