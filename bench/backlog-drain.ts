/**
 * A backlog after an outage, from 10k to 1M events:
 *
 * 1. fill: the agent's outbox takes N events while the relay is away (agent process alone;
 *    its peak RSS is the "agent memory with N events buffered" figure);
 * 2. drain: the relay and the CRM emulator come back; the agent (its own process) sends the
 *    backlog, the relay stores, routes and delivers it; the figure is N / the time from the
 *    agent's reconnect to the last record landing in the CRM.
 *
 * Baseline: plain batched HTTP (sObject Collections calls of 200 records, the same
 * concurrency as the sink) of the same records to the same emulator, in the same run.
 * For sizes above 100k the baseline is measured on 100k records (its rate is flat with size).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { issueToken } from '../relay/ingress/agent-auth.js';
import { RelayConfig } from '../relay/config.js';
import { Relay } from '../relay/relay.js';
import { BENCH_AUTH, BENCH_MAPPING, rawCollectionsRate } from './raw-http.js';
import { SalesforceEmulator } from '../test/emulators/salesforce/salesforce-emulator.js';
import { tempDir, testLogger } from '../test/helpers/temp.js';
import { milestoneEvent } from '../test/relay/sinks/salesforce/fixtures.js';

const CONCURRENCY = 4;
const mapping = BENCH_MAPPING;
const auth = BENCH_AUTH;
const AGENT = join(import.meta.dirname, 'agent-process.ts');

export interface AgentReport {
  seconds: number;
  events: number;
  peakRssBytes: number;
  outboxBytes: number;
  /** drain: when the uplink started (epoch ms), after the process had loaded. */
  startedAtMs?: number;
}

async function agentProcess(args: string[]): Promise<AgentReport> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', AGENT, ...args], { maxBuffer: 1024 * 1024, timeout: 30 * 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as AgentReport;
}

export interface DrainResult {
  n: number;
  fill: AgentReport;
  drain: AgentReport;
  /** The agent's uplink start -> the last record in the CRM. */
  endToEndRate: number;
  rawRate: number;
}

export async function backlogDrain(n: number): Promise<DrainResult> {
  const { dir, cleanup } = tempDir('plantlink-bench-drain-');
  const crm = await SalesforceEmulator.start();
  try {
    const outbox = join(dir, 'agent', 'outbox.sqlite');
    const fill = await agentProcess(['fill', outbox, String(n)]);
    const { token, tokenHash } = issueToken('bench-agent');
    const relay = new Relay(
      RelayConfig.parse({
        relay: { dataDir: join(dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
        agents: [{ id: 'bench-agent', plant: 'plant-a', tokenHash }],
        sinks: [{ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth, concurrency: CONCURRENCY, mappings: [mapping] }],
        routes: [{ sinks: ['crm'] }],
        delivery: { batchSize: 800, pollMs: 50 },
        log: { level: 'error' },
      }),
      { logger: testLogger() },
    );
    await relay.start();
    let landed = 0;
    let lastLandedAt = 0;
    crm.on('upsert', (e) => {
      if (!e.created) return;
      landed++;
      lastLandedAt = Date.now();
    });
    const t = performance.now();
    const debug = process.env.BENCH_DEBUG
      ? setInterval(() => console.error(`${((performance.now() - t) / 1000).toFixed(2)} s landed ${landed} ${JSON.stringify(relay.status().sinks)}`), 250)
      : undefined;
    const drain = await agentProcess(["drain", outbox, relay.wsUrl, token]);
    while (landed < n) await new Promise((r) => setTimeout(r, 50));
    clearInterval(debug);
    const endToEndRate = n / ((lastLandedAt - drain.startedAtMs!) / 1000);
    await relay.stop();
    const rawEvents = Array.from({ length: Math.min(n, 100_000) }, (_, i) => milestoneEvent(`WO-raw-${i}`, 'released', 1));
    const rawRate = await rawCollectionsRate(crm, rawEvents, CONCURRENCY);
    return { n, fill, drain, endToEndRate, rawRate };
  } finally {
    await crm.stop();
    cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const n of (process.argv[2] ?? '10000,100000').split(',').map(Number)) {
    const r = await backlogDrain(n);
    console.log(JSON.stringify(r));
  }
}
