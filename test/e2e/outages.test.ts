/**
 * Outages on every link while milestones stream: the CRM down, the agent-relay network
 * cut, the OPC UA server restarted. After recovery every milestone is in the CRM once.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { expectExactlyOnce, startStack, waitForAllLanded, type Stack } from './stack.js';

const run = promisify(execFile);
let stack: Stack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('outages', { timeout: 150_000 }, () => {
  it('CRM down for a while, then back: nothing lost, nothing twice', async () => {
    stack = await startStack();
    const s = stack;
    s.plant.resume();
    await vi.waitFor(() => expect(s.crm.records('Production_Milestone__c').length).toBeGreaterThan(10), { timeout: 30_000 });
    s.crm.setOutage(true);
    await sleep(2500);
    s.crm.setOutage(false);
    await waitForAllLanded(s);
    await sleep(500);
    expectExactlyOnce(s);
  });

  it('agent-relay network cut, then restored: the agent resumes from its outbox', async () => {
    stack = await startStack();
    const s = stack;
    s.plant.resume();
    await vi.waitFor(() => expect(s.plant.truth.length).toBeGreaterThan(20), { timeout: 30_000 });
    s.proxy.cut();
    await sleep(2000);
    s.proxy.restore();
    await waitForAllLanded(s);
    await sleep(500);
    expectExactlyOnce(s);
  });

  it('OPC UA server restarted mid-run: the agent reconnects, resubscribes and misses nothing', async () => {
    stack = await startStack();
    const s = stack;
    s.plant.resume();
    await vi.waitFor(() => expect(s.plant.truth.length).toBeGreaterThan(20), { timeout: 30_000 });
    await s.plant.stopServer();
    await sleep(1500);
    await s.plant.restartServer();
    await waitForAllLanded(s);
    await sleep(500);
    expectExactlyOnce(s);
  });

  it('a CRM validation error dead-letters that event with its reason, the rest flows, and replay after the fix lands it once', async () => {
    stack = await startStack({ workOrdersPerLine: 4 });
    const s = stack;
    s.crm.addValidationRule('Production_Milestone__c', {
      field: 'Work_Order__c',
      test: (value, record) => !(value === 'WO-L1-0002' && record.Milestone__c === 'completed'),
      message: 'Completed work orders need a quality sign-off',
    });
    s.plant.resume();
    await s.plant.finished();
    await vi.waitFor(() => expect(s.crm.records('Production_Milestone__c').length).toBe(s.plant.truth.length - 1), { timeout: 30_000 });
    const cli = ['--import', 'tsx', join(import.meta.dirname, '../../installers/plantlink.ts'), 'relay', 'dead-letters', '--config', s.relayFile];
    const listed = await run(process.execPath, [...cli, '--json']);
    const dead = JSON.parse(listed.stdout) as { inboxSeq: number; subject: string; errorCode: string; lastError: string }[];
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ subject: 'work-order/WO-L1-0002', errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' });
    expect(dead[0]!.lastError).toContain('quality sign-off');
    // The work order's later state still landed: one stuck event does not block its neighbours.
    s.crm.clearValidationRules();
    const replayed = await run(process.execPath, [...cli, '--replay', String(dead[0]!.inboxSeq)]);
    expect(replayed.stdout).toContain('1 dead letter(s) queued');
    await vi.waitFor(() => expect(s.crm.records('Production_Milestone__c').length).toBe(s.plant.truth.length), { timeout: 30_000 });
    await sleep(500);
    expectExactlyOnce(s);
    expect((await run(process.execPath, cli)).stdout).toContain('no dead letters');
  });
});
