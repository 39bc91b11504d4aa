/**
 * The agent's half of the backlog benchmarks, in its own process so its memory is its own:
 *
 *   fill  <outbox> <n>                  append n milestone events (batches of 1,000, as a busy
 *                                       source commits them) while the relay is away
 *   drain <outbox> <relay ws url> <token>  connect the uplink and send until nothing is pending
 *
 * Prints one JSON line: seconds, events, peak RSS (`maxRSS` of the whole process) and the
 * outbox file size.
 */
import { statSync } from 'node:fs';
import { Outbox } from '../agent/outbox/outbox.js';
import { WebSocketUplinkConfig } from '../agent/uplink/config.js';
import { WebSocketUplink } from '../agent/uplink/ws-uplink.js';
import { createLogger } from '../protocols/log.js';
import { milestoneDraft } from '../test/helpers/drafts.js';

const [mode, path, ...rest] = process.argv.slice(2);
const T0 = Date.parse('2026-11-23T06:00:00Z');
const KINDS = ['released', 'started', 'quantity-reported', 'quantity-reported', 'completed'] as const;
const open = () => new Outbox({ path: path!, plant: 'plant-a', maxBytes: 1e12, maxEvents: 1e9, onFull: 'pause' });
const report = (r: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ ...r, peakRssBytes: process.resourceUsage().maxRSS * 1024, outboxBytes: statSync(path!).size })}\n`);

if (mode === 'fill') {
  const n = Number(rest[0]);
  const outbox = open();
  const t = performance.now();
  for (let i = 0; i < n; i += 1000) {
    // Five milestones per work order: per-subject order matters downstream.
    const drafts = Array.from({ length: Math.min(1000, n - i) }, (_, k) => {
      const e = i + k;
      return milestoneDraft(`WO-${Math.floor(e / 5)}`, KINDS[e % 5]!, T0 + e, e % 5 === 2 || e % 5 === 3 ? e : undefined, 'plant-a');
    });
    outbox.append('line-opcua', drafts);
  }
  const seconds = (performance.now() - t) / 1000;
  outbox.close();
  report({ seconds, events: n });
} else if (mode === 'drain') {
  const [url, token] = rest;
  const outbox = open();
  const pendingAtStart = outbox.stats().pending;
  const uplink = new WebSocketUplink(WebSocketUplinkConfig.parse({ kind: 'websocket', url, token }), outbox, createLogger('bench-agent', { level: 'error' }));
  const t = performance.now();
  const startedAtMs = Date.now();
  uplink.start();
  while (outbox.stats().pending > 0) await new Promise((r) => setTimeout(r, 20));
  const seconds = (performance.now() - t) / 1000;
  await uplink.stop();
  outbox.close();
  report({ seconds, events: pendingAtStart, startedAtMs });
} else {
  process.stderr.write('usage: agent-process.ts fill <outbox> <n> | drain <outbox> <url> <token>\n');
  process.exit(2);
}
