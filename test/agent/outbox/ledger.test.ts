import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox, type OutboxOptions } from '../../../agent/outbox/outbox.js';
import { deriveEventId } from '../../../protocols/events/event-id.js';
import { validateEvent } from '../../../protocols/events/registry.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { tempDir } from '../../helpers/temp.js';

const T0 = Date.parse('2026-11-23T08:00:00Z');
const DAY = 86_400_000;
const SOURCE = '/plantlink/plants/plant-a/sources/line';
let cleanups: (() => void)[] = [];
afterEach(() => {
  cleanups.forEach((c) => c());
  cleanups = [];
});

function open(overrides: Partial<OutboxOptions> = {}, dir?: string): { outbox: Outbox; dir: string } {
  let d = dir;
  if (!d) {
    const t = tempDir();
    cleanups.push(t.cleanup);
    d = t.dir;
  }
  const outbox = new Outbox({ path: join(d, 'outbox.sqlite'), plant: 'plant-a', maxBytes: 10_000_000, maxEvents: 100_000, onFull: 'pause', ...overrides });
  cleanups.unshift(() => outbox.close());
  return { outbox, dir: d };
}

const all = (outbox: Outbox) => outbox.readLedger(0, 1_000_000);

describe('outbox ledger', () => {
  it('writes one stored entry per committed event, with the event time, and keeps it after the relay\'s ack', () => {
    const { outbox } = open();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-1', 'started', T0 + 5)]);
    const pending = outbox.readPending(0, 10, 1e9);
    expect(all(outbox)).toEqual([
      { seq: 1, id: pending[0]!.id, source: SOURCE, type: 'com.plantlink.production.milestone.v1', subject: 'work-order/WO-1', timeMs: T0, status: 'stored' },
      { seq: 2, id: pending[1]!.id, source: SOURCE, type: 'com.plantlink.production.milestone.v1', subject: 'work-order/WO-1', timeMs: T0 + 5, status: 'stored' },
    ]);
    outbox.ack(pending.map((p) => p.seq));
    expect(outbox.stats().pending).toBe(0);
    expect(all(outbox)).toHaveLength(2);
  });

  it('does not write a duplicate append twice', () => {
    const { outbox } = open();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0)]);
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-1', 'started', T0 + 1)]);
    expect(all(outbox).map((e) => e.timeMs)).toEqual([T0, T0 + 1]);
  });

  it('writes nothing for a paused append', () => {
    const { outbox } = open({ maxEvents: 2 });
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-1', 'started', T0 + 1)]);
    expect(outbox.append('line', [milestoneDraft('WO-1', 'held', T0 + 2)]).status).toBe('paused');
    expect(all(outbox)).toHaveLength(2);
  });

  it('writes nothing when the append\'s transaction rolls back', () => {
    const { outbox } = open();
    // A state value JSON cannot hold fails inside the transaction, after the events were inserted.
    expect(() => outbox.append('line', [milestoneDraft('WO-1', 'released', T0)], [{ key: 'L1', value: 1n }])).toThrow();
    expect(outbox.stats().pending).toBe(0);
    expect(all(outbox)).toEqual([]);
  });

  it('records events the drop_newest policy dropped as dropped', () => {
    const { outbox } = open({ maxEvents: 1, onFull: 'drop_newest' });
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0)]);
    outbox.append('line', [milestoneDraft('WO-2', 'released', T0 + 1), milestoneDraft('WO-3', 'released', T0 + 2)]);
    expect(outbox.stats()).toMatchObject({ pending: 1, dropped: 2 });
    expect(all(outbox).map((e) => [e.subject, e.status])).toEqual([
      ['work-order/WO-1', 'stored'],
      ['work-order/WO-2', 'dropped'],
      ['work-order/WO-3', 'dropped'],
    ]);
  });

  it('prunes by event time past the retention, a bounded number per call, and never reuses a seq', () => {
    let now = T0;
    const { outbox } = open({ ledgerRetentionDays: 35, now: () => now });
    outbox.append('line', Array.from({ length: 5 }, (_, i) => milestoneDraft(`WO-old-${i}`, 'released', T0 - 40 * DAY + i)));
    outbox.append('line', [milestoneDraft('WO-new', 'released', T0 - 30 * DAY)]);
    // Older by event time, newer by append: pruned by its time, not its position.
    outbox.append('line', [milestoneDraft('WO-late', 'released', T0 - 50 * DAY)]);
    expect(outbox.pruneLedger(4)).toBe(4);
    expect(outbox.pruneLedger(4)).toBe(2);
    expect(outbox.pruneLedger(4)).toBe(0);
    expect(all(outbox).map((e) => e.subject)).toEqual(['work-order/WO-new']);
    now = T0 + 10 * DAY;
    expect(outbox.pruneLedger()).toBe(1);
    outbox.append('line', [milestoneDraft('WO-next', 'released', now)]);
    expect(all(outbox)).toMatchObject([{ seq: 8, subject: 'work-order/WO-next' }]);
  });

  it('prunes the oldest rows (by seq) beyond the row cap, a bounded number per call, and counts those never sent', () => {
    const { outbox } = open({ ledgerMaxRows: 5 });
    // Event times out of order: the cap goes by age in the ledger, not by event time.
    outbox.append('line', Array.from({ length: 12 }, (_, i) => milestoneDraft(`WO-${i + 1}`, 'released', T0 + (i % 2 ? -i : i))));
    outbox.ackLedger(3);
    expect(outbox.trimLedger(4)).toEqual({ pruned: 4, unsent: 1 });
    expect(outbox.trimLedger(4)).toEqual({ pruned: 3, unsent: 3 });
    expect(outbox.trimLedger(4)).toEqual({ pruned: 0, unsent: 0 });
    expect(all(outbox).map((e) => e.seq)).toEqual([8, 9, 10, 11, 12]);
    // What the sender reads next starts after the pruned rows; the cursor itself never moves back.
    expect(outbox.ledgerCursor()).toBe(3);
    expect(outbox.readLedger(outbox.ledgerCursor(), 10).map((e) => e.seq)).toEqual([8, 9, 10, 11, 12]);
    outbox.append('line', [milestoneDraft('WO-13', 'released', T0)]);
    expect(outbox.trimLedger()).toEqual({ pruned: 1, unsent: 1 });
    expect(all(outbox).map((e) => e.seq)).toEqual([9, 10, 11, 12, 13]);
  });

  it('counts rows, not the seq span, against the row cap when retention left gaps', () => {
    const { outbox } = open({ ledgerMaxRows: 3, ledgerRetentionDays: 35, now: () => T0 });
    outbox.append('line', [
      milestoneDraft('WO-1', 'released', T0),
      milestoneDraft('WO-old-1', 'released', T0 - 40 * DAY),
      milestoneDraft('WO-old-2', 'released', T0 - 40 * DAY),
      milestoneDraft('WO-2', 'released', T0),
      milestoneDraft('WO-3', 'released', T0),
    ]);
    expect(outbox.pruneLedger()).toBe(2);
    // Seqs 1, 4, 5: a span of 5, but 3 rows, so none are over the cap.
    expect(outbox.trimLedger()).toEqual({ pruned: 0, unsent: 0 });
    expect(all(outbox).map((e) => e.seq)).toEqual([1, 4, 5]);
  });

  it('stores a fractional event time as whole ms, truncated as the event\'s time is', () => {
    const { outbox } = open();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0 + 0.999), milestoneDraft('WO-2', 'released', T0 + 7.5)]);
    const times = all(outbox).map((e) => e.timeMs);
    expect(times).toEqual([T0, T0 + 7]);
    const events = outbox.readPending(0, 10, 1e9).map((r) => (JSON.parse(r.body) as { time: string }).time);
    expect(events.map((t) => Date.parse(t))).toEqual(times);
  });

  it('keeps the ledger cursor across a reopen, and never moves it back', () => {
    const { outbox, dir } = open();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-1', 'started', T0 + 1), milestoneDraft('WO-1', 'held', T0 + 2)]);
    expect(outbox.ledgerCursor()).toBe(0);
    outbox.ackLedger(2);
    outbox.ackLedger(1);
    expect(outbox.ledgerCursor()).toBe(2);
    outbox.close();
    const { outbox: reopened } = open({}, dir);
    expect(reopened.ledgerCursor()).toBe(2);
    expect(reopened.readLedger(reopened.ledgerCursor(), 10).map((e) => e.seq)).toEqual([3]);
  });

  it('opens an outbox file written before the ledger existed, and adds the ledger to it', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const db = new Database(join(t.dir, 'outbox.sqlite'));
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL, type TEXT NOT NULL, subject TEXT NOT NULL,
        created_ms INTEGER NOT NULL, bytes INTEGER NOT NULL, body TEXT NOT NULL);
      CREATE UNIQUE INDEX outbox_dedupe ON outbox (id, source);
      CREATE TABLE rejected (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL, type TEXT NOT NULL, subject TEXT NOT NULL,
        created_ms INTEGER NOT NULL, body TEXT NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL, rejected_ms INTEGER NOT NULL);
      CREATE TABLE source_state (source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (source, key));
      INSERT INTO meta VALUES ('schema_version', '1'), ('next_seq', '8');
      INSERT INTO outbox VALUES (7, 'old-id', '${SOURCE}', 't', 's', 1, 2, '{}');
    `);
    db.close();
    const { outbox } = open({}, t.dir);
    expect(outbox.stats()).toMatchObject({ pending: 1, nextSeq: 8 });
    expect(outbox.ledgerCursor()).toBe(0);
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0)]);
    expect(outbox.readPending(0, 10, 1e9).map((r) => r.seq)).toEqual([7, 8]);
    expect(all(outbox)).toMatchObject([{ seq: 1, subject: 'work-order/WO-1', status: 'stored' }]);
  });
});

describe('outbox event trace attributes', () => {
  it('stamps readtime (the source\'s read, else the append) and outboxtime (the append), and leaves the id to the fact', () => {
    const appendMs = T0 + 60_000;
    const { outbox } = open({ now: () => appendMs });
    const read = { ...milestoneDraft('WO-1', 'released', T0), readAtMs: T0 + 1500 };
    const plain = milestoneDraft('WO-1', 'started', T0 + 1);
    outbox.append('line', [read, plain]);
    const [a, b] = outbox.readPending(0, 10, 1e9).map((r) => JSON.parse(r.body) as Record<string, unknown>);
    expect(a).toMatchObject({ readtime: new Date(T0 + 1500).toISOString(), outboxtime: new Date(appendMs).toISOString() });
    expect(b).toMatchObject({ readtime: new Date(appendMs).toISOString(), outboxtime: new Date(appendMs).toISOString() });
    expect(a!.id).toBe(deriveEventId(read.fact));
    expect(b!.id).toBe(deriveEventId(plain.fact));
    for (const e of [a, b]) expect(validateEvent(e).ok).toBe(true);

    // The same fact read again later, by another outbox: other times, the same id.
    const { outbox: other } = open({ now: () => appendMs + 5000 });
    other.append('line', [{ ...read, readAtMs: T0 + 9000 }]);
    const again = JSON.parse(other.readPending(0, 1, 1e9)[0]!.body) as Record<string, unknown>;
    expect(again.id).toBe(a!.id);
    expect(again.readtime).not.toBe(a!.readtime);
  });
});
