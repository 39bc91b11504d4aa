/**
 * A full loopback stack for end-to-end tests: simulated plant and CRM emulator in this
 * process; agent and relay as real `plantlink` child processes that can be kill -9'd.
 */
import { join } from 'node:path';
import { expect, vi } from 'vitest';
import { SalesforceEmulator } from '../emulators/salesforce/salesforce-emulator.js';
import { tempDir } from '../helpers/temp.js';
import { PlantSimulator, type PlantSimulatorOptions } from '../sim/plant/plant-simulator.js';
import { PlantlinkProcess } from '../sim/processes.js';
import { freePort, writeStackConfigs } from '../sim/stack-configs.js';
import { TcpProxy } from '../sim/tcp-proxy.js';

export interface Stack {
  dir: string;
  plant: PlantSimulator;
  crm: SalesforceEmulator;
  relay: PlantlinkProcess;
  agent: PlantlinkProcess;
  proxy: TcpProxy;
  relayFile: string;
  stop(): Promise<void>;
}

export async function startStack(plantOptions: PlantSimulatorOptions = {}): Promise<Stack> {
  const { dir, cleanup } = tempDir('plantlink-e2e-');
  const lines = plantOptions.lines ?? ['L1', 'L2'];
  const plant = await PlantSimulator.start({ lines, stepMs: 40, quantityPerOrder: 5, holdEvery: 3, workOrdersPerLine: 8, ...plantOptions });
  plant.pause(); // the line starts once the agent is subscribed
  const crm = await SalesforceEmulator.start();
  const relayPort = await freePort();
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: relayPort });
  const { relayFile, agentFile } = writeStackConfigs(
    dir,
    { opcuaEndpoint: plant.endpointUrl, nodeIds: (l) => plant.nodeIdsFor(l), lines, salesforceUrl: crm.url, relayPort, uplinkPort: proxy.port },
    { fastRetries: true, logLevel: 'debug' },
  );
  const relay = new PlantlinkProcess('relay', relayFile, join(dir, 'relay.log'));
  const agent = new PlantlinkProcess('agent', agentFile, join(dir, 'agent.log'));
  relay.start();
  await relay.waitForLog(/relay started/);
  const subscribed = agent.waitForLog(SUBSCRIBED);
  agent.start();
  await subscribed;
  return {
    dir,
    plant,
    crm,
    relay,
    agent,
    proxy,
    relayFile,
    async stop() {
      await agent.kill9();
      await relay.kill9();
      await proxy.stop();
      await plant.stop();
      await crm.stop();
      if (!process.env.PLANTLINK_KEEP_E2E) cleanup();
    },
  };
}

/** The agent's log line once its OPC UA subscription is live (after start or any reconnect). */
export const SUBSCRIBED = /"msg":"subscribed to the OPC UA server"/;

export interface MilestoneKey {
  workOrder: string;
  milestone: string;
  good: number | undefined;
}

const keyOf = (m: MilestoneKey) => `${m.workOrder}|${m.milestone}${m.milestone === 'quantity-reported' ? `|${m.good}` : ''}`;

/** What the plant did, as sorted keys (duplicates would show twice). */
export function truthKeys(plant: PlantSimulator): string[] {
  return plant.truth.map((t) => keyOf({ workOrder: t.workOrder, milestone: t.milestone, good: t.goodQuantity })).sort();
}

/** What the CRM holds, as sorted keys. */
export function crmKeys(crm: SalesforceEmulator): string[] {
  return crm
    .records('Production_Milestone__c')
    .map((r) => keyOf({ workOrder: String(r.fields.Work_Order__c), milestone: String(r.fields.Milestone__c), good: r.fields.Good_Quantity__c as number | undefined }))
    .sort();
}

/** Waits until the plant finished and the CRM holds as many milestone records as the plant made. */
export async function waitForAllLanded(stack: Stack, timeoutMs = 60_000): Promise<void> {
  await stack.plant.finished();
  await vi.waitFor(() => expect(stack.crm.records('Production_Milestone__c').length).toBeGreaterThanOrEqual(stack.plant.truth.length), {
    timeout: timeoutMs,
    interval: 200,
  });
}

/**
 * The exactly-once check: the CRM's milestone records are exactly the plant's milestones,
 * each once, and every work order's latest-state record ended where the plant did.
 */
export function expectExactlyOnce(stack: Stack): void {
  expect(crmKeys(stack.crm)).toEqual(truthKeys(stack.plant));
  const orders = new Map(stack.crm.records('Production_Order__c').map((r) => [r.externalId, r]));
  const finals = new Map<string, { milestone: string; good: number }>();
  for (const t of stack.plant.truth) finals.set(t.workOrder, { milestone: t.milestone, good: t.goodQuantity });
  for (const [wo, final] of finals) {
    const order = orders.get(wo);
    expect(order, `Production_Order__c ${wo}`).toBeDefined();
    expect({ wo, status: order!.fields.Status__c, good: order!.fields.Good_Quantity__c }).toEqual({ wo, status: final.milestone, good: final.good });
  }
  expect(orders.size).toBe(finals.size);
}
