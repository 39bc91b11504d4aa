import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/temp.js';
import { SalesforceEmulator, type SalesforceEmulatorOptions } from './salesforce-emulator.js';

const app = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const CLIENT = 'plantlink-jwt-app';
const USER = 'integration@plantlink.example';
const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

const running: SalesforceEmulator[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function start(options: SalesforceEmulatorOptions = {}): Promise<SalesforceEmulator> {
  const emulator = await SalesforceEmulator.start({ jwtClients: [{ clientId: CLIENT, certificate: app.publicKey, users: [USER] }], ...options });
  running.push(emulator);
  return emulator;
}

/** An assertion made here with node:crypto, independently of the sink's signer. */
function assertion(
  emulator: SalesforceEmulator,
  overrides: { header?: Record<string, unknown>; claims?: Record<string, unknown>; key?: KeyObject } = {},
): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims = { iss: CLIENT, sub: USER, aud: emulator.url, exp: Math.floor(Date.now() / 1000) + 120, ...overrides.claims };
  const input = `${encode(overrides.header ?? { alg: 'RS256' })}.${encode(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), overrides.key ?? app.privateKey).toString('base64url')}`;
}

async function tokenRequest(emulator: SalesforceEmulator, jwt: string | undefined): Promise<{ status: number; body: Record<string, unknown> }> {
  const form: Record<string, string> = { grant_type: GRANT_TYPE, ...(jwt === undefined ? {} : { assertion: jwt }) };
  const res = await fetch(`${emulator.url}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('SalesforceEmulator: OAuth 2.0 JWT bearer flow', () => {
  it('issues a bearer token without refresh token, expiry or signature for an RS256 assertion by the app certificate; the token works', async () => {
    const emulator = await start();
    const { status, body } = await tokenRequest(emulator, assertion(emulator));
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(['access_token', 'id', 'instance_url', 'scope', 'token_type']);
    expect(body).toMatchObject({ token_type: 'Bearer', instance_url: emulator.url });

    const res = await fetch(`${emulator.url}/services/data/v60.0/sobjects/Production_Order__c/Work_Order_Number__c/WO-1`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${String(body.access_token)}` },
      body: JSON.stringify({ Status__c: 'released' }),
    });
    expect(res.status).toBe(201);
  });

  it('verifies against an uploaded X.509 certificate (PEM)', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const keyFile = join(dir, 'app.key');
    const certFile = join(dir, 'app.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=plantlink', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
    const emulator = await start({ jwtClients: [{ clientId: CLIENT, certificate: readFileSync(certFile, 'utf8'), users: [USER] }] });
    expect((await tokenRequest(emulator, assertion(emulator, { key: createPrivateKey(readFileSync(keyFile)) }))).status).toBe(200);
    expect((await tokenRequest(emulator, assertion(emulator))).body).toEqual({ error: 'invalid_grant', error_description: 'invalid assertion' });
  });

  it('refuses with 400 and the OAuth error Salesforce gives for each broken claim, signature or approval', async () => {
    const emulator = await start();
    const nowS = Math.floor(Date.now() / 1000);
    const cases: [string | undefined, string][] = [
      [assertion(emulator, { key: otherKey }), 'invalid_grant: invalid assertion'],
      [assertion(emulator, { header: { alg: 'HS256' } }), 'invalid_grant: invalid assertion'],
      ['not-a-jwt', 'invalid_grant: invalid assertion'],
      [undefined, 'invalid_grant: invalid assertion'],
      [assertion(emulator, { claims: { iss: 'unknown-app' } }), 'invalid_client_id: client identifier invalid'],
      [assertion(emulator, { claims: { aud: 'https://login.salesforce.com' } }), 'invalid_grant: audience is invalid'],
      [assertion(emulator, { claims: { exp: nowS - 10 } }), 'invalid_grant: expired authorization code'],
      [assertion(emulator, { claims: { exp: nowS + 600 } }), 'invalid_grant: invalid assertion'], // more than 3 minutes ahead
      [assertion(emulator, { claims: { exp: undefined } }), 'invalid_grant: invalid assertion'],
      [assertion(emulator, { claims: { sub: 'someone@else.example' } }), "invalid_grant: user hasn't approved this consumer"],
    ];
    for (const [jwt, expected] of cases) {
      const { status, body } = await tokenRequest(emulator, jwt);
      expect({ status, answer: `${String(body.error)}: ${String(body.error_description)}` }, expected).toEqual({ status: 400, answer: expected });
    }
  });

  it('takes exp as a numeric string (as in the documented example) and prn over sub', async () => {
    const emulator = await start();
    const exp = String(Math.floor(Date.now() / 1000) + 120);
    expect((await tokenRequest(emulator, assertion(emulator, { claims: { exp } }))).status).toBe(200);
    expect((await tokenRequest(emulator, assertion(emulator, { claims: { sub: 'nobody', prn: USER } }))).status).toBe(200);
    expect((await tokenRequest(emulator, assertion(emulator, { claims: { sub: USER, prn: 'nobody' } }))).status).toBe(400);
  });

  it('accepts the configured audiences only, and follows approvals granted or revoked', async () => {
    const emulator = await start({ jwtAudiences: ['https://test.salesforce.com'] });
    expect((await tokenRequest(emulator, assertion(emulator))).body.error_description).toBe('audience is invalid');
    const sandbox = { claims: { aud: 'https://test.salesforce.com' } };
    expect((await tokenRequest(emulator, assertion(emulator, sandbox))).status).toBe(200);

    emulator.setJwtUserApproved(CLIENT, USER, false);
    expect((await tokenRequest(emulator, assertion(emulator, sandbox))).body.error_description).toBe("user hasn't approved this consumer");
    emulator.setJwtUserApproved(CLIENT, USER, true);
    expect((await tokenRequest(emulator, assertion(emulator, sandbox))).status).toBe(200);
  });

  it('records each decodable assertion with its decoded header and claims and the answer it got', async () => {
    const emulator = await start();
    await tokenRequest(emulator, assertion(emulator));
    await tokenRequest(emulator, assertion(emulator, { key: otherKey }));
    await tokenRequest(emulator, 'garbage');
    const received = emulator.jwtAssertions();
    expect(received.map((a) => a.verdict)).toEqual(['accepted', 'invalid_grant: invalid assertion']);
    expect(received[0]).toMatchObject({ header: { alg: 'RS256' }, claims: { iss: CLIENT, sub: USER, aud: emulator.url } });
    expect(emulator.stats().tokenRequests).toBe(3);
  });
});
