import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PermanentError } from '../../../../protocols/errors.js';
import { createLogger } from '../../../../protocols/log.js';
import { defaultSalesforceMappings, SalesforceSink, type SalesforceSinkConfigInput } from '../../../../relay/sinks/salesforce/index.js';
import type { SalesforceEmulatorOptions } from '../../../emulators/salesforce/salesforce-emulator.js';
import { tempDir } from '../../../helpers/temp.js';
import { milestoneEvent } from './fixtures.js';
import { expectDelivered, expectErrored, fresh, setup } from './harness.js';

const pem = (key: ReturnType<typeof generateKeyPairSync>['privateKey']): string => key.export({ type: 'pkcs8', format: 'pem' }) as string;
const app = generateKeyPairSync('rsa', { modulusLength: 2048 });
const appPem = pem(app.privateKey);
const otherPem = pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
/** A line from inside the PEM body: if any part of the key leaked, this would. */
const keyLine = (text: string): string => text.split('\n')[2]!;

const CLIENT = 'plantlink-jwt-app';
const USER = 'integration@plantlink.example';
const emulatorWithApp: SalesforceEmulatorOptions = { jwtClients: [{ clientId: CLIENT, certificate: app.publicKey, users: [USER] }] };
const jwtAuth = (overrides: Record<string, unknown> = {}): SalesforceSinkConfigInput['auth'] =>
  ({ flow: 'jwt_bearer', clientId: CLIENT, username: USER, privateKey: appPem, ...overrides }) as SalesforceSinkConfigInput['auth'];

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe('SalesforceSink with the OAuth 2.0 JWT bearer flow', () => {
  it('start() trades a signed assertion for a token and a batch is delivered; the assertion carries alg, iss, sub, aud and exp as documented', async () => {
    const { emulator, sink } = await setup({ emulator: emulatorWithApp, sink: { auth: jwtAuth() } });
    await sink.start();
    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)));

    outcomes.forEach(expectDelivered);
    expect(emulator.record('Production_Order__c', 'WO-2')!.fields.Status__c).toBe('released');
    const [received, ...more] = emulator.jwtAssertions();
    expect(more).toEqual([]); // one token for the start and the batch
    expect(received!.verdict).toBe('accepted');
    expect(received!.header).toEqual({ alg: 'RS256' });
    const { exp, ...claims } = received!.claims;
    expect(claims).toEqual({ iss: CLIENT, sub: USER, aud: emulator.url }); // aud defaults to loginUrl
    expect(typeof exp).toBe('number');
    // exp is in seconds since the epoch, in the future and at most 3 minutes ahead of its arrival.
    expect((exp as number) * 1000).toBeGreaterThan(received!.receivedAt);
    expect((exp as number) * 1000 - received!.receivedAt).toBeLessThanOrEqual(180_000);
  });

  it('reads the key from privateKeyFile and sends the configured audience without a trailing slash', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const privateKeyFile = join(dir, 'salesforce.key');
    writeFileSync(privateKeyFile, appPem, { mode: 0o600 });
    const { emulator, sink } = await setup({
      emulator: { ...emulatorWithApp, jwtAudiences: ['https://test.salesforce.com'] },
      sink: { auth: jwtAuth({ privateKey: undefined, privateKeyFile, audience: 'https://test.salesforce.com/' }) },
    });
    await sink.start();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    expect(emulator.jwtAssertions()[0]!.claims.aud).toBe('https://test.salesforce.com');
  });

  it('recovers transparently when the access token expires: 401, a new assertion, a new token, the call retried', async () => {
    const { emulator, sink } = await setup({ emulator: emulatorWithApp, sink: { auth: jwtAuth() } });
    await sink.start();
    expectDelivered((await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1))))[0]);
    emulator.expireTokens();

    const outcomes = await sink.deliver(fresh(milestoneEvent('WO-1', 'started', 2), milestoneEvent('WO-2', 'started', 3)));

    outcomes.forEach(expectDelivered);
    expect(emulator.stats().status[401]).toBeGreaterThanOrEqual(1);
    expect(emulator.jwtAssertions().map((a) => a.verdict)).toEqual(['accepted', 'accepted']);
    expect(emulator.record('Production_Order__c', 'WO-1')!.fields.Status__c).toBe('started');
  });

  it('an assertion signed with the wrong key fails start() with invalid_grant; deliveries are errored with a long retry hint; the key is never logged', async () => {
    const config = { auth: jwtAuth({ privateKey: otherPem }) };
    const { sink, logs } = await setup({ emulator: emulatorWithApp, sink: config });
    const started = sink.start();
    await expect(started).rejects.toThrow(PermanentError);
    await expect(started).rejects.toThrow(/^starting Salesforce sink "crm": requesting a Salesforce access token: invalid_grant: invalid assertion$/);
    await expect(started).rejects.toMatchObject({ code: 'invalid_grant' });

    const { sink: other, emulator: otherEmulator, logs: otherLogs } = await setup({ emulator: emulatorWithApp, sink: config });
    const outcomes = await other.deliver(fresh(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)));
    const error = expectErrored(outcomes[0]);
    expect(error.retryAfterMs).toBe(60_000);
    expect(error.message).toContain('invalid_grant');
    expect(expectErrored(outcomes[1]).retryAfterMs).toBe(60_000);
    expect(otherEmulator.stats().tokenRequests).toBe(1); // concurrent items share one token request

    const text = logs() + otherLogs() + error.message + String((await started.catch((e: unknown) => e)) as Error);
    expect(text).not.toContain(keyLine(otherPem));
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./); // no JWT (assertion)
  });

  it('a user not approved for the app fails start() naming Salesforce\'s reason', async () => {
    const { sink } = await setup({ emulator: emulatorWithApp, sink: { auth: jwtAuth({ username: 'someone@plantlink.example' }) } });
    await expect(sink.start()).rejects.toThrow(/invalid_grant: user hasn't approved this consumer/);
  });

  it('never logs the private key, the assertion or the access token on the way to a delivery and a token renewal', async () => {
    const { emulator, sink, logs } = await setup({ emulator: emulatorWithApp, sink: { auth: jwtAuth() } });
    await sink.start();
    emulator.expireTokens();
    emulator.failNext(1, { status: 500 });
    await sink.deliver(fresh(milestoneEvent('WO-1', 'released', 1)));
    await sink.deliver(fresh(milestoneEvent('WO-2', 'released', 2)));
    const text = logs();
    expect(text).toContain('obtained a Salesforce access token');
    expect(text).not.toContain(keyLine(appPem));
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    expect(text).not.toMatch(/00D5P0000000PLT!/); // the emulator's access tokens
  });

  it('a key that cannot sign RS256, or cannot be read, fails the construction with invalid_private_key and without quoting the key', () => {
    const logger = createLogger('test', { level: 'silent' });
    const build = (auth: SalesforceSinkConfigInput['auth']) => () =>
      new SalesforceSink({ name: 'crm', kind: 'salesforce', loginUrl: 'http://127.0.0.1:1', auth, mappings: defaultSalesforceMappings }, logger);
    const ecPem = pem(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
    const small = pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey);
    const cases: [SalesforceSinkConfigInput['auth'], RegExp, string][] = [
      [jwtAuth({ privateKey: ecPem }), /RS256 needs an RSA key of 2048 bits or more, got a ec key/, keyLine(ecPem)],
      [jwtAuth({ privateKey: small }), /got a 1024-bit RSA key/, keyLine(small)],
      [jwtAuth({ privateKey: 'TOP-SECRET-NOT-A-KEY' }), /not a PEM private key/, 'TOP-SECRET'],
      [jwtAuth({ privateKey: undefined, privateKeyFile: '/nonexistent/salesforce.key' }), /cannot read \/nonexistent\/salesforce\.key: ENOENT/, 'BEGIN'],
    ];
    for (const [auth, message, secret] of cases) {
      let error: unknown;
      try {
        build(auth)();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(PermanentError);
      expect((error as PermanentError).code).toBe('invalid_private_key');
      expect((error as Error).message).toMatch(/^Salesforce sink private key: /);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain(secret);
    }
  });
});
