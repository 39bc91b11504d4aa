/**
 * Relay delivery: events/s from the relay's inbox through the delivery worker and the
 * Salesforce sink (sObject Collections, 200 records per call) into the Salesforce emulator,
 * as a ratio to plain batched HTTP requests of the same records to the same emulator with
 * the same concurrency, measured in the same run. Then end-to-end latency (agent outbox ->
 * uplink -> relay -> CRM emulator) at a steady 1,000 events/s.
 */
import { join } from 'node:path';
import { Outbox } from '../agent/outbox/outbox.js';
import type { EventDraft } from '../agent/sources/source.js';
import { WebSocketUplinkConfig } from '../agent/uplink/config.js';
import { WebSocketUplink } from '../agent/uplink/ws-uplink.js';
import { deriveEventId } from '../protocols/events/event-id.js';
import { RelayConfig } from '../relay/config.js';
import { DeliveryConfig } from '../relay/delivery/config.js';
import { SinkWorker } from '../relay/delivery/sink-worker.js';
import { Inbox } from '../relay/inbox/inbox.js';
import { issueToken } from '../relay/ingress/agent-auth.js';
import { Relay } from '../relay/relay.js';
import { SalesforceSink } from '../relay/sinks/salesforce/index.js';
import { BENCH_AUTH, BENCH_MAPPING, rawCollectionsRate } from './raw-http.js';
import { SalesforceEmulator } from '../test/emulators/salesforce/salesforce-emulator.js';
import { milestoneDraft } from '../test/helpers/drafts.js';
import { tempDir, testLogger } from '../test/helpers/temp.js';
import { milestoneEvent } from '../test/relay/sinks/salesforce/fixtures.js';

const CONCURRENCY = 4;
const mapping = BENCH_MAPPING;
const auth = BENCH_AUTH;

export async function deliveryRatio(n: number) {
  const { dir, cleanup } = tempDir('plantlink-bench-');
  const crm = await SalesforceEmulator.start();
  try {
    const events = Array.from({ length: n }, (_, i) => milestoneEvent(`WO-${i}`, 'released', 1));
    // Raw baseline: the same records, 200 per collections call, CONCURRENCY calls in flight.
    const raw = await rawCollectionsRate(crm, events, CONCURRENCY);

    const inbox = new Inbox(join(dir, 'inbox.sqlite'));
    for (let i = 0; i < n; i += 1000) inbox.store('a', events.slice(i, i + 1000).map((event) => ({ event, body: JSON.stringify(event), sinks: ['crm'] })), []);
    const sink = new SalesforceSink({ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth, concurrency: CONCURRENCY, mappings: [mapping] }, testLogger());
    await sink.start();
    const worker = new SinkWorker(sink, inbox, DeliveryConfig.parse({ batchSize: 800, pollMs: 10 }), testLogger());
    const t = performance.now();
    worker.start();
    while (worker.status().delivered < n) await new Promise((r) => setTimeout(r, 20));
    const relay = n / ((performance.now() - t) / 1000);
    await worker.stop();
    await sink.stop();
    inbox.close();
    return { raw, relay };
  } finally {
    await crm.stop();
    cleanup();
  }
}

export async function endToEndLatency(perSecond: number, seconds: number) {
  const { dir, cleanup } = tempDir('plantlink-bench-');
  const crm = await SalesforceEmulator.start();
  const { token, tokenHash } = issueToken('bench-agent');
  const relay = new Relay(
    RelayConfig.parse({
      relay: { dataDir: join(dir, 'relay'), listen: { host: '127.0.0.1', port: 0 } },
      agents: [{ id: 'bench-agent', plant: 'plant-a', tokenHash }],
      sinks: [{ name: 'crm', kind: 'salesforce', loginUrl: crm.url, auth, mappings: [mapping] }],
      routes: [{ sinks: ['crm'] }],
      delivery: { batchSize: 400, pollMs: 50 },
      log: { level: 'error' },
    }),
    { logger: testLogger() },
  );
  await relay.start();
  const outbox = new Outbox({ path: join(dir, 'agent', 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e10, maxEvents: 1e8, onFull: 'pause' });
  const uplink = new WebSocketUplink(WebSocketUplinkConfig.parse({ kind: 'websocket', url: relay.wsUrl, token }), outbox, testLogger());
  uplink.start();
  const appendedAt = new Map<string, number>();
  const latencies: number[] = [];
  crm.on('upsert', (e) => {
    const at = appendedAt.get(e.record.externalId);
    if (at !== undefined && e.created) latencies.push(performance.now() - at);
  });
  const T0 = Date.parse('2026-11-23T08:00:00Z');
  const tick = 10; // ms
  const perTick = (perSecond * tick) / 1000;
  let sent = 0;
  const total = perSecond * seconds;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const drafts = Array.from({ length: perTick }, (_, i) => milestoneDraft(`WO-${sent + i}`, 'released', T0 + sent + i, undefined, 'plant-a'));
      const now = performance.now();
      outbox.append('bench', drafts);
      sent += perTick;
      // ids are deterministic: record when each was appended
      for (const d of drafts) appendedAt.set(idOf(d), now);
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, tick);
  });
  const deadline = Date.now() + 60_000;
  while (latencies.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await uplink.stop();
  await relay.stop();
  outbox.close();
  await crm.stop();
  cleanup();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { delivered: latencies.length, total, p50: q(0.5), p99: q(0.99) };
}

const idOf = (d: EventDraft) => deriveEventId(d.fact);

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`relay delivery into the Salesforce emulator (sObject Collections, 200 per call, ${CONCURRENCY} in flight)`);
  console.log('   events |  raw HTTP ev/s | relay ev/s | ratio');
  for (const n of [10_000, 50_000]) {
    const r = await deliveryRatio(n);
    console.log(`${String(n).padStart(9)} | ${Math.round(r.raw).toLocaleString('en-US').padStart(14)} | ${Math.round(r.relay).toLocaleString('en-US').padStart(10)} | ${(r.relay / r.raw).toFixed(2)}`);
  }
  const l = await endToEndLatency(1000, 10);
  console.log(`end to end at 1,000 events/s for 10 s (outbox -> uplink -> relay -> CRM emulator): ${l.delivered}/${l.total} delivered, p50 ${l.p50.toFixed(0)} ms, p99 ${l.p99.toFixed(0)} ms`);
}
