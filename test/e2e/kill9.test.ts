/**
 * kill -9 of the agent and of the relay while milestones stream and the plant runs on:
 * after restart, every milestone the plant made is in the CRM exactly once, and every
 * work order's status ended where the plant's did.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { expectExactlyOnce, startStack, SUBSCRIBED, waitForAllLanded, type Stack } from './stack.js';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('crash safety (kill -9)', { timeout: 150_000 }, () => {
  it('agent killed -9 three times mid-stream while the plant runs on: every milestone in the CRM exactly once', async () => {
    stack = await startStack();
    const s = stack;
    s.plant.resume();
    for (const after of [20, 45, 70]) {
      await vi.waitFor(() => expect(s.plant.truth.length).toBeGreaterThanOrEqual(after), { timeout: 30_000 });
      // The line runs on while the agent is dead (several work-order steps pass); on restart
      // the agent replays the server's history since its last committed values.
      await s.agent.kill9();
      await sleep(400);
      const subscribed = s.agent.waitForLog(SUBSCRIBED);
      s.agent.start();
      await subscribed;
    }
    await waitForAllLanded(s);
    await sleep(500); // let any stray redelivery land before counting
    expectExactlyOnce(s);
    expect(s.crm.stats().created).toBe(s.crm.records('Production_Milestone__c').length + s.crm.records('Production_Order__c').length);
    // The operator's view agrees: nothing pending, nothing quarantined, source and uplink up.
    await vi.waitFor(async () => {
      const cli = ['--import', 'tsx', join(import.meta.dirname, '../../installers/plantlink.ts'), 'agent', 'status', '--config', join(s.dir, 'agent.yaml'), '--json'];
      const status = JSON.parse((await promisify(execFile)(process.execPath, cli)).stdout);
      expect(status).toMatchObject({ outbox: { pending: 0, rejected: 0 }, live: { state: 'RUNNING', uplink: { state: 'connected' }, sources: [{ name: 'line-opcua', state: 'connected' }] } });
    }, { timeout: 15_000, interval: 1000 });
  });

  it('relay killed -9 twice mid-stream: the agent buffers, the relay redelivers, the CRM gets each milestone once', async () => {
    stack = await startStack();
    const s = stack;
    s.plant.resume();
    for (const after of [25, 60]) {
      await vi.waitFor(() => expect(s.plant.truth.length).toBeGreaterThanOrEqual(after), { timeout: 30_000 });
      await s.relay.kill9();
      await sleep(300); // the plant runs on; the agent's outbox holds what it reads
      const started = s.relay.waitForLog(/relay started/);
      s.relay.start();
      await started;
    }
    await waitForAllLanded(s);
    await sleep(500);
    expectExactlyOnce(s);
  });
});
