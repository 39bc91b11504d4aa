/**
 * The web console in a real browser (Debian's chromium driven by playwright-core) against a
 * real relay: events come in through its WebSocket ingress from an agent connection, the
 * Salesforce emulator refuses two of them with validation rules (dead letters), and people
 * log in, look, fix, replay and check the audit. Screenshots go to the test's temp dir and
 * the final ones to /tmp/console-shots/.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type { CloudEventV1 } from '../../../protocols/events/envelope.js';
import { RelayConfig } from '../../../relay/config.js';
import { hashToken, issueToken } from '../../../relay/ingress/agent-auth.js';
import { Relay } from '../../../relay/relay.js';
import { defaultSalesforceMappings } from '../../../relay/sinks/salesforce/index.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { milestoneEvent, shipmentEvent } from '../sinks/salesforce/fixtures.js';

const CHROMIUM = process.env.PLANTLINK_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = '/tmp/console-shots';
const OPERATOR = { name: 'olga', token: 'operator-token-0123456789' };
const VIEWER = { name: 'vic', token: 'viewer-token-0123456789' };

let crm: SalesforceEmulator;
let relay: Relay;
let browser: Browser;
let agentSocket: WebSocket;
let base: string;
let dir: string;
let cleanup: () => void;
let batchNo = 0;

function addRules(): void {
  crm.addValidationRule('Production_Milestone__c', { field: 'Work_Order__c', test: (v) => !String(v).startsWith('WO-BAD'), message: 'work order is on credit hold' });
  crm.addValidationRule('Shipment__c', { field: 'Status__c', test: (v) => v !== 'exception', message: 'an exception needs a reason code' });
}

/** An agent's connection through the relay's real WebSocket ingress. */
async function connectAgent(url: string, token: string): Promise<WebSocket> {
  const ws = new WebSocket(url, ['plantlink.v1'], { headers: { Authorization: `Bearer ${token}` } });
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (d) => {
      if ((JSON.parse(d.toString()) as { t: string }).t === 'welcome') resolve();
    });
  });
  return ws;
}

async function sendBatch(events: CloudEventV1[]): Promise<void> {
  const batch = ++batchNo;
  const acked = new Promise<void>((resolve) => {
    const on = (d: WebSocket.RawData) => {
      const f = JSON.parse(d.toString()) as { t: string; batch?: number; stored?: number };
      if (f.t === 'ack' && f.batch === batch) {
        agentSocket.off('message', on);
        resolve();
      }
    };
    agentSocket.on('message', on);
  });
  agentSocket.send(JSON.stringify({ t: 'batch', batch, events }));
  await acked;
}

async function waitForDead(count: number): Promise<void> {
  await vi.waitFor(async () => expect(await relay.store.listDeliveries({ status: 'dead' })).toHaveLength(count), { timeout: 10_000, interval: 50 });
}

