/**
 * The OPC UA source against a simulated plant that requires message security and a
 * user (real node-opcua server and client, port 0, a PKI folder per test for both):
 * trust is explicit and fixable without a restart, credentials and our own certificate
 * failures are explained, and the password never reaches the logs.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OpcUaSource } from '../../../../agent/sources/opcua/opcua-source.js';
import { opcuaPkiFolders, trustInFolders } from '../../../../agent/sources/opcua/trust.js';
import { createLogger } from '../../../../protocols/log.js';
import { describeCertificate, OWN_CERTIFICATE } from '../../../../protocols/opcua/pki.js';
import { PlantSimulator, type PlantSimulatorOptions } from '../../../sim/plant/plant-simulator.js';
import { MemorySourceContext } from './memory-source-context.js';
import { expectExactlyTheTruth, sourceConfig, WAIT, waitForHealth } from './plant-harness.js';

const PASSWORD = 'pl4nt-S3cret!';
const USERS = [{ name: 'operator', password: PASSWORD }];

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'plantlink-opcua-sec-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function startPlant(options: PlantSimulatorOptions): Promise<PlantSimulator> {
  const sim = await PlantSimulator.start({ stepMs: 50, quantityPerOrder: 2, workOrdersPerLine: 2, holdEvery: 2, pkiDir: tempDir(), ...options });
  sim.pause();
  cleanups.push(() => sim.stop());
  return sim;
}

/** A logger that keeps every line, to check what the logs say (and never say). */
function capturingLogger() {
  const lines: string[] = [];
  const logger = createLogger('test', { level: 'debug', destination: { write: (l: string) => void lines.push(l) } });
  return { logger, lines };
}

function startSource(sim: PlantSimulator, pkiDir: string, overrides: Parameters<typeof sourceConfig>[3], logger = capturingLogger().logger) {
  const ctx = new MemorySourceContext();
  const source = new OpcUaSource(sourceConfig(sim, sim.endpointUrl, ['L1'], { pkiDir, ...overrides }), logger);
  cleanups.push(() => source.stop());
  void source.start(ctx);
  return { source, ctx };
}

/** What an operator does with a certificate handed over by the server's administrator. */
function preTrustServer(sim: PlantSimulator, pkiDir: string): void {
  mkdirSync(path.join(pkiDir, 'trusted', 'certs'), { recursive: true });
  copyFileSync(sim.certificateFile, path.join(pkiDir, 'trusted', 'certs', 'plant.pem'));
}

