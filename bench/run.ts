/**
 * `npm run bench`: every benchmark, printed as ONE table. Each figure stands beside a raw
 * baseline measured in the same run on the same machine (the machines are shared and noisy:
 * compare ratios, not absolute figures), and sizes go from 10k to 1M events so the growth
 * of cost with backlog shows.
 *
 *   --quick   smaller sizes (up to 100k events, a 16 MiB file): a minute or so
 *
 * Not part of `npm test`: no benchmark asserts a timing.
 */
import { parseArgs } from 'node:util';
import { backlogDrain } from './backlog-drain.js';
import { fileIngest } from './file-ingest.js';
import { mqttUplinkBench } from './mqtt-uplink.js';
import { measureOutboxIngest } from './outbox-ingest.js';
import { deliveryRatio, endToEndLatency } from './relay-delivery.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const quick = values.quick;

interface Row {
  benchmark: string;
  size: string;
  plantlink: string;
  baseline: string;
  ratio: string;
  notes: string;
}
const rows: Row[] = [];
const rate = (n: number) => `${Math.round(n).toLocaleString('en-US')}/s`;
const count = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n));
const mib = (n: number) => `${Math.round(n / 1024 / 1024)} MiB`;
const ratio = (a: number, b: number) => (a / b).toFixed(2);
const progress = (s: string) => process.stderr.write(`bench: ${s}\n`);

for (const [total, backlog] of [
  [20_000, 0],
  [20_000, quick ? 50_000 : 200_000],
] as const) {
  progress(`outbox ingest ${count(total)} over a ${count(backlog)} backlog`);
  const r = measureOutboxIngest(total, backlog);
  rows.push({
    benchmark: 'outbox ingest (ids, envelope, validation, dedupe, source state; fsync per 100)',
    size: `${count(total)} on ${count(backlog)} pending`,
    plantlink: rate(r.outboxRate),
    baseline: `${rate(r.rawRate)} plain inserts`,
    ratio: ratio(r.outboxRate, r.rawRate),
    notes: `acks ${rate(r.ackRate)} vs plain deletes ${rate(r.rawDeleteRate)}`,
  });
}

const fileMb = quick ? 16 : 64;
progress(`file ingest ${fileMb} MiB`);
const f = await fileIngest(fileMb);
rows.push({
  benchmark: 'file ingest: CSV drop -> outbox (decode, parse, JSONata map, validate, commit, archive)',
  size: `${mib(f.bytes)}, ${count(Math.round(f.rows / 1000) * 1000)} rows`,
  plantlink: `${rate(f.rate)} rows`,
  baseline: `${rate(f.rawRate)} readline + batched inserts`,
  ratio: ratio(f.rate, f.rawRate),
  notes: `peak RSS ${mib(f.peakRss)} (+${mib(f.rssAboveStart)}), heap ${mib(f.peakHeap)}`,
});

for (const n of quick ? [10_000] : [10_000, 50_000]) {
  progress(`relay delivery ${count(n)}`);
  const r = await deliveryRatio(n);
  rows.push({
    benchmark: 'relay delivery: inbox -> Salesforce sink -> CRM emulator (200/call, 4 in flight)',
    size: count(n),
    plantlink: rate(r.relay),
    baseline: `${rate(r.raw)} plain batched HTTP`,
    ratio: ratio(r.relay, r.raw),
    notes: '',
  });
}

progress('end-to-end latency at 1,000 events/s');
const l = await endToEndLatency(1000, 10);
rows.push({
  benchmark: 'end to end at a steady 1,000 events/s: outbox -> uplink -> relay -> CRM emulator',
  size: `${count(l.total)} over 10 s`,
  plantlink: `p50 ${l.p50.toFixed(0)} ms, p99 ${l.p99.toFixed(0)} ms`,
  baseline: '',
  ratio: '',
  notes: `${l.delivered}/${l.total} delivered`,
});

for (const n of quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]) {
  progress(`backlog of ${count(n)} after an outage`);
  const d = await backlogDrain(n);
  rows.push({
    benchmark: 'backlog drain after an outage: agent (own process) -> relay -> CRM emulator',
    size: count(n),
    plantlink: rate(d.endToEndRate),
    baseline: `${rate(d.rawRate)} plain batched HTTP`,
    ratio: ratio(d.endToEndRate, d.rawRate),
    notes: `agent peak RSS ${mib(d.fill.peakRssBytes)} buffering, ${mib(d.drain.peakRssBytes)} draining; outbox ${mib(d.fill.outboxBytes)}, filled at ${rate(d.fill.events / d.fill.seconds)}`,
  });
}

progress('MQTT uplink (aedes, mosquitto)');
for (const r of await mqttUplinkBench(quick ? 20_000 : 100_000)) {
  rows.push({
    benchmark: `MQTT uplink via ${r.broker}: outbox -> broker -> relay inbox, acked (100/msg, 8 in flight)`,
    size: count(r.events),
    plantlink: rate(r.plantlink),
    baseline: `${rate(r.baseline)} plain mqtt.js QoS 1`,
    ratio: ratio(r.plantlink, r.baseline),
    notes: [
      r.websocket ? `WebSocket uplink into the same relay: ${rate(r.websocket)}` : '',
      r.twoReplicas ? `two relay replicas sharing the subscription (one process): ${rate(r.twoReplicas)} (${ratio(r.twoReplicas, r.baseline)})` : '',
    ].join(''),
  });
}

const header: Row = { benchmark: 'benchmark', size: 'size', plantlink: 'plantlink', baseline: 'raw baseline (same run)', ratio: 'ratio', notes: 'notes' };
const line = (r: Row) => `| ${r.benchmark} | ${r.size} | ${r.plantlink} | ${r.baseline} | ${r.ratio} | ${r.notes} |`;
console.log(`plantlink benchmarks, node ${process.version}, ${new Date().toISOString()}${quick ? ' (quick)' : ''}`);
console.log(line(header));
console.log('|---|---|---:|---|---:|---|');
for (const r of rows) console.log(line(r));
