/**
 * `npm start` is the first thing a newcomer runs: the finite demo must bring every source's
 * data (OPC UA lines, SOAP ERP shipments, MES CSV drops) into the CRM emulator, each
 * milestone once, and exit 0 (it exits 1 when anything is missing after a minute). While it
 * runs, the relay's and the agent's /metrics show the flow; at the end, reconciliation finds
 * and repairs two records edited in the CRM behind plantlink's back.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'plantlink-demo-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('plantlink demo', () => {
  it('runs a finite demo in which milestones from OPC UA and from dropped MES files, and shipments from the SOAP ERP, land in the CRM, with metrics on the way', async () => {
    const cli = join(import.meta.dirname, '../../installers/plantlink.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'demo', '--work-orders', '1', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let scraped: Promise<{ relay: string; agent: string }> | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      // Scrape once the first milestone has landed: the demo is mid-flow.
      if (!scraped && /CRM {2}WO-/.test(stdout)) {
        const relayUrl = /relay metrics +(http\S+)/.exec(stdout)![1]!;
        const agentUrl = /agent metrics +(http\S+)/.exec(stdout)![1]!;
        scraped = Promise.all([fetch(relayUrl).then((r) => r.text()), fetch(agentUrl).then((r) => r.text())]).then(([relay, agent]) => ({ relay, agent }));
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, stdout).toBe(0);
    const summary = /the lines made (\d+) milestones and the MES exported (\d+); (\d+) landed in the CRM \((\d+) work orders, (\d+) shipments\)/.exec(stdout);
    expect(summary, stdout).not.toBeNull();
    const [, lineMilestones, mesRows, landed, , shipments] = summary!.map(Number);
    expect(lineMilestones).toBeGreaterThan(0);
    expect(mesRows).toBeGreaterThan(0);
    expect(landed).toBe(lineMilestones! + mesRows!);
    expect(shipments).toBeGreaterThan(0);
    expect(stdout).toMatch(/CRM {2}WO-PACK1-0001 +released/);
    expect(stdout).toMatch(/CRM {2}SH-\d+ +shipment /);
    // Drift injected in the CRM at the end is found by reconciliation and repaired.
    const reconciliation = stdout.slice(stdout.indexOf('reconciliation: a CRM user deletes'));
    expect(reconciliation).toMatch(/^missing +plant-1 +work-order\/\S+ +crm +Production_Milestone__c\//m);
    expect(reconciliation).toMatch(/^stale +plant-1 +work-order\/\S+ +crm +Production_Order__c\//m);
    expect(reconciliation).toMatch(/re-sent 2 event\(s\) on crm/);
    expect(reconciliation.trimEnd()).toMatch(/No drift: every event of the day is where it should be\.[\s\S]*demo files kept in/);

    expect(scraped, 'no milestone landed while the demo ran').toBeDefined();
    const metrics = await scraped!;
    expect(metrics.relay).toMatch(/^plantlink_relay_events_stored_total\{plant="plant-1"\} [1-9]/m);
    expect(metrics.relay).toMatch(/^plantlink_relay_deliveries_total\{[^}]*outcome="delivered"[^}]*\} [1-9]/m);
    expect(metrics.agent).toMatch(/^plantlink_agent_events_appended_total\{source="line-opcua"\} [1-9]/m);
  }, 150_000);
});
