/**
 * The agent's metrics: the outbox's per-source counters against a real outbox, and the
 * HTTP listener (/metrics, /healthz, /readyz) and `plantlink agent status` of a real agent
 * (file drop source) sending to a real relay ingress on a loopback port.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { Agent } from '../../../agent/agent.js';
import { AgentMetrics } from '../../../agent/metrics/metrics.js';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { dropMilestones, fileAgentConfig, SOURCE } from '../../helpers/file-agent.js';
import { Samples, scrape } from '../../helpers/prometheus.js';
import { startIngress } from '../../helpers/relay-ingress.js';
import { tempDir, testLogger } from '../../helpers/temp.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const run = promisify(execFile);
const WAIT = { timeout: 20_000, interval: 50 };
const T0 = Date.parse('2026-11-23T08:00:00Z');

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

function temp(): string {
  const t = tempDir();
  stops.push(t.cleanup);
  return t.dir;
}

describe('agent metrics of the outbox', () => {
  it('counts appended, acked and quarantined events per source, and reads the backlog at scrape time', async () => {
    const outbox = new Outbox({ path: join(temp(), 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' });
    stops.push(() => outbox.close());
    const metrics = new AgentMetrics({ outbox, sources: () => [{ name: 'line', kind: 'opcua', state: 'stalled' }], uplink: () => ({ state: 'unauthorized' }) });
    const read = async () => new Samples((await metrics.scrape()).body);

    const invalid = { ...milestoneDraft('WO-X', 'released', T0), data: { milestone: 'released' } }; // no workOrder, no equipment
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-2', 'released', T0 + 1), invalid]);
    outbox.append('other', [milestoneDraft('WO-3', 'released', T0 + 2)]);
    let m = await read();
    expect(m.count('plantlink_agent_events_appended_total', { source: 'line' })).toBe(2);
    expect(m.count('plantlink_agent_events_appended_total', { source: 'other' })).toBe(1);
    expect(m.count('plantlink_agent_events_quarantined_total', { source: 'line', stage: 'agent' })).toBe(1);
    expect(m.value('plantlink_agent_outbox_pending_events')).toBe(3);
    expect(m.value('plantlink_agent_outbox_pending_bytes')).toBeGreaterThan(0);
    expect(m.value('plantlink_agent_outbox_oldest_pending_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(m.value('plantlink_agent_outbox_quarantined_events')).toBe(1);

    const pending = outbox.readPending(0, 10, 1e6);
    outbox.ack([pending[0]!.seq, pending[2]!.seq]);
    outbox.reject([{ seq: pending[1]!.seq, code: 'plant_mismatch', reason: 'test' }]);
    m = await read();
    expect(m.count('plantlink_agent_events_acked_total', { source: 'line' })).toBe(1);
    expect(m.count('plantlink_agent_events_acked_total', { source: 'other' })).toBe(1);
    expect(m.count('plantlink_agent_events_quarantined_total', { source: 'line', stage: 'relay' })).toBe(1);
    expect(m.value('plantlink_agent_outbox_pending_events')).toBe(0);
    expect(m.value('plantlink_agent_outbox_oldest_pending_age_seconds')).toBe(0);
    expect(m.value('plantlink_agent_outbox_quarantined_events')).toBe(2);

    // Health as enums: exactly the current state is 1.
    expect(m.series('plantlink_agent_source_state').filter((s) => s.value === 1).map((s) => s.labels)).toEqual([{ source: 'line', kind: 'opcua', state: 'stalled' }]);
    expect(m.value('plantlink_agent_uplink_state', { state: 'unauthorized' })).toBe(1);
    expect(m.value('plantlink_agent_uplink_state', { state: 'connected' })).toBe(0);
    expect(m.value('plantlink_agent_uplink_connected')).toBe(0);
  });

  it('two agents in one process keep separate figures (a registry each)', async () => {
    const dir = temp();
    const outboxes = ['a', 'b'].map((n) => new Outbox({ path: join(dir, n, 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' }));
    stops.push(() => outboxes.forEach((o) => o.close()));
    const [a, b] = outboxes.map((outbox) => new AgentMetrics({ outbox, sources: () => [], uplink: () => ({ state: 'connected' }) }));
    outboxes[0]!.append('line', [milestoneDraft('WO-1', 'released', T0)]);
    expect(new Samples((await a!.scrape()).body).count('plantlink_agent_events_appended_total', { source: 'line' })).toBe(1);
    expect(new Samples((await b!.scrape()).body).count('plantlink_agent_events_appended_total', { source: 'line' })).toBe(0);
  });
});

describe('agent metrics listener', () => {
  async function startAgent(options: { metrics: boolean; port?: number }) {
    const dir = temp();
    const ingress = await startIngress(join(dir, 'relay'));
    stops.push(() => ingress.stop());
    const config = fileAgentConfig({ dir, url: ingress.url, token: ingress.tokens.a, id: 'agent-a', plant: 'plant-a', metrics: options.metrics });
    if (options.port !== undefined) config.metrics.listen!.port = options.port;
    const agent = new Agent(config, { logger: testLogger() });
    stops.push(() => agent.stop());
    await agent.start();
    return { dir, config, agent, ingress };
  }

  it('is off unless metrics.listen is set', async () => {
    const { agent } = await startAgent({ metrics: false });
    expect(agent.metricsUrl).toBeUndefined();
  });

  it('serves /metrics, /healthz and /readyz; /readyz answers 503 with the reason once the outbox is closed', async () => {
    const { agent, config, ingress } = await startAgent({ metrics: true });
    const url = agent.metricsUrl!;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect((await fetch(`${url}/nothing-here`)).status).toBe(404);

    dropMilestones(config, 'a.jsonl', ['WO-1', 'WO-2', 'WO-3']);
    await vi.waitFor(() => expect(ingress.inbox.counts().events).toBe(3), WAIT);
    await vi.waitFor(async () => expect((await scrape(`${url}/metrics`)).count('plantlink_agent_events_acked_total', { source: SOURCE })).toBe(3), WAIT);
    const m = await scrape(`${url}/metrics`);
    expect(m.count('plantlink_agent_events_appended_total', { source: SOURCE })).toBe(3);
    expect(m.value('plantlink_agent_outbox_pending_events')).toBe(0);
    expect(m.value('plantlink_agent_uplink_connected')).toBe(1);
    expect(m.value('plantlink_agent_uplink_ack_rtt_seconds_count')).toBeGreaterThan(0);
    expect(m.series('plantlink_agent_source_state').filter((s) => s.value === 1)).toHaveLength(1);

    agent.outbox.close();
    const res = await fetch(`${url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'not ready', reason: 'outbox is closed' });
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
  });

  it('an agent whose metrics port is taken still starts and forwards events', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    stops.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const { agent, config, ingress } = await startAgent({ metrics: true, port: (blocker.address() as { port: number }).port });
    expect(agent.metricsUrl).toBeUndefined();
    expect(agent.state).toBe('RUNNING');
    dropMilestones(config, 'b.jsonl', ['WO-7']);
    await vi.waitFor(() => expect(ingress.inbox.counts().events).toBe(1), WAIT);
  });

  it('`plantlink agent status` shows backlog, oldest pending age, uplink state and each source\'s health, as a table and as JSON', async () => {
    const { dir, config, agent } = await startAgent({ metrics: false });
    await vi.waitFor(() => expect(agent.uplink.status().state).toBe('connected'), WAIT);
    await agent.stop(); // writes status.json with the final state; the outbox stays on disk
    // A backlog that is still pending: appended while no uplink runs.
    const outbox = new Outbox({ path: join(config.agent.dataDir, 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' });
    outbox.append(SOURCE, [milestoneDraft('WO-8', 'released', T0), milestoneDraft('WO-9', 'released', T0 + 1)]);
    outbox.close();
    const file = join(dir, 'agent.yaml');
    writeFileSync(file, stringify(config));
    const cli = ['--import', 'tsx', join(ROOT, 'installers/plantlink.ts'), 'agent', 'status', '--config', file];

    const json = JSON.parse((await run(process.execPath, [...cli, '--json'], { cwd: ROOT })).stdout) as {
      backlog: { pending: number; oldestPendingAgeMs: number };
      live: { uplink: { state: string }; sources: { name: string; kind: string; state: string }[] };
    };
    expect(json.backlog.pending).toBe(2);
    expect(json.backlog.oldestPendingAgeMs).toBeGreaterThanOrEqual(0);
    expect(json.live.uplink.state).toBe('stopped');
    expect(json.live.sources).toMatchObject([{ name: SOURCE, kind: 'file', state: 'stopped' }]);

    const table = (await run(process.execPath, cli, { cwd: ROOT })).stdout;
    expect(table).toMatch(/^backlog \(pending events\)\s+2$/m);
    expect(table).toMatch(/^oldest pending\s+\d+ (ms|s|min)/m);
    expect(table).toMatch(/^uplink\s+stopped/m);
    expect(table).toMatch(/^SOURCE\s+KIND\s+HEALTH\s+LAST ACTIVITY\s+DETAIL$/m);
    expect(table).toMatch(new RegExp(`^${SOURCE}\\s+file\\s+stopped`, 'm'));
  });
});