describe('OpcUaSource security', () => {
  it('refuses an untrusted server certificate and says which file to trust; after `trust` it connects by itself and emits exactly the plant milestones', async () => {
    const sim = await startPlant({ securityModes: ['SignAndEncrypt'], allowAnonymous: false, users: USERS });
    const pkiDir = path.join(tempDir(), 'pki');
    const { logger, lines } = capturingLogger();
    const { source, ctx } = startSource(
      sim,
      pkiDir,
      { security: { mode: 'SignAndEncrypt', policy: 'Basic256Sha256' }, identity: { type: 'username', userName: 'operator', password: PASSWORD } },
      logger,
    );

    await vi.waitFor(() => expect(source.health().detail).toMatch(/server certificate is not trusted \(BadCertificateUntrusted\)/), WAIT);
    const detail = source.health().detail!;
    expect(source.health().state).toBe('starting');
    const name = /--file '([^']+)'/.exec(detail)?.[1];
    expect(name).toBeDefined();
    const rejected = path.join(pkiDir, 'rejected', name!);
    expect(existsSync(rejected)).toBe(true);
    expect(describeCertificate(rejected).thumbprint).toBe(describeCertificate(sim.certificateFile).thumbprint);
    expect(detail).toContain(`plantlink agent trust --config <agent config> --source line-opcua --file '${name}'`);
    expect(detail).toContain(describeCertificate(rejected).thumbprint);
    // the log says it too, at error level with an alarm, and our own certificate exists already
    const alarm = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.alarm === 'opcua_server_certificate_untrusted');
    expect(alarm).toMatchObject({ level: 50, file: rejected });
    expect(existsSync(path.join(pkiDir, OWN_CERTIFICATE))).toBe(true);
    expect(ctx.events).toEqual([]);

    const [result] = await trustInFolders(opcuaPkiFolders([{ name: 'line-opcua', kind: 'opcua', pkiDir }], '/unused'), { file: name! });
    expect(result!.trusted.map((c) => c.file)).toEqual([path.join(pkiDir, 'trusted', 'certs', name!)]);
    expect(existsSync(rejected)).toBe(false);

    await waitForHealth(source, 'connected'); // the next attempt, no restart
    sim.resume();
    await expectExactlyTheTruth(sim, ctx);
    expect(lines.join('\n')).not.toContain(PASSWORD);
  });

  it('reports a wrong password clearly and keeps retrying with backoff without crashing', async () => {
    const sim = await startPlant({ securityModes: ['SignAndEncrypt'], allowAnonymous: false, users: USERS });
    const pkiDir = path.join(tempDir(), 'pki');
    preTrustServer(sim, pkiDir);
    const { logger, lines } = capturingLogger();
    const { source, ctx } = startSource(
      sim,
      pkiDir,
      { security: { mode: 'SignAndEncrypt', policy: 'Aes128_Sha256_RsaOaep' }, identity: { type: 'username', userName: 'operator', password: 'wrong-password' } },
      logger,
    );
    await vi.waitFor(() => expect(source.health().detail).toBe('the server refused user "operator" (BadUserAccessDenied): check identity.userName and identity.password'), WAIT);
    // retried: several refused attempts, the first at error level, the repeats quieter
    const refusals = () => lines.map((l) => JSON.parse(l) as { alarm?: string; level: number }).filter((l) => l.alarm === 'opcua_user_refused');
    await vi.waitFor(() => expect(refusals().length).toBeGreaterThanOrEqual(3), WAIT);
    expect(refusals()[0]!.level).toBe(50);
    expect(refusals()[1]!.level).toBe(20);
    expect(source.health().state).toBe('starting');
    expect(ctx.events).toEqual([]);
    expect(lines.join('\n')).not.toContain('wrong-password');
    await source.stop();
    expect(source.health().state).toBe('stopped');
  });

  it('works in Sign mode, and makes our certificate on the first start and reuses it on the second', async () => {
    const sim = await startPlant({ securityModes: ['Sign'], securityPolicies: ['Aes256_Sha256_RsaPss'] });
    const pkiDir = path.join(tempDir(), 'pki');
    preTrustServer(sim, pkiDir);
    const overrides = { security: { mode: 'Sign', policy: 'Aes256_Sha256_RsaPss' } } as const;
    expect(existsSync(path.join(pkiDir, OWN_CERTIFICATE))).toBe(false);

    const first = startSource(sim, pkiDir, overrides);
    await waitForHealth(first.source, 'connected');
    const made = describeCertificate(path.join(pkiDir, OWN_CERTIFICATE));
    expect(made.subject).toMatch(/CN=plantlink-agent/);
    expect(made.notAfter.getTime() - Date.now()).toBeGreaterThan(3600 * 86_400_000);
    await first.source.stop();

    const second = startSource(sim, pkiDir, overrides);
    await waitForHealth(second.source, 'connected');
    expect(describeCertificate(path.join(pkiDir, OWN_CERTIFICATE)).thumbprint).toBe(made.thumbprint);
    sim.resume();
    await expectExactlyTheTruth(sim, second.ctx);
  });

  it('says the server refused our certificate, names it, and connects once the server trusts it', async () => {
    const sim = await startPlant({ securityModes: ['SignAndEncrypt'], acceptUnknownClientCertificates: false });
    const pkiDir = path.join(tempDir(), 'pki');
    preTrustServer(sim, pkiDir);
    const { source } = startSource(sim, pkiDir, { security: { mode: 'SignAndEncrypt' } });
    await vi.waitFor(() => expect(source.health().detail).toMatch(/^the server refused our secure channel \(BadSecurityChecksFailed\)/), WAIT);
    const own = describeCertificate(path.join(pkiDir, OWN_CERTIFICATE));
    expect(source.health().detail).toContain(path.join(pkiDir, OWN_CERTIFICATE));
    expect(source.health().detail).toContain(own.thumbprint);
    // the server's administrator trusts what it rejected
    await vi.waitFor(async () => expect(await sim.trustRejectedClientCertificates()).toBe(1), WAIT);
    await waitForHealth(source, 'connected');
  });
});
