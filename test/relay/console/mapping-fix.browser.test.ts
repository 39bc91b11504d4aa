/**
 * A dead letter caused by a wrong mapping, fixed in the relay's config and replayed from the
 * browser (Debian's chromium via playwright-core): the relay maps a field the CRM does not have,
 * Salesforce (emulator) refuses it with INVALID_FIELD, the console files it under "mapping";
 * the relay is restarted with the corrected mapping on the same inbox, an operator replays it
 * from the page, and the trace shows it delivered with its CRM record id, once.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { RelayConfig } from '../../../relay/config.js';
import { hashToken, issueToken } from '../../../relay/ingress/agent-auth.js';
import { Relay } from '../../../relay/relay.js';
import { defaultSalesforceMappings } from '../../../relay/sinks/salesforce/index.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

const CHROMIUM = process.env.PLANTLINK_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = '/tmp/console-shots';
const OPERATOR = { name: 'olga', token: 'operator-token-0123456789' };
const WAIT = { timeout: 20_000, interval: 50 };

let crm: SalesforceEmulator;
let relay: Relay | undefined;
let browser: Browser;
let dir: string;
let cleanup: () => void;
const agent = issueToken('agent-1');

/** The relay's config, with the milestone mapping as given. */
function config(milestoneFields: Record<string, string>) {
  const mappings = defaultSalesforceMappings.map((m) => (m.object === 'Production_Milestone__c' ? { ...m, fields: milestoneFields } : m));
  return RelayConfig.parse({
    relay: { dataDir: join(dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
    agents: [{ id: 'agent-1', plant: 'P1', tokenHash: agent.tokenHash }],
    sinks: [{ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings }],
    routes: [{ sinks: ['crm'] }],
    api: { tokens: [{ name: OPERATOR.name, role: 'operator', tokenHash: hashToken(OPERATOR.token) }] },
    delivery: { pollMs: 50, backoff: { initialMs: 50, maxMs: 200 } },
  });
}

const GOOD_FIELDS = defaultSalesforceMappings.find((m) => m.object === 'Production_Milestone__c')!.fields as Record<string, string>;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`the console browser test needs chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set PLANTLINK_CHROMIUM)`);
  ({ dir, cleanup } = tempDir('plantlink-console-mapping-'));
  mkdirSync(SHOTS, { recursive: true });
  crm = await SalesforceEmulator.start();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
});

afterAll(async () => {
  await browser?.close();
  await relay?.stop();
  await crm?.stop();
  cleanup?.();
});

describe('console: a mapping fixed, then the dead letter replayed', () => {
  it('files the refusal under "mapping", and after the relay runs the fixed mapping a replay from the page delivers it once', async () => {
    // A mapping with a field the CRM object does not have.
    relay = new Relay(config({ ...GOOD_FIELDS, Line__c: 'data.equipment' }), { logger: testLogger() });
    await relay.start();
    const ws = new WebSocket(relay.wsUrl, ['plantlink.v1'], { headers: { Authorization: `Bearer ${agent.token}` } });
    const event = milestoneEvent('WO-MAP-1', 'released', 1, { salesOrder: 'SO-5' });
    await new Promise<void>((resolve, reject) => {
      ws.once('error', reject);
      ws.on('message', (d) => {
        const f = JSON.parse(d.toString()) as { t: string };
        if (f.t === 'welcome') ws.send(JSON.stringify({ t: 'batch', batch: 1, events: [event] }));
        if (f.t === 'ack') resolve();
      });
    });
    ws.terminate();
    await vi.waitFor(async () => expect(await relay!.store.listDeliveries({ status: 'dead' })).toHaveLength(1), WAIT);
    expect(crm.records('Production_Milestone__c')).toHaveLength(0);

    // The operator fixes the mapping in the relay's config and restarts it: same inbox.
    await relay.stop();
    relay = new Relay(config(GOOD_FIELDS), { logger: testLogger() });
    await relay.start();
    const base = `http://127.0.0.1:${relay.port}`;

    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${base}/console/login`);
    await page.fill('input[name=name]', OPERATOR.name);
    await page.fill('input[name=token]', OPERATOR.token);
    await page.click('button[type=submit]');
    await page.waitForURL(/\/console\/$/);
    await page.click('a[href="#/dead-letters"]');
    await page.waitForSelector('[data-testid="cause-mapping"]');
    expect(await page.textContent('[data-testid="cause-mapping"]')).toContain('INVALID_FIELD');
    const row = page.locator('[data-testid="dead-letter-row"]', { hasText: 'WO-MAP-1' });
    expect(await row.textContent()).toContain("No such column 'Line__c'");
    if (existsSync(SHOTS)) await page.screenshot({ path: join(dir, '20-mapping-dead-letter.png'), fullPage: true });
    await row.locator('[data-testid="replay-one"]').click();
    await page.waitForSelector('[data-testid="no-dead-letters"]', WAIT);

    await vi.waitFor(() => expect(crm.records('Production_Milestone__c').filter((r) => r.externalId === event.id)).toHaveLength(1), WAIT);
    await page.goto(`${base}/console/#/trace?key=WO-MAP-1`);
    await page.waitForSelector('[data-testid="trace-event"] [data-testid="hop-delivered"]', WAIT);
    const shown = await page.locator('[data-testid="record-id"]').allTextContents();
    expect(shown).toContain(crm.record('Production_Milestone__c', event.id)!.id);
    expect(await page.textContent('[data-testid="hop-delivered"]')).toContain('after 2 attempts');
    await page.screenshot({ path: join(dir, '21-mapping-replayed-trace.png'), fullPage: true });
    copyFileSync(join(dir, '21-mapping-replayed-trace.png'), join(SHOTS, '21-mapping-replayed-trace.png'));
    await context.close();
  });
});
