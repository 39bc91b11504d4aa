/**
 * The SOAP source when the ERP misbehaves: restarts mid-poll, SOAP Faults of both kinds,
 * answers of an unexpected shape, refused credentials, a private CA. The source must keep
 * going by itself, say what is wrong in its health, never crash, never leak the password,
 * and still deliver exactly the ERP's changes once the ERP behaves again.
 */
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SoapSource } from '../../../../agent/sources/soap/soap-source.js';
import type { SourceHealth } from '../../../../agent/sources/source.js';
import { createLogger } from '../../../../protocols/log.js';
import { selfSignedCert } from '../../../helpers/certs.js';
import { tempDir } from '../../../helpers/temp.js';
import { ErpSimulator, type ErpSimulatorOptions } from '../../../sim/erp/erp-simulator.js';
import { expectExactlyTheTruth, MemorySourceContext, nextPoll, recordPolls, shipmentConfig, WAIT } from './soap-harness.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function erp(options: ErpSimulatorOptions = {}): Promise<ErpSimulator> {
  const sim = await ErpSimulator.start(options);
  cleanups.push(() => sim.stop());
  sim.addShipment({ shipmentNo: 'SH-1', salesOrder: 'SO-1' });
  sim.advance('SH-1', 'SHIPPED', { carrier: 'DHL' });
  sim.addShipment({ shipmentNo: 'SH-2', salesOrder: 'SO-2' });
  return sim;
}

async function run(source: SoapSource, ctx = new MemorySourceContext()): Promise<MemorySourceContext> {
  await source.start(ctx);
  cleanups.push(() => source.stop());
  return ctx;
}

/** Health as it was right after every poll. */
function healthAfterPolls(source: SoapSource): SourceHealth[] {
  const seen: SourceHealth[] = [];
  source.on('poll', () => seen.push(source.health()));
  return seen;
}

/** A logger whose JSON lines are kept, to check what was (not) logged. */
function capturedLogger(): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger('soap-test', { level: 'debug', destination: { write: (s: string) => void lines.push(s) } }), lines };
}

