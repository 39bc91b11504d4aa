/**
 * Reconciliation end to end: a real agent (file drop source) sends milestones and its ledger to
 * a real relay delivering to the Salesforce emulator; then records are deleted, duplicated and
 * regressed in the emulator behind the relay's back. `plantlink relay reconcile` (the CLI, as
 * a child process, through the operator API) must find each one on the right order, and
 * `--repair` must restore them so that every record is in the CRM exactly once, as written.
 */
import { execFile } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Agent } from '../../../agent/agent.js';
import type { AgentConfig } from '../../../agent/config.js';
import { RelayConfig } from '../../../relay/config.js';
import { hashToken, issueToken } from '../../../relay/ingress/agent-auth.js';
import type { ReconcileReport, RepairResult } from '../../../relay/reconcile/reconcile.js';
import { Relay } from '../../../relay/relay.js';
import { defaultSalesforceMappings } from '../../../relay/sinks/salesforce/index.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { fileAgentConfig } from '../../helpers/file-agent.js';
import { tempDir, testLogger } from '../../helpers/temp.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const run = promisify(execFile);
const VIEWER = 'viewer-token-0123456789';
const OPERATOR = 'operator-token-0123456789';
const WAIT = { timeout: 30_000, interval: 100 };
const MILESTONE = 'Production_Milestone__c';
const ORDER = 'Production_Order__c';

let crm: SalesforceEmulator;
let relay: Relay;
let agent: Agent;
let agentConfig: AgentConfig;
let cleanup: () => void;
let base: string;
let day: string;
let t0: number;

/** The milestones the plant's MES reports, in order. */
const PLAN: [wo: string, milestone: string][] = [
  ['WO-R1', 'released'],
  ['WO-R2', 'released'],
  ['WO-R3', 'released'],
  ['WO-R1', 'started'],
  ['WO-R2', 'started'],
  ['WO-R1', 'completed'],
];

function drop(file: string, rows: [string, string][], atMs: number): void {
  const folder = (agentConfig.sources[0] as { folder: string }).folder;
  const lines = rows.map(([wo, m], i) => JSON.stringify({ WO: wo, Milestone: m, Line: 'L1', At: new Date(atMs + i * 1000).toISOString() }));
  writeFileSync(join(folder, `${file}.part`), `${lines.join('\n')}\n`);
  renameSync(join(folder, `${file}.part`), join(folder, file));
}

