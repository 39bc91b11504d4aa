/**
 * The simulator's security options: a server that requires SignAndEncrypt and a user
 * really refuses anything less, keeps its certificate in the PKI folder it was given,
 * and keeps it across restarts.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MessageSecurityMode, OPCUACertificateManager, OPCUAClient, SecurityPolicy, UserTokenType, type UserIdentityInfo } from 'node-opcua';
import { afterEach, describe, expect, it } from 'vitest';
import { describeCertificate } from '../../protocols/opcua/pki.js';
import { PlantSimulator } from './plant/plant-simulator.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'plantlink-sim-sec-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Opens a session, reads the line state, closes; returns the state or the error message. */
async function trySession(sim: PlantSimulator, pkiDir: string, mode: 'None' | 'SignAndEncrypt', identity: UserIdentityInfo): Promise<string> {
  const client = OPCUAClient.create({
    endpointMustExist: false,
    securityMode: MessageSecurityMode[mode],
    securityPolicy: mode === 'None' ? SecurityPolicy.None : SecurityPolicy.Basic256Sha256,
    connectionStrategy: { maxRetry: 1, initialDelay: 100, maxDelay: 200 },
    clientCertificateManager: new OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: false, disableFileWatchers: true }),
  });
  try {
    await client.connect(sim.endpointUrl);
    const session = await client.createSession(identity);
    const value = await session.read({ nodeId: sim.nodeIdsFor('L1').state, attributeId: 13 });
    await session.close();
    return String(value.value.value);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    await client.disconnect();
  }
}

describe('PlantSimulator security options', () => {
  it('requires SignAndEncrypt and a known user when told to, with its certificate in its own PKI folder, kept across restarts', async () => {
    const simPki = tempDir();
    const sim = await PlantSimulator.start({ securityModes: ['SignAndEncrypt'], allowAnonymous: false, users: [{ name: 'op', password: 'pw' }], pkiDir: simPki });
    cleanups.push(() => sim.stop());
    sim.pause();
    expect(sim.certificateFile.startsWith(simPki)).toBe(true);
    const thumbprint = describeCertificate(sim.certificateFile).thumbprint;

    const clientPki = tempDir();
    mkdirSync(path.join(clientPki, 'trusted', 'certs'), { recursive: true });
    copyFileSync(sim.certificateFile, path.join(clientPki, 'trusted', 'certs', 'sim.pem'));

    expect(await trySession(sim, clientPki, 'None', { type: UserTokenType.Anonymous })).toMatch(/End point must exist|Bad/); // no None endpoint for sessions
    expect(await trySession(sim, clientPki, 'SignAndEncrypt', { type: UserTokenType.Anonymous })).toMatch(/Cannot find ANONYMOUS user token policy/); // node-opcua's client refuses by itself
    expect(await trySession(sim, clientPki, 'SignAndEncrypt', { type: UserTokenType.UserName, userName: 'op', password: 'nope' })).toMatch(/BadUserAccessDenied/);
    expect(await trySession(sim, clientPki, 'SignAndEncrypt', { type: UserTokenType.UserName, userName: 'op', password: 'pw' })).toBe('Idle');

    await sim.restartServer();
    sim.pause();
    expect(describeCertificate(sim.certificateFile).thumbprint).toBe(thumbprint);
    expect(await trySession(sim, clientPki, 'SignAndEncrypt', { type: UserTokenType.UserName, userName: 'op', password: 'pw' })).toBe('Idle');
    expect(existsSync(path.join(clientPki, 'rejected'))).toBe(true);
  });
});
