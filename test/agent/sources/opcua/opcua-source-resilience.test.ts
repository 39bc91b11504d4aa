/**
 * The #1 complaint about peer products: OPC UA subscriptions silently stop after a
 * server restart or a network drop. These tests break the plant's server and network
 * mid-run and check that the source comes back by itself and that the milestones it
 * emits are still exactly the plant's ground truth.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OpcUaSource } from '../../../../agent/sources/opcua/opcua-source.js';
import type { SourceHealthState } from '../../../../agent/sources/source.js';
import { PlantSimulator } from '../../../sim/plant/plant-simulator.js';
import { TcpProxy } from '../../../sim/tcp-proxy.js';
import { MemorySourceContext } from './memory-source-context.js';
import { expectExactlyTheTruth, expectFaithfulSubset, sourceConfig, WAIT, waitForHealth, waitForMilestones } from './plant-harness.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function recordHealth(source: OpcUaSource): SourceHealthState[] {
  const seen: SourceHealthState[] = [];
  const timer = setInterval(() => {
    const s = source.health().state;
    if (seen[seen.length - 1] !== s) seen.push(s);
  }, 10);
  cleanups.push(async () => clearInterval(timer));
  return seen;
}

async function setup(options: { workOrdersPerLine: number; viaProxy?: boolean; historize?: boolean; config?: Parameters<typeof sourceConfig>[3] }) {
  const sim = await PlantSimulator.start({ lines: ['L1', 'L2'], workOrdersPerLine: options.workOrdersPerLine, quantityPerOrder: 3, stepMs: 50, holdEvery: 2, historize: options.historize ?? true });
  cleanups.push(() => sim.stop());
  sim.pause();
  let endpointUrl = sim.endpointUrl;
  let proxy: TcpProxy | undefined;
  if (options.viaProxy) {
    proxy = await TcpProxy.start({ host: '127.0.0.1', port: sim.port });
    cleanups.push(() => proxy!.stop());
    endpointUrl = sim.endpointUrl.replace(`:${sim.port}/`, `:${proxy.port}/`);
  }
  const ctx = new MemorySourceContext();
  const source = new OpcUaSource(sourceConfig(sim, endpointUrl, ['L1', 'L2'], options.config));
  cleanups.push(() => source.stop());
  const health = recordHealth(source);
  await source.start(ctx);
  await waitForHealth(source, 'connected');
  sim.resume();
  return { sim, proxy: proxy!, ctx, source, health };
}

describe('OpcUaSource resilience', () => {
  it('reconnects and resubscribes after the server restarts mid-run; every milestone exactly once', async () => {
    const { sim, ctx, source, health } = await setup({ workOrdersPerLine: 8 });
    await waitForMilestones(sim, 16);
    await sim.stopServer(); // progression pauses with the server
    await waitForHealth(source, 'disconnected');
    await new Promise((r) => setTimeout(r, 1000));
    // The plant runs on as soon as its server is back; what changes before the source has
    // resubscribed reaches it through the server's history (catch-up), so nothing is missed.
    await sim.restartServer();
    await expectExactlyTheTruth(sim, ctx);
    expect(health).toEqual(expect.arrayContaining(['connected', 'disconnected']));
    expect(source.health().state).toBe('connected');
  });

  it('without history, after a server restart with a plant that ran on while it was down, emits no duplicates and ends on the right state', async () => {
    const { sim, ctx, source } = await setup({ workOrdersPerLine: 8, historize: false, config: { historyCatchUp: false } });
    await waitForMilestones(sim, 16);
    await sim.stopServer();
    await waitForHealth(source, 'disconnected');
    sim.resume(); // the plant runs on while its server is down (values change, nobody sees)
    await new Promise((r) => setTimeout(r, 800));
    await sim.restartServer();
    await expectFaithfulSubset(sim, ctx);
  });

  it('survives a network drop: session reactivated, queued notifications delivered, every milestone exactly once', async () => {
    const { sim, ctx, proxy, source } = await setup({ workOrdersPerLine: 14, viaProxy: true });
    await waitForMilestones(sim, 16);
    expect(proxy.connections).toBeGreaterThan(0);
    proxy.cut();
    await waitForHealth(source, 'disconnected');
    const duringCut = sim.truth.length;
    await new Promise((r) => setTimeout(r, 2500));
    expect(sim.truth.length).toBeGreaterThan(duringCut + 10); // the plant ran on meanwhile
    proxy.restore();
    await waitForHealth(source, 'connected');
    const afterReconnect = sim.truth.length;
    await expectExactlyTheTruth(sim, ctx);
    expect(sim.truth.length).toBeGreaterThan(afterReconnect); // and live changes flowed again after it
  });

  it('detects a connected-but-stalled subscription, reports it and recycles the session', async () => {
    const { sim, ctx, proxy, source, health } = await setup({
      workOrdersPerLine: 10,
      viaProxy: true,
      config: { maxKeepAliveCount: 4, stallAfterKeepAlives: 3 }, // stalled after ~600 ms of silence
    });
    await waitForMilestones(sim, 12);
    proxy.freeze(); // sockets stay open, bytes stop
    await waitForHealth(source, 'stalled');
    expect(source.health().detail).toMatch(/no notification or keep-alive/);
    await new Promise((r) => setTimeout(r, 500));
    proxy.thaw();
    await waitForHealth(source, 'connected');
    expect(health).toEqual(expect.arrayContaining(['connected', 'stalled']));
    // what changed while stalled is reconciled from current values (collapsed), never duplicated
    await expectFaithfulSubset(sim, ctx);
    await vi.waitFor(() => expect(ctx.events.length).toBeGreaterThan(0), WAIT);
  });
});