async function cli(args: string[], token: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = ['--import', 'tsx', join(ROOT, 'installers/plantlink.ts'), 'relay', 'reconcile', '--url', base, '--day', day, ...args];
  try {
    const r = await run(process.execPath, argv, { cwd: ROOT, env: { ...process.env, PLANTLINK_API_TOKEN: token } });
    return { code: 0, ...r };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

async function report(): Promise<ReconcileReport> {
  const r = await fetch(`${base}/v1/reconcile?day=${day}`, { headers: { authorization: `Bearer ${VIEWER}` } });
  expect(r.status).toBe(200);
  return (await r.json()) as ReconcileReport;
}

/** The id of the event that reported `milestone` for `wo` (the milestone record's external id). */
function eventIdOf(wo: string, milestone: string): string {
  const r = crm.records(MILESTONE).find((x) => x.fields.Work_Order__c === wo && x.fields.Milestone__c === milestone);
  if (!r) throw new Error(`no milestone record ${wo} ${milestone}`);
  return String(r.externalId);
}

beforeAll(async () => {
  const t = tempDir('plantlink-reconcile-');
  cleanup = t.cleanup;
  crm = await SalesforceEmulator.start();
  const a = issueToken('agent-a');
  relay = new Relay(
    RelayConfig.parse({
      relay: { dataDir: join(t.dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
      agents: [{ id: 'agent-a', plant: 'plant-a', tokenHash: a.tokenHash }],
      sinks: [{ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings }],
      routes: [{ sinks: ['crm'] }],
      api: { tokens: [{ name: 'vic', role: 'viewer', tokenHash: hashToken(VIEWER) }, { name: 'olga', role: 'operator', tokenHash: hashToken(OPERATOR) }] },
      delivery: { pollMs: 50, backoff: { initialMs: 50, maxMs: 200 } },
    }),
    { logger: testLogger() },
  );
  await relay.start();
  base = `http://127.0.0.1:${relay.port}`;
  agentConfig = fileAgentConfig({ dir: t.dir, url: relay.wsUrl, token: a.token, id: 'agent-a', plant: 'plant-a' });
  agent = new Agent(agentConfig, { logger: testLogger() });
  await agent.start();

  // Today (UTC), far enough from midnight that all six milestones fall on one day.
  const now = Date.now();
  const midnight = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate());
  t0 = Math.max(midnight + 1000, now - 60_000);
  day = new Date(t0).toISOString().slice(0, 10);
  drop('day-1.jsonl', PLAN, t0);
  await vi.waitFor(() => {
    expect(crm.records(MILESTONE)).toHaveLength(6);
    expect(crm.record(ORDER, 'WO-R1')?.fields.Status__c).toBe('completed');
  }, WAIT);
  // The agent's ledger reaches the relay on its own (status ticks).
  await vi.waitFor(async () => expect(await relay.store.ledger({ fromMs: t0 - 1, toMs: t0 + 60_000, limit: 100 })).toHaveLength(6), WAIT);
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await relay?.stop();
  await crm?.stop();
  cleanup?.();
});

describe('reconciliation against the CRM', () => {
  it('finds nothing when the CRM holds exactly what the plant produced', async () => {
    const r = await cli(['--json'], VIEWER);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as ReconcileReport;
    expect(rep.findings).toEqual([]);
    expect(rep.plants).toEqual([{ plant: 'plant-a', ledger: 6, dropped: 0, notReceived: 0, received: 6, withoutLedger: 0 }]);
    // 6 milestone records and 3 work orders read back.
    expect(rep.lanes).toEqual([{ plant: 'plant-a', lane: 'crm', events: 6, delivered: 6, pending: 0, dead: 0, verified: true, recordsChecked: 9, missing: 0, duplicated: 0, stale: 0 }]);
    const table = await cli([], VIEWER);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('No drift');
  });

  it('finds a deleted, a duplicated and a regressed record on the right orders, and the repair restores each exactly once', async () => {
    const r2Started = eventIdOf('WO-R2', 'started');
    const r1Released = eventIdOf('WO-R1', 'released');
    expect(crm.deleteRecord(MILESTONE, r2Started)).toBe(1);
    expect(crm.deleteRecord(ORDER, 'WO-R3')).toBe(1);
    crm.seedDuplicate(MILESTONE, r1Released);
    expect(crm.setFields(ORDER, 'WO-R1', { Status__c: 'started' })).toBe(true);

    const found = await cli(['--json'], VIEWER);
    expect(found.code).toBe(1); // drift
    const rep = JSON.parse(found.stdout) as ReconcileReport;
    const summary = rep.findings.map((f) => [f.kind, f.subject, f.record?.object, f.record?.externalId]).sort();
    expect(summary).toEqual(
      [
        ['duplicated', 'work-order/WO-R1', MILESTONE, r1Released],
        ['missing', 'work-order/WO-R2', MILESTONE, r2Started],
        ['missing', 'work-order/WO-R3', ORDER, 'WO-R3'],
        ['stale', 'work-order/WO-R1', ORDER, 'WO-R1'],
      ].sort(),
    );
    const stale = rep.findings.find((f) => f.kind === 'stale')!;
    expect(stale.differences).toEqual([{ field: 'Status__c', expected: 'completed', found: 'started' }]);
    expect(rep.byKey.map((k) => k.subject).sort()).toEqual(['work-order/WO-R1', 'work-order/WO-R2', 'work-order/WO-R3']);
    const table = await cli([], VIEWER);
    expect(table.stdout).toMatch(/missing +plant-a +work-order\/WO-R2/);
    expect(table.stdout).toContain('can be repaired');

    // A viewer cannot repair.
    const refused = await cli(['--repair'], VIEWER);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('HTTP 403');
    expect(crm.records(MILESTONE).filter((x) => x.externalId === r1Released)).toHaveLength(2);

    const repaired = await cli(['--repair', '--json'], OPERATOR);
    expect(repaired.code).toBe(0);
    const { repair } = JSON.parse(repaired.stdout) as { repair: RepairResult };
    expect(repair.errors).toEqual([]);
    expect(repair.deleted).toHaveLength(1);
    expect(repair.deleted[0]!.ids).toHaveLength(1);
    // WO-R2's started event, WO-R3's released (its order's newest) and WO-R1's completed (its order's newest).
    expect(repair.resent).toEqual([{ lane: 'crm', events: 3 }]);

    await vi.waitFor(async () => expect((await report()).findings).toEqual([]), WAIT);
    // Exactly once each, as the plant reported it.
    for (const [wo, m] of PLAN) expect(crm.records(MILESTONE).filter((x) => x.fields.Work_Order__c === wo && x.fields.Milestone__c === m)).toHaveLength(1);
    expect(crm.records(MILESTONE)).toHaveLength(6);
    expect(crm.records(ORDER).map((o) => [o.externalId, o.fields.Status__c]).sort()).toEqual([['WO-R1', 'completed'], ['WO-R2', 'started'], ['WO-R3', 'released']]);
    expect(await relay.store.counts()).toMatchObject({ pending: 0, dead: 0 });

    // A second repair has nothing to do.
    const again = await cli(['--repair', '--json'], OPERATOR);
    expect((JSON.parse(again.stdout) as { repair: RepairResult }).repair).toEqual({ resent: [], deleted: [], errors: [] });
  });

  it('reports events in a ledger that never reached the relay, and events the agent dropped, without calling them repairable', async () => {
    const source = '/plantlink/plants/plant-a/sources/mes-files';
    await relay.store.addLedger('agent-a', 'plant-a', [
      { id: 'lost-1', source, type: 'com.plantlink.production.milestone.v1', subject: 'work-order/WO-R9', timeMs: t0 + 30_000, status: 'stored' },
      { id: 'dropped-1', source, type: 'com.plantlink.production.milestone.v1', subject: 'work-order/WO-R8', timeMs: t0 + 31_000, status: 'dropped' },
    ]);
    const rep = await report();
    expect(rep.findings.map((f) => [f.kind, f.subject, f.eventId]).sort()).toEqual([
      ['dropped', 'work-order/WO-R8', 'dropped-1'],
      ['not_received', 'work-order/WO-R9', 'lost-1'],
    ]);
    expect(rep.plants[0]).toMatchObject({ ledger: 8, dropped: 1, notReceived: 1, received: 6 });
    const r = await fetch(`${base}/v1/reconcile/repair`, { method: 'POST', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' }, body: JSON.stringify({ day }) });
    expect(((await r.json()) as { repair: RepairResult }).repair).toEqual({ resent: [], deleted: [], errors: [] });
  });

  it('leaves a duplicate to a person when none of its records is the one plantlink recorded writing', async () => {
    const r2Released = eventIdOf('WO-R2', 'released');
    // A delivery from before record ids were kept.
    const store = relay.store as unknown as { inbox: { db: import('better-sqlite3').Database } };
    store.inbox.db.prepare("UPDATE deliveries SET record_ids = NULL WHERE inbox_seq = (SELECT seq FROM inbox WHERE id = ?)").run(r2Released);
    crm.seedDuplicate(MILESTONE, r2Released);
    const rep = await report();
    const dup = rep.findings.find((f) => f.kind === 'duplicated')!;
    expect(dup).toMatchObject({ subject: 'work-order/WO-R2', manual: true, record: { externalId: r2Released } });
    expect(dup.detail).toContain('decide by hand');
    const table = await cli([], VIEWER);
    expect(table.stdout).not.toContain('can be repaired');
    const r = await fetch(`${base}/v1/reconcile/repair`, { method: 'POST', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' }, body: JSON.stringify({ day }) });
    expect(((await r.json()) as { repair: RepairResult }).repair.deleted).toEqual([]);
    expect(crm.records(MILESTONE).filter((x) => x.externalId === r2Released)).toHaveLength(2);
  });

  it('refuses a malformed day and a day past the relay\'s retention with a clear error', async () => {
    const bad = await fetch(`${base}/v1/reconcile?day=23.11.2026`, { headers: { authorization: `Bearer ${VIEWER}` } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/YYYY-MM-DD/);
    const old = await fetch(`${base}/v1/reconcile?day=2020-01-01`, { headers: { authorization: `Bearer ${VIEWER}` } });
    expect(old.status).toBe(400);
    expect(((await old.json()) as { error: string }).error).toMatch(/retentionHours/);
  });
});