async function shot(page: Page, name: string): Promise<void> {
  const file = join(dir, 'shots', `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  copyFileSync(file, join(SHOTS, `${name}.png`));
}

async function login(page: Page, who: { name: string; token: string }): Promise<void> {
  await page.goto(`${base}/console/`);
  await page.waitForURL(/\/console\/login$/);
  await page.fill('input[name=name]', who.name);
  await page.fill('input[name=token]', who.token);
  await page.click('button[type=submit]');
}

/** A POST from inside the page (same origin, the session cookie rides along). */
function postFromPage(page: Page, path: string, body: unknown, csrf?: string): Promise<{ status: number; body: string }> {
  return page.evaluate(
    async ({ path, body, csrf }) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (csrf) headers['x-csrf-token'] = csrf;
      const res = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body) });
      return { status: res.status, body: await res.text() };
    },
    { path, body, csrf },
  );
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`the console browser test needs chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set PLANTLINK_CHROMIUM)`);
  ({ dir, cleanup } = tempDir('plantlink-console-'));
  mkdirSync(join(dir, 'shots'), { recursive: true });
  mkdirSync(SHOTS, { recursive: true });
  crm = await SalesforceEmulator.start();
  addRules();
  const agent = issueToken('agent-1');
  const config = RelayConfig.parse({
    relay: { dataDir: join(dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
    agents: [{ id: 'agent-1', plant: 'P1', tokenHash: agent.tokenHash }],
    sinks: [{ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings }],
    routes: [{ sinks: ['crm'] }],
    api: { tokens: [{ name: OPERATOR.name, role: 'operator', tokenHash: hashToken(OPERATOR.token) }, { name: VIEWER.name, role: 'viewer', tokenHash: hashToken(VIEWER.token) }] },
    delivery: { pollMs: 50, backoff: { initialMs: 50, maxMs: 200 } },
    console: { maxFailedLogins: 3 },
  });
  relay = new Relay(config, { logger: testLogger() });
  await relay.start();
  base = `http://127.0.0.1:${relay.port}`;
  agentSocket = await connectAgent(relay.wsUrl, agent.token);
  agentSocket.send(JSON.stringify({ t: 'status', pending: 3, pendingBytes: 2048, oldestPendingAgeMs: 95_000 }));
  await sendBatch([
    milestoneEvent('WO-BAD', 'released', 1, { salesOrder: 'SO-77' }),
    milestoneEvent('WO-OK', 'released', 2, { salesOrder: 'SO-78' }),
    shipmentEvent('SHP-9', 'exception', 3),
  ]);
  await waitForDead(2);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

afterAll(async () => {
  await browser?.close();
  agentSocket?.terminate();
  await relay?.stop();
  await crm?.stop();
  cleanup?.();
});

describe('web console', () => {
  it('an operator logs in, sees the plant and the dead letters by cause and impact, fixes the CRM, replays from the page, and the replay is delivered once and audited', async () => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();

    // A wrong token does not log in.
    await login(page, { name: OPERATOR.name, token: 'not-the-token' });
    await expect.poll(() => page.textContent('.error')).toContain('Name or token not accepted');
    expect(page.url()).toMatch(/\/console\/login$/);
    await shot(page, '01-login-refused');

    await login(page, OPERATOR);
    await page.waitForURL(/\/console\/$/);
    await page.waitForSelector('[data-testid="agent-agent-1"]');
    const agentRow = (await page.textContent('[data-testid="agent-agent-1"]'))!;
    expect(agentRow).toContain('yes, for');
    expect(agentRow).toContain('127.0.0.1');
    expect(await page.textContent('[data-testid="plant-P1"]')).toContain('1/1 connected');
    expect(await page.textContent('[data-testid="plant-P1"] .figures')).toMatch(/^3waiting at the plant1 min \d+ soldest pending/); // as the agent reported
    await page.waitForSelector('[data-testid="throughput-chart"] canvas');
    expect(await page.textContent('section:has([data-testid="throughput-chart"]) h2')).toContain('3 stored');
    await shot(page, '02-agents-operator');

    await page.click('a[href="#/dead-letters"]');
    await page.waitForSelector('[data-testid="cause-validation"]');
    expect(await page.textContent('[data-testid="cause-validation"]')).toMatch(/FIELD_CUSTOM_VALIDATION_EXCEPTION/);
    expect(await page.textContent('[data-testid="cause-validation"] .count')).toBe('2');
    const orders = (await page.textContent('[data-testid="impact-orders_blocked"]'))!;
    expect(orders).toContain('WO-BAD');
    expect(orders).toContain('SO-77');
    expect(orders).not.toContain('WO-OK');
    expect(await page.textContent('[data-testid="impact-shipments_not_reflected"]')).toContain('SHP-9');
    await page.locator('[data-testid="dead-letter-row"]', { hasText: 'WO-BAD' }).getByText('Payload').click();
    expect(await page.textContent('tr.payload pre')).toContain('"workOrder": "WO-BAD"');
    await shot(page, '03-dead-letters-operator');

    // A POST without the CSRF token is refused, even with a valid operator session.
    const forged = await postFromPage(page, '/console/api/replay', { filter: { all: true } });
    expect(forged.status).toBe(403);
    expect(forged.body).toContain('CSRF');

    // Fix the cause in the CRM, then replay everything of that cause from the page.
    crm.clearValidationRules();
    await page.click('[data-testid="replay-cause-validation"]');
    await expect.poll(() => page.textContent('[data-testid="replay-message"]')).toContain('Replayed 2 of 2');
    await page.waitForSelector('[data-testid="no-dead-letters"]', { timeout: 15_000 });
    await vi.waitFor(() => expect(crm.records('Shipment__c').filter((r) => r.externalId === 'SHP-9')).toHaveLength(1), { timeout: 10_000 });
    expect(crm.records('Production_Milestone__c').filter((r) => r.fields.Work_Order__c === 'WO-BAD')).toHaveLength(1);
    expect(await relay.store.counts()).toMatchObject({ dead: 0, pending: 0 });
    await shot(page, '04-dead-letters-replayed');

    await page.click('a[href="#/audit"]');
    await page.waitForSelector('[data-testid="audit-row"]');
    const audit = (await page.textContent('[data-testid="audit-row"]'))!;
    expect(audit).toContain('olga');
    expect(audit).toContain('cause=validation');
    expect(audit).toMatch(/22$/); // matched 2, replayed 2
    await shot(page, '05-audit');

    await page.click('[data-testid="logout"]');
    await page.waitForURL(/\/console\/login$/);
    expect((await page.request.get(`${base}/console/api/session`)).status()).toBe(401);
    await context.close();
  });

  it('a viewer sees dead letters without replay buttons, and a forged replay with the viewer\'s session and CSRF token is refused 403', async () => {
    addRules();
    await sendBatch([milestoneEvent('WO-BAD-2', 'released', 4, { salesOrder: 'SO-90' })]);
    await waitForDead(1);

    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await login(page, VIEWER);
    await page.waitForURL(/\/console\/$/);
    expect(await page.textContent('[data-testid="who"]')).toContain('viewer');
    await page.click('a[href="#/dead-letters"]');
    await page.waitForSelector('[data-testid="dead-letter-row"]');
    expect(await page.textContent('[data-testid="dead-letter-row"]')).toContain('WO-BAD-2');
    expect(await page.textContent('[data-testid="viewer-note"]')).toContain('needs the operator role');
    expect(await page.locator('[data-testid="replay-one"], [data-testid="replay-selected"], [data-testid^="replay-cause-"]').count()).toBe(0);
    await shot(page, '06-dead-letters-viewer');

    const { csrf } = (await (await page.request.get(`${base}/console/api/session`)).json()) as { csrf: string };
    const forged = await postFromPage(page, '/console/api/replay', { items: [{ sink: 'crm', seq: 1 }] }, csrf);
    expect(forged.status).toBe(403);
    expect(forged.body).toContain('viewer');
    expect(await relay.store.counts()).toMatchObject({ dead: 1 });
    await context.close();
  });

  it('an operator replays a selection: the ticked dead letter is delivered and the audit shows the second replay', async () => {
    crm.clearValidationRules();
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await login(page, OPERATOR);
    await page.waitForURL(/\/console\/$/);
    await page.goto(`${base}/console/#/dead-letters`);
    const row = page.locator('[data-testid="dead-letter-row"]', { hasText: 'WO-BAD-2' });
    await row.locator('input[type=checkbox]').check();
    await page.click('[data-testid="replay-selected"]');
    await expect.poll(() => page.textContent('[data-testid="replay-message"]')).toContain('Replayed 1 of 1 (1 selected)');
    await page.waitForSelector('[data-testid="no-dead-letters"]', { timeout: 15_000 });
    await vi.waitFor(() => expect(crm.records('Production_Milestone__c').filter((r) => r.fields.Work_Order__c === 'WO-BAD-2')).toHaveLength(1), { timeout: 10_000 });
    await page.click('a[href="#/audit"]');
    await expect.poll(() => page.locator('[data-testid="audit-row"]').count()).toBe(2);
    expect(await page.textContent('[data-testid="audit-row"]')).toMatch(/olga.*one: crm #\d+11$/);
    await shot(page, '07-audit-two-replays');
    await context.close();
  });

  it('refuses logins without the form\'s CSRF token, and after too many failures from one address', async () => {
    const form = async (csrf: string | undefined, token: string) => {
      const page = await fetch(`${base}/console/login`);
      const cookie = page.headers.get('set-cookie')!.split(';')[0]!;
      const fieldCsrf = /name="csrf" value="([^"]+)"/.exec(await page.text())![1]!;
      return fetch(`${base}/console/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
        body: new URLSearchParams({ name: OPERATOR.name, token, csrf: csrf ?? fieldCsrf }),
      });
    };
    expect((await form('forged', OPERATOR.token)).status).toBe(403);
    expect((await form(undefined, OPERATOR.token)).status).toBe(303);
    for (let i = 0; i < 3; i++) expect((await form(undefined, 'wrong')).status).toBe(401);
    const limited = await form(undefined, OPERATOR.token);
    expect(limited.status).toBe(429);
    expect(await limited.text()).toContain('Too many failed logins');
  });
});
