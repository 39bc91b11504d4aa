/**
 * The client's certificate store: our certificate is made once, reused, renewed near
 * expiry (the old one kept); rejected server certificates move to the trust list only
 * when asked, by file name, path, thumbprint or all at once.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../protocols/log.js';
import { describeCertificate, ensureOwnCertificate, listPki, OWN_CERTIFICATE, trustRejected } from '../../../protocols/opcua/pki.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'plantlink-pki-test-'));
  dirs.push(d);
  return d;
}

/** A certificate of another application, filed in `pkiDir/rejected` the way node-opcua names it. */
async function rejectSomeServer(pkiDir: string, name: string): Promise<string> {
  const other = tempDir();
  const cert = await ensureOwnCertificate({ pkiDir: other, applicationName: name });
  const cn = /CN=([^,]+)/.exec(cert.subject)![1]!;
  mkdirSync(path.join(pkiDir, 'rejected'), { recursive: true });
  const file = path.join(pkiDir, 'rejected', `${cn}[${cert.thumbprint}].pem`);
  copyFileSync(cert.file, file);
  return file;
}

describe('OPC UA PKI folder', () => {
  it('makes our certificate on first use, reuses it after, and renews it with the same URI when fewer than renewBeforeDays remain', async () => {
    const pkiDir = tempDir();
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger('test', { level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });

    const first = await ensureOwnCertificate({ pkiDir, applicationName: 'plantlink-agent', validityDays: 20, renewBeforeDays: 5, logger });
    expect(first).toMatchObject({ action: 'created', file: path.join(pkiDir, OWN_CERTIFICATE) });
    expect(first.daysLeft).toBeGreaterThanOrEqual(19);
    expect(first.applicationUri).toMatch(/^urn:.*plantlink-agent$/);
    expect(existsSync(first.privateKeyFile)).toBe(true);

    const again = await ensureOwnCertificate({ pkiDir, applicationName: 'ignored-once-made', renewBeforeDays: 5 });
    expect(again).toMatchObject({ action: 'reused', thumbprint: first.thumbprint, applicationUri: first.applicationUri });

    const renewed = await ensureOwnCertificate({ pkiDir, applicationName: 'plantlink-agent', validityDays: 365, renewBeforeDays: 30, logger });
    expect(renewed.action).toBe('renewed');
    expect(renewed.thumbprint).not.toBe(first.thumbprint);
    expect(renewed.applicationUri).toBe(first.applicationUri);
    expect(renewed.daysLeft).toBeGreaterThanOrEqual(364);
    expect(renewed.retired?.thumbprint).toBe(first.thumbprint);
    expect(describeCertificate(renewed.retired!.file).thumbprint).toBe(first.thumbprint);
    const alarm = lines.find((l) => l.alarm === 'opcua_certificate_expiring');
    expect(alarm).toMatchObject({ level: 40, thumbprint: renewed.thumbprint, previousThumbprint: first.thumbprint });
    expect(JSON.stringify(lines)).not.toMatch(/PRIVATE KEY/);
  });

  it('makes one certificate when several clients sharing a folder ask at once', async () => {
    const pkiDir = tempDir();
    const all = await Promise.all([1, 2, 3].map(() => ensureOwnCertificate({ pkiDir, applicationName: 'plantlink-agent' })));
    expect(new Set(all.map((c) => c.thumbprint)).size).toBe(1);
    expect(all.map((c) => c.action).sort()).toEqual(['created', 'reused', 'reused']);
  });

  it('trusts a rejected certificate by file name, by thumbprint, or all of them, and lists subject, thumbprint and expiry', async () => {
    const pkiDir = tempDir();
    await ensureOwnCertificate({ pkiDir, applicationName: 'plantlink-agent' });
    const a = await rejectSomeServer(pkiDir, 'server-a');
    const b = await rejectSomeServer(pkiDir, 'server-b');
    const c = await rejectSomeServer(pkiDir, 'server-c');

    const before = listPki(pkiDir);
    expect(before.own?.subject).toMatch(/CN=plantlink-agent/);
    expect(before.trusted).toEqual([]);
    expect(before.rejected.map((r) => r.file).sort()).toEqual([a, b, c].sort());
    const infoA = before.rejected.find((r) => r.file === a)!;
    expect(infoA.subject).toMatch(/CN=server-a/);
    expect(infoA.notAfter.getTime()).toBeGreaterThan(Date.now());

    const [byName] = await trustRejected(pkiDir, { file: path.basename(a) });
    expect(byName).toMatchObject({ thumbprint: infoA.thumbprint, file: path.join(pkiDir, 'trusted', 'certs', path.basename(a)) });
    expect(existsSync(a)).toBe(false);

    const thumbB = describeCertificate(b).thumbprint;
    await trustRejected(pkiDir, { file: thumbB.slice(0, 10) });
    await expect(trustRejected(pkiDir, { file: 'nope.pem' })).rejects.toThrow(/no certificate "nope.pem".*rejected: /);

    const all = await trustRejected(pkiDir, { all: true });
    expect(all.map((x) => x.thumbprint)).toEqual([describeCertificate(path.join(pkiDir, 'trusted', 'certs', path.basename(c))).thumbprint]);
    const after = listPki(pkiDir);
    expect(after.rejected).toEqual([]);
    expect(after.trusted).toHaveLength(3);
    expect(readdirSync(path.join(pkiDir, 'rejected'))).toEqual([]);
  });

  it('refuses to trust in a folder that does not exist', async () => {
    await expect(trustRejected(path.join(tempDir(), 'missing'), { all: true })).rejects.toThrow(/no PKI folder at/);
  });
});
