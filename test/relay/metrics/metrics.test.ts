/**
 * The relay's /metrics, /healthz and /readyz during a small real flow: a real agent (file
 * drop source) -> real relay -> Salesforce emulator, all on loopback ports chosen by the OS.
 * The tests of this file run in order and share the stack.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { Agent } from '../../../agent/agent.js';
import type { AgentConfig } from '../../../agent/config.js';
import { PRODUCTION_MILESTONE_V1 } from '../../../protocols/events/production-milestone.v1.js';
import type { WelcomeFrame } from '../../../protocols/uplink/frames.js';
import type { AgentRow } from '../../../relay/agents/agents-table.js';
import { RelayConfig } from '../../../relay/config.js';
import { hashToken, issueToken } from '../../../relay/ingress/agent-auth.js';
import { metricsNeedToken } from '../../../relay/metrics/config.js';
import { Relay } from '../../../relay/relay.js';
import { defaultSalesforceMappings } from '../../../relay/sinks/salesforce/index.js';
import { SalesforceEmulator } from '../../emulators/salesforce/salesforce-emulator.js';
import { dropMilestones, fileAgentConfig } from '../../helpers/file-agent.js';
import { scrape, type Samples } from '../../helpers/prometheus.js';
import { tempDir, testLogger } from '../../helpers/temp.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const run = promisify(execFile);
const VIEWER = 'viewer-token-0123456789';
const OPERATOR = 'operator-token-0123456789';
const WAIT = { timeout: 20_000, interval: 50 };

let crm: SalesforceEmulator;
let relay: Relay;
let agent: Agent;
let agentConfig: AgentConfig;
let base: string;
let cleanup: () => void;
const plantB = issueToken('agent-b');
const sockets: WebSocket[] = [];

beforeAll(async () => {
  const t = tempDir();
  cleanup = t.cleanup;
  crm = await SalesforceEmulator.start();
  crm.addValidationRule('Production_Milestone__c', { field: 'Work_Order__c', test: (v) => v !== 'WO-BAD', message: 'WO-BAD is on credit hold' });
  const a = issueToken('agent-a');
  relay = new Relay(
    RelayConfig.parse({
      relay: { dataDir: join(t.dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
      agents: [
        { id: 'agent-a', plant: 'plant-a', tokenHash: a.tokenHash },
        { id: 'agent-b', plant: 'plant-b', tokenHash: plantB.tokenHash },
      ],
      sinks: [{ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth: { flow: 'client_credentials', clientId: 'plantlink-client', clientSecret: 'plantlink-secret' }, mappings: defaultSalesforceMappings }],
      routes: [{ sinks: ['crm'] }],
      api: { tokens: [{ name: 'vic', role: 'viewer', tokenHash: hashToken(VIEWER) }, { name: 'olga', role: 'operator', tokenHash: hashToken(OPERATOR) }] },
      delivery: { pollMs: 50, backoff: { initialMs: 50, maxMs: 200 } },
    }),
    { logger: testLogger() },
  );
  await relay.start();
  base = `http://127.0.0.1:${relay.port}`;
  agentConfig = fileAgentConfig({ dir: t.dir, url: relay.wsUrl, token: a.token, id: 'agent-a', plant: 'plant-a', metrics: true });
  agent = new Agent(agentConfig, { logger: testLogger() });
  await agent.start();
});

afterAll(async () => {
  sockets.forEach((s) => s.terminate());
  await agent?.stop();
  await relay?.stop();
  await crm?.stop();
  cleanup?.();
});

// This relay has API tokens, so /metrics wants one even on loopback.
const relayMetrics = () => scrape(`${base}/metrics`, VIEWER);
const crmSeries = { sink: 'crm' };

async function until(check: (m: Samples) => void): Promise<Samples> {
  let last: Samples | undefined;
  await vi.waitFor(async () => {
    last = await relayMetrics();
    check(last);
  }, WAIT);
  return last!;
}

describe('relay metrics', () => {
  it('answers /healthz and /readyz without a token, and /metrics to a viewer only, even on loopback (the relay has API tokens)', async () => {
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    const m = await relayMetrics();
    // Every configured sink and registered agent has a series from the start.
    expect(m.value('plantlink_relay_deliveries_pending', crmSeries)).toBe(0);
    expect(m.value('plantlink_relay_dead_letters', crmSeries)).toBe(0);
    expect(m.value('plantlink_relay_agent_connected', { agent: 'agent-b', plant: 'plant-b' })).toBe(0);
    expect(m.value('process_cpu_seconds_total')).toBeDefined();
  });

  it('counts events per plant, keeps them pending while the CRM is down, then delivers, dead-letters a refused one and pending returns to 0', async () => {
    crm.setOutage(true);
    const before = await relayMetrics();
    expect(before.count('plantlink_relay_events_received_total', { plant: 'plant-a' })).toBe(0);

    dropMilestones(agentConfig, 'orders-1.jsonl', ['WO-1', 'WO-2', 'WO-3', 'WO-4', 'WO-BAD']);
    const stored = await until((m) => expect(m.count('plantlink_relay_events_stored_total', { plant: 'plant-a' })).toBe(5));
    expect(stored.count('plantlink_relay_events_received_total', { plant: 'plant-a' })).toBe(5);
    expect(stored.count('plantlink_relay_events_duplicate_total', { plant: 'plant-a' })).toBe(0);

    // The CRM is unreachable: all five wait at the relay, and the business figure says so.
    const waiting = await until((m) => expect(m.count('plantlink_relay_deliveries_total', { ...crmSeries, outcome: 'retried' })).toBeGreaterThan(0));
    expect(waiting.value('plantlink_relay_deliveries_pending', crmSeries)).toBe(5);
    expect(waiting.value('plantlink_relay_milestones_pending_crm', { plant: 'plant-a' })).toBe(5);
    expect(waiting.value('plantlink_relay_deliveries_oldest_pending_age_seconds', crmSeries)).toBeGreaterThanOrEqual(0);
    expect(waiting.count('plantlink_relay_deliveries_total', { ...crmSeries, outcome: 'delivered' })).toBe(0);

    crm.setOutage(false);
    const done = await until((m) => expect(m.value('plantlink_relay_deliveries_pending', crmSeries)).toBe(0));
    expect(done.count('plantlink_relay_deliveries_total', { ...crmSeries, outcome: 'delivered' })).toBe(4);
    expect(done.count('plantlink_relay_deliveries_total', { ...crmSeries, outcome: 'dead_lettered', error_class: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' })).toBe(1);
    expect(done.value('plantlink_relay_dead_letters', crmSeries)).toBe(1);
    expect(done.value('plantlink_relay_milestones_pending_crm', { plant: 'plant-a' })).toBe(0);
    expect(done.value('plantlink_relay_milestones_oldest_undelivered_age_seconds', { plant: 'plant-a' })).toBe(0);
    expect(done.value('plantlink_relay_delivery_latency_seconds_count', crmSeries)).toBe(4);
    // The emulator sends Sforce-Limit-Info on every API answer.
    expect(done.value('plantlink_relay_sink_api_quota_limit', crmSeries)).toBeGreaterThan(0);
    expect(done.value('plantlink_relay_sink_api_quota_remaining', crmSeries)).toBeGreaterThan(0);

    // The agent's side of the same flow.
    const agentUrl = `${agent.metricsUrl}/metrics`;
    await vi.waitFor(async () => expect((await scrape(agentUrl)).value('plantlink_agent_outbox_pending_events')).toBe(0), WAIT);
    const am = await scrape(agentUrl);
    expect(am.count('plantlink_agent_events_appended_total', { source: 'mes-files' })).toBe(5);
    expect(am.count('plantlink_agent_events_acked_total', { source: 'mes-files' })).toBe(5);
    expect(am.value('plantlink_agent_uplink_connected')).toBe(1);
    expect(am.value('plantlink_agent_uplink_ack_rtt_seconds_count')).toBeGreaterThan(0);
  });

  it('counts a replay and the dead-letter gauge drops back once the replayed event lands', async () => {
    crm.clearValidationRules();
    const replay = await fetch(`${base}/v1/dead-letters/replay`, {
      method: 'POST',
      headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sink: 'crm', all: true }),
    });
    expect(await replay.json()).toEqual({ replayed: 1 });
    const m = await until((s) => expect(s.value('plantlink_relay_dead_letters', crmSeries)).toBe(0));
    expect(m.count('plantlink_relay_dead_letters_replayed_total')).toBe(1);
    await until((s) => expect(s.count('plantlink_relay_deliveries_total', { ...crmSeries, outcome: 'delivered' })).toBe(5));
  });

  it('counts ingress refusals by reason, accepts an agent that never reports its backlog, and shows one that does', async () => {
    const ws = new WebSocket(relay.wsUrl, ['plantlink.v1'], { headers: { Authorization: `Bearer ${plantB.token}` } });
    sockets.push(ws);
    const frames: unknown[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await vi.waitFor(() => expect(frames).toHaveLength(1), WAIT);
    expect((frames[0] as WelcomeFrame).features).toContain('status');

    // A batch as an agent without status frames sends it: one event fails its schema.
    const t = new Date().toISOString();
    const bad = {
      specversion: '1.0',
      id: 'evt-bad-1',
      source: '/plantlink/plants/plant-b/sources/line',
      type: PRODUCTION_MILESTONE_V1,
      subject: 'work-order/WO-9',
      time: t,
      plant: 'plant-b',
      plantseq: 1,
      correlationid: 'c-1',
      data: { milestone: 'released', equipment: 'L1', occurredAt: t }, // no workOrder
    };
    ws.send(JSON.stringify({ t: 'batch', batch: 0, events: [bad] }));
    await vi.waitFor(() => expect(frames).toHaveLength(2), WAIT);
    expect(frames[1]).toMatchObject({ t: 'ack', batch: 0, stored: 0, rejected: [{ index: 0, code: 'invalid_data' }] });
    const m = await relayMetrics();
    expect(m.count('plantlink_relay_ingress_rejections_total', { plant: 'plant-b', reason: 'invalid_data' })).toBe(1);
    expect(m.count('plantlink_relay_events_received_total', { plant: 'plant-b' })).toBe(1);
    expect(m.count('plantlink_relay_events_stored_total', { plant: 'plant-b' })).toBe(0);

    ws.send(JSON.stringify({ t: 'status', pending: 7, pendingBytes: 7000, oldestPendingAgeMs: 60_000 }));
    const reported = await until((s) => expect(s.value('plantlink_relay_agent_backlog_events', { agent: 'agent-b' })).toBe(7));
    expect(reported.value('plantlink_relay_agent_oldest_pending_age_seconds', { agent: 'agent-b', plant: 'plant-b' })).toBeGreaterThanOrEqual(60);
    expect(reported.value('plantlink_relay_agent_connected', { agent: 'agent-b' })).toBe(1);
    // The real agent reports an empty backlog once it drained.
    expect(reported.value('plantlink_relay_agent_backlog_events', { agent: 'agent-a', plant: 'plant-a' })).toBe(0);
    expect(reported.value('plantlink_relay_agent_last_seen_timestamp_seconds', { agent: 'agent-a' })).toBeGreaterThan(0);
  });

  it('GET /v1/agents needs a token and lists each agent with its plant, connection and backlog', async () => {
    expect((await fetch(`${base}/v1/agents`)).status).toBe(401);
    const { agents } = (await (await fetch(`${base}/v1/agents`, { headers: { authorization: `Bearer ${VIEWER}` } })).json()) as { agents: AgentRow[] };
    expect(agents).toMatchObject([
      { id: 'agent-a', plant: 'plant-a', connected: true, backlog: { pending: 0 }, relay: { pendingEvents: 0 } },
      { id: 'agent-b', plant: 'plant-b', connected: true, backlog: { pending: 7, pendingBytes: 7000 } },
    ]);
    expect(agents[0]!.lastEventMs).toBeGreaterThan(0);
    expect(agents[0]!.remote).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('`plantlink relay agents --json` asks the running relay and lists the connected agent with its plant and backlog', async () => {
    const cli = ['--import', 'tsx', join(ROOT, 'installers/plantlink.ts'), 'relay', 'agents', '--url', base];
    const env = { ...process.env, PLANTLINK_API_TOKEN: VIEWER };
    const json = await run(process.execPath, [...cli, '--json'], { cwd: ROOT, env });
    const agents = JSON.parse(json.stdout) as AgentRow[];
    expect(agents.find((a) => a.id === 'agent-a')).toMatchObject({ plant: 'plant-a', connected: true, backlog: { pending: 0 } });
    expect(agents.find((a) => a.id === 'agent-b')).toMatchObject({ plant: 'plant-b', backlog: { pending: 7 } });

    const table = await run(process.execPath, cli, { cwd: ROOT, env });
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/^PLANT\s+AGENT\s+CONNECTED\s+LAST SEEN\s+REMOTE\s+BACKLOG\s+OLDEST PENDING/);
    expect(lines.find((l) => l.startsWith('plant-b'))).toMatch(/^plant-b\s+agent-b\s+yes, .*\s7\s+1 min/);

    const refused = await run(process.execPath, cli, { cwd: ROOT, env: { ...process.env, PLANTLINK_API_TOKEN: 'wrong-token-0123456789' } }).catch((e: { code: number; stderr: string }) => e);
    expect(refused).toMatchObject({ code: 1 });
    expect((refused as { stderr: string }).stderr).toMatch(/HTTP 401/);
  });

  it('a disconnected agent shows as not connected, with when it was last seen', async () => {
    const ws = sockets.pop()!;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close();
    });
    const m = await until((s) => expect(s.value('plantlink_relay_agent_connected', { agent: 'agent-b' })).toBe(0));
    expect(m.value('plantlink_relay_agent_last_seen_timestamp_seconds', { agent: 'agent-b' })).toBeGreaterThan(0);
  });

  it('/readyz answers 503 with the reason when the inbox is closed, and /metrics still answers', async () => {
    relay.inbox.close();
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'not ready', reason: 'inbox is closed' });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const m = await relayMetrics();
    expect(m.value('plantlink_relay_deliveries_pending', crmSeries)).toBe(0);
  });
});

describe('relay metrics behind a token', () => {
  it('opens /metrics by default only with no API tokens on loopback; requireToken overrides either way', () => {
    expect(metricsNeedToken({}, '127.0.0.1', 0)).toBe(false);
    expect(metricsNeedToken({}, '::1', 0)).toBe(false);
    expect(metricsNeedToken({}, '127.0.0.1', 1)).toBe(true);
    expect(metricsNeedToken({}, '0.0.0.0', 0)).toBe(true);
    expect(metricsNeedToken({ requireToken: false }, '0.0.0.0', 2)).toBe(false);
    expect(metricsNeedToken({ requireToken: true }, '127.0.0.1', 0)).toBe(true);
  });

  it('with API tokens and no metrics settings, /metrics on loopback refuses no token and a wrong one, and answers a viewer', async () => {
    const t = tempDir();
    const r = new Relay(
      RelayConfig.parse({
        relay: { dataDir: join(t.dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
        agents: [],
        sinks: [{ name: 'hook', kind: 'webhook', url: 'http://127.0.0.1:9/unused', secret: 'a-webhook-secret-0123456789abcdef0123456789' }],
        routes: [{ sinks: ['hook'] }],
        api: { tokens: [{ name: 'vic', role: 'viewer', tokenHash: hashToken(VIEWER) }] },
      }),
      { logger: testLogger() },
    );
    await r.start();
    try {
      const url = `http://127.0.0.1:${r.port}`;
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
      expect((await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
      expect((await scrape(`${url}/metrics`, VIEWER)).value('plantlink_relay_deliveries_pending', { sink: 'hook' })).toBe(0);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    } finally {
      await r.stop();
      t.cleanup();
    }
  });
});
