/**
 * Outbox ingest: events/s through Outbox.append (id derivation, envelope, schema validation,
 * dedupe index, state write, fsync per batch) vs plain better-sqlite3 inserts of the same
 * bodies with the same pragmas and batch size, measured in the same run. Also the ack
 * (delete) rate, and how both change with the backlog already in the outbox.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { Outbox } from '../agent/outbox/outbox.js';
import { milestoneDraft } from '../test/helpers/drafts.js';
import { tempDir } from '../test/helpers/temp.js';

const BATCH = 100;
const T0 = Date.parse('2026-11-23T08:00:00Z');

function drafts(from: number, n: number) {
  return Array.from({ length: n }, (_, i) => milestoneDraft(`WO-${Math.floor((from + i) / 10)}`, 'quantity-reported', T0 + from + i, from + i));
}

export function measureOutboxIngest(total: number, backlog: number) {
  const { dir, cleanup } = tempDir('plantlink-bench-');
  try {
    const outbox = new Outbox({ path: join(dir, 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e12, maxEvents: 1e9, onFull: 'pause' });
    for (let i = 0; i < backlog; i += 1000) outbox.append('line', drafts(i, 1000));
    const batches = Array.from({ length: total / BATCH }, (_, b) => drafts(backlog + b * BATCH, BATCH));
    let t = performance.now();
    for (const batch of batches) outbox.append('line', batch, [{ key: 'L1', value: { n: 1 } }]);
    const outboxRate = total / ((performance.now() - t) / 1000);
    const rows = outbox.readPending(backlog, total, 1e12);
    t = performance.now();
    for (let i = 0; i < rows.length; i += BATCH) outbox.ack(rows.slice(i, i + BATCH).map((r) => r.seq));
    const ackRate = rows.length / ((performance.now() - t) / 1000);
    outbox.close();

    // Raw baseline: the same JSON bodies into a plain table, same pragmas, same batch size.
    const db = new Database(join(dir, 'raw.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO t (seq, body) VALUES (?, ?)');
    const fill = db.transaction((from: number, bodies: string[]) => bodies.forEach((b, i) => insert.run(from + i, b)));
    for (let i = 0; i < backlog; i += 1000) fill(i + 1, rows.slice(0, Math.min(1000, rows.length)).map((r) => r.body));
    const bodies = rows.map((r) => r.body);
    t = performance.now();
    for (let i = 0; i < bodies.length; i += BATCH) fill(backlog + 1 + i, bodies.slice(i, i + BATCH));
    const rawRate = total / ((performance.now() - t) / 1000);
    const del = db.prepare('DELETE FROM t WHERE seq = ?');
    const drop = db.transaction((from: number, n: number) => {
      for (let i = 0; i < n; i++) del.run(from + i);
    });
    t = performance.now();
    for (let i = 0; i < total; i += BATCH) drop(backlog + 1 + i, BATCH);
    const rawDeleteRate = total / ((performance.now() - t) / 1000);
    db.close();
    return { outboxRate, rawRate, ackRate, rawDeleteRate };
  } finally {
    cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(9);
  console.log(`outbox ingest, batches of ${BATCH}, WAL + synchronous=FULL (one fsync per batch)`);
  console.log('backlog    events | outbox ev/s  raw ev/s  ratio | ack ev/s  raw del/s  ratio');
  for (const [total, backlog] of [
    [20_000, 0],
    [20_000, 200_000],
  ] as const) {
    const r = measureOutboxIngest(total, backlog);
    console.log(
      `${String(backlog).padStart(7)} ${String(total).padStart(9)} | ${fmt(r.outboxRate)} ${fmt(r.rawRate)} ${(r.outboxRate / r.rawRate).toFixed(2).padStart(6)} | ${fmt(r.ackRate)} ${fmt(r.rawDeleteRate)} ${(r.ackRate / r.rawDeleteRate).toFixed(2).padStart(6)}`,
    );
  }
}