describe('SoapSource under ERP faults', () => {
  it('retries a transient soap:Server fault with backoff and then delivers everything', async () => {
    const sim = await erp();
    sim.failNext(2, { fault: 'transient', message: 'Database busy' });
    const source = new SoapSource(shipmentConfig(sim));
    const reports = recordPolls(source);
    const health = healthAfterPolls(source);
    const ctx = await run(source);
    await expectExactlyTheTruth(sim, ctx);
    expect(reports.slice(0, 3).map((r) => r.outcome)).toEqual(['transient', 'transient', 'ok']);
    expect(health[0]).toMatchObject({ state: 'disconnected' });
    expect(health[0]!.detail).toContain('SOAP Fault soap:Server: Database busy');
    expect(health[2]!.state).toBe('connected');
  });

  it('surfaces a permanent soap:Client fault in health and keeps polling on schedule', async () => {
    const sim = await erp();
    sim.failNext(3, { fault: 'permanent', message: 'Invalid changedSince' });
    const source = new SoapSource(shipmentConfig(sim));
    const reports = recordPolls(source);
    const health = healthAfterPolls(source);
    const ctx = await run(source);
    await expectExactlyTheTruth(sim, ctx); // the fourth poll, on the normal schedule, succeeds
    expect(reports.slice(0, 4).map((r) => r.outcome)).toEqual(['permanent', 'permanent', 'permanent', 'ok']);
    expect(health[0]!.state).toBe('stalled');
    expect(health[0]!.detail).toMatch(/SOAP Fault soap:Client: Invalid changedSince \(permanent; polling again every 20 ms\)/);
    expect(source.status().lastError).toBeUndefined();
    expect(health[3]!.state).toBe('connected');
  });

  it('reports an answer of unexpected shape as a clear permanent error without crashing', async () => {
    const sim = await erp();
    sim.malformNext(1);
    const source = new SoapSource(shipmentConfig(sim));
    const health = healthAfterPolls(source);
    const first = nextPoll(source);
    const ctx = await run(source);
    const report = await first;
    expect(report.outcome).toBe('permanent');
    expect(report.error).toBe('calling GetShipmentChanges: unexpected response shape: the response has no `shipments` (itemsPath `shipments.Shipment`); it has `changeList`, `serverTime`');
    expect(health[0]!.state).toBe('stalled');
    expect(ctx.events).toHaveLength(0);
    await expectExactlyTheTruth(sim, ctx); // next poll: the ERP answers properly again
  });

  it('gives up on a call after timeoutMs and retries it as a transient failure', async () => {
    const sim = await erp();
    sim.setLatency(3_000);
    const source = new SoapSource(shipmentConfig(sim, { timeoutMs: 100 }));
    const first = nextPoll(source);
    const ctx = await run(source);
    expect(await first).toMatchObject({ outcome: 'transient', error: expect.stringMatching(/timeout of 100ms exceeded/) });
    sim.setLatency(0);
    await expectExactlyTheTruth(sim, ctx);
  });

  it('rides through an ERP restart in the middle of a poll', async () => {
    const sim = await erp();
    sim.setLatency(2_000);
    const source = new SoapSource(shipmentConfig(sim));
    const reports = recordPolls(source);
    const inFlight = once(sim, 'call');
    const ctx = await run(source);
    await inFlight; // the ERP holds the request...
    const failed = nextPoll(source);
    sim.setLatency(0);
    await sim.restart(); // ...and goes down with it: the socket is dropped
    expect((await failed).outcome).toBe('transient');
    await expectExactlyTheTruth(sim, ctx);
    sim.addShipment({ shipmentNo: 'SH-3', salesOrder: 'SO-3' });
    await expectExactlyTheTruth(sim, ctx);
    expect(reports[0]!.error).toMatch(/socket hang up|ECONNRESET/);
    expect(source.health().state).toBe('connected');
  });

  it('keeps retrying while the ERP is down and resumes when it is back', async () => {
    const sim = await erp();
    const source = new SoapSource(shipmentConfig(sim));
    const ctx = await run(source);
    await expectExactlyTheTruth(sim, ctx);
    await sim.stop();
    const down = nextPoll(source, (r) => r.outcome === 'transient');
    sim.advance('SH-2', 'SHIPPED');
    expect((await down).error).toMatch(/ECONNREFUSED/);
    expect(source.health().state).toBe('disconnected');
    await sim.restart();
    await expectExactlyTheTruth(sim, ctx);
  });

  describe('WS-Security UsernameToken', () => {
    const users = [{ username: 'plantlink', password: 'Corr3ct-H0rse' }];

    it('authenticates with the configured user and reads the changes', async () => {
      const sim = await erp({ users });
      const ctx = await run(new SoapSource(shipmentConfig(sim, { auth: users[0]! })));
      await expectExactlyTheTruth(sim, ctx);
    });

    it('says clearly that the ERP wants credentials when none are configured', async () => {
      const sim = await erp({ users });
      const source = new SoapSource(shipmentConfig(sim));
      const first = nextPoll(source);
      await run(source);
      expect(await first).toMatchObject({ outcome: 'permanent', error: expect.stringContaining('Authentication required: WS-Security UsernameToken missing') });
      expect(source.health().state).toBe('stalled');
    });

    it('reports a wrong password as a permanent error and never logs the password', async () => {
      const sim = await erp({ users });
      const { logger, lines } = capturedLogger();
      const password = 'Wr0ng-Batt3ry-Stapl3';
      const source = new SoapSource(shipmentConfig(sim, { auth: { username: 'plantlink', password } }), logger);
      const polls = recordPolls(source);
      const ctx = await run(source);
      await vi.waitFor(() => expect(polls.length).toBeGreaterThanOrEqual(2), WAIT);
      expect(polls[0]!.error).toBe('calling GetShipmentChanges: SOAP Fault soap:Client: Authentication failed: invalid username or password');
      expect(source.health()).toMatchObject({ state: 'stalled' });
      expect(ctx.events).toHaveLength(0);
      expect(lines.join('')).toContain('Authentication failed');
      expect(lines.join('')).not.toContain(password);
      expect(JSON.stringify(source.status())).not.toContain(password);
    });
  });

  describe('HTTPS with a private CA', () => {
    it('trusts the ERP certificate given in tls.caFile', async () => {
      const { dir, cleanup } = tempDir();
      cleanups.push(cleanup);
      const cert = selfSignedCert(dir, 'erp');
      const sim = await erp({ tls: { cert: cert.cert, key: cert.key } });
      expect(sim.url.startsWith('https://')).toBe(true);
      const ctx = await run(new SoapSource(shipmentConfig(sim, { tls: { caFile: cert.certFile, rejectUnauthorized: true } })));
      await expectExactlyTheTruth(sim, ctx);
    });

    it('refuses an untrusted certificate with a hint, as a permanent error', async () => {
      const { dir, cleanup } = tempDir();
      cleanups.push(cleanup);
      const cert = selfSignedCert(dir, 'erp');
      const sim = await erp({ tls: { cert: cert.cert, key: cert.key } });
      const source = new SoapSource(shipmentConfig(sim));
      const first = nextPoll(source);
      await run(source);
      const report = await first;
      expect(report.outcome).toBe('permanent');
      expect(report.error).toMatch(/^reading the WSDL https:\/\/127\.0\.0\.1:\d+\/erp\/logistics\?wsdl: self[- ]signed certificate \(check tls\.caFile\)$/);
    });
  });
});
