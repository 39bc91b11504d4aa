/**
 * The console's event trace and reconciliation pages in a real browser (Debian's chromium via
 * playwright-core) against a real relay with a live agent (file drop source): an operator
 * watches a milestone appear in the trace with every hop, from the agent's read to the CRM
 * record id; then finds and repairs drift injected in the CRM emulator; a viewer sees the
 * report but gets no repair. Screenshots go to /tmp/console-shots/.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Agent } from '../../../agent/agent.js';
import type { AgentConfig } from '../../../agent/config.js';
import { RelayConfig } from '../../../relay/config.js';
import { hashToken, issueToken } from '../../../relay/ingress/agent-auth.js';
import { Relay } from '../../../relay/relay.js';
import { defaultSalesforceMappings } from '../../../relay/sinks/salesforce/index.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { fileAgentConfig } from '../../helpers/file-agent.js';
import { tempDir, testLogger } from '../../helpers/temp.js';

const CHROMIUM = process.env.PLANTLINK_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = '/tmp/console-shots';
const OPERATOR = { name: 'olga', token: 'operator-token-0123456789' };
const VIEWER = { name: 'vic', token: 'viewer-token-0123456789' };
const WAIT = { timeout: 30_000, interval: 100 };

let crm: SalesforceEmulator;
let relay: Relay;
let agent: Agent;
let agentConfig: AgentConfig;
let browser: Browser;
let base: string;
let dir: string;
let cleanup: () => void;

function drop(file: string, rows: [string, string][], atMs = Date.now()): void {
  const folder = (agentConfig.sources[0] as { folder: string }).folder;
  const lines = rows.map(([wo, m], i) => JSON.stringify({ WO: wo, Milestone: m, Line: 'L2', At: new Date(atMs + i).toISOString() }));
  writeFileSync(join(folder, `${file}.part`), `${lines.join('\n')}\n`);
  renameSync(join(folder, `${file}.part`), join(folder, file));
}

async function shot(page: Page, name: string): Promise<void> {
  const file = join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  copyFileSync(file, join(SHOTS, `${name}.png`));
}

async function login(page: Page, who: { name: string; token: string }): Promise<void> {
  await page.goto(`${base}/console/login`);
  await page.fill('input[name=name]', who.name);
  await page.fill('input[name=token]', who.token);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/console\/$/);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`the console browser test needs chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set PLANTLINK_CHROMIUM)`);
  ({ dir, cleanup } = tempDir('plantlink-console-trace-'));
  mkdirSync(SHOTS, { recursive: true });
  crm = await SalesforceEmulator.start();
  const a = issueToken('agent-a');
  relay = new Relay(
    RelayConfig.parse({
      relay: { dataDir: join(dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
      agents: [{ id: 'agent-a', plant: 'plant-a', tokenHash: a.tokenHash }],
      sinks: [{ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings }],
      routes: [{ sinks: ['crm'] }],
      api: { tokens: [{ name: OPERATOR.name, role: 'operator', tokenHash: hashToken(OPERATOR.token) }, { name: VIEWER.name, role: 'viewer', tokenHash: hashToken(VIEWER.token) }] },
      delivery: { pollMs: 50, backoff: { initialMs: 50, maxMs: 200 } },
    }),
    { logger: testLogger() },
  );
  await relay.start();
  base = `http://127.0.0.1:${relay.port}`;
  agentConfig = fileAgentConfig({ dir, url: relay.wsUrl, token: a.token, id: 'agent-a', plant: 'plant-a' });
  agent = new Agent(agentConfig, { logger: testLogger() });
  await agent.start();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await agent?.stop();
  await relay?.stop();
  await crm?.stop();
  cleanup?.();
});

describe('console: event trace and reconciliation', () => {
  it('an operator watches a milestone appear in the trace, hop by hop, down to the CRM record id', async () => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await login(page, OPERATOR);
    await page.click('a[href="#/trace"]');
    await page.fill('[data-testid="trace-key"]', 'WO-LIVE-1');
    await page.click('[data-testid="trace-search"]');
    await page.waitForSelector('[data-testid="trace-none"]');

    // The plant reports it now; the page follows the key live.
    drop('live-1.jsonl', [['WO-LIVE-1', 'released'], ['WO-LIVE-1', 'started']]);
    await page.waitForSelector('[data-testid="trace-event"]:nth-of-type(2) [data-testid="hop-delivered"]', WAIT);
    await page.waitForFunction('document.querySelectorAll(\'[data-testid="trace-event"] [data-testid="hop-delivered"]\').length === 2', undefined, WAIT);
    const cards = page.locator('[data-testid="trace-event"]');
    expect(await cards.count()).toBe(2);
    const first = cards.first();
    expect(await first.locator('h3').textContent()).toMatch(/delivered.*work-order\/WO-LIVE-1.*released/);
    // Every hop has its time: read at the source, outbox, relay, routed, delivered.
    for (const hop of ['read', 'outbox', 'received', 'routed', 'delivered']) {
      expect(await first.locator(`[data-testid="hop-${hop}"] .hop-time`).textContent()).toMatch(/\d\d:\d\d:\d\d\.\d{3}/);
    }
    expect(await first.locator('[data-testid="hop-routed"]').textContent()).toContain('routed to crm');
    // The CRM record ids shown are the emulator's: the milestone record and the work order.
    const shownIds = await first.locator('[data-testid="record-id"]').allTextContents();
    const milestone = crm.records('Production_Milestone__c').find((r) => r.fields.Work_Order__c === 'WO-LIVE-1' && r.fields.Milestone__c === 'released')!;
    expect(shownIds).toContain(milestone.id);
    expect(shownIds).toContain(crm.record('Production_Order__c', 'WO-LIVE-1')!.id);
    await shot(page, '10-trace-live');

    // The same event is found by its correlation id, and by its event id.
    await page.goto(`${base}/console/#/trace?key=${encodeURIComponent(String(milestone.externalId))}`);
    await page.waitForSelector('[data-testid="trace-event"]');
    expect(await page.locator('[data-testid="trace-event"]').count()).toBe(1);

    // The agent-to-CRM latency of those deliveries, from the agent's readtime, on the plants page.
    await page.click('a[href="#/agents"]');
    await page.waitForSelector('[data-testid="latency-chart"] canvas');
    expect(await page.textContent('[data-testid="latency-now"]', WAIT)).toMatch(/p50 \d+(\.\d)? (ms|s), p95 \d+(\.\d)? (ms|s), \d+ delivered/);
    await shot(page, '13-agents-latency');
    await context.close();
  });

  it('an operator finds drift injected in the CRM on the reconciliation page and repairs it; a viewer gets the report without repair', async () => {
    drop('drift.jsonl', [['WO-D1', 'released'], ['WO-D2', 'released'], ['WO-D1', 'completed']]);
    await vi.waitFor(() => expect(crm.record('Production_Order__c', 'WO-D1')?.fields.Status__c).toBe('completed'), WAIT);
    await vi.waitFor(async () => expect((await relay.store.counts()).pending).toBe(0), WAIT);
    // Behind the relay's back: a milestone deleted, a work order regressed.
    const d2 = crm.records('Production_Milestone__c').find((r) => r.fields.Work_Order__c === 'WO-D2')!;
    crm.deleteRecord('Production_Milestone__c', String(d2.externalId));
    crm.setFields('Production_Order__c', 'WO-D1', { Status__c: 'released' });

    const viewerContext = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const viewer = await viewerContext.newPage();
    await login(viewer, VIEWER);
    await viewer.click('a[href="#/reconcile"]');
    await viewer.click('[data-testid="reconcile-run"]');
    await viewer.waitForSelector('[data-testid="finding-missing"]', WAIT);
    expect(await viewer.locator('[data-testid="reconcile-repair"]').count()).toBe(0);
    await viewerContext.close();

    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    page.on('dialog', (d) => void d.accept());
    await login(page, OPERATOR);
    await page.click('a[href="#/reconcile"]');
    await page.click('[data-testid="reconcile-run"]');
    await page.waitForSelector('[data-testid="finding-missing"]', WAIT);
    expect(await page.textContent('[data-testid="finding-missing"]')).toContain('work-order/WO-D2');
    const stale = (await page.textContent('[data-testid="finding-stale"]'))!;
    expect(stale).toContain('work-order/WO-D1');
    expect(stale).toContain('Status__c is "released", we wrote "completed"');
    await shot(page, '11-reconcile-drift');

    await page.click('[data-testid="reconcile-repair"]');
    await expect.poll(() => page.textContent('[data-testid="repair-result"]'), WAIT).toContain('2 re-sent to crm');
    await vi.waitFor(() => {
      expect(crm.records('Production_Milestone__c').filter((r) => r.externalId === d2.externalId)).toHaveLength(1);
      expect(crm.record('Production_Order__c', 'WO-D1')?.fields.Status__c).toBe('completed');
    }, WAIT);
    await page.click('[data-testid="reconcile-run"]');
    await page.waitForSelector('[data-testid="reconcile-clean"]', WAIT);
    await shot(page, '12-reconcile-repaired');

    await page.click('a[href="#/audit"]');
    await page.waitForSelector('[data-testid="audit-row"]');
    expect(await page.textContent('[data-testid="audit-row"]')).toMatch(/olga.*reconciliation repair: day \d{4}-\d\d-\d\d/);
    await context.close();
  });
});
