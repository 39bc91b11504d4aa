import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox, type OutboxOptions } from '../../../agent/outbox/outbox.js';
import { validateEvent } from '../../../protocols/events/registry.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { tempDir } from '../../helpers/temp.js';

const T0 = Date.parse('2026-11-23T08:00:00Z');
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

describe('outbox', () => {
  it('stores complete, schema-valid CloudEvents with increasing plantseq', () => {
    const { outbox } = open();
    const r = outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-1', 'started', T0 + 1)]);
    expect(r).toEqual({ status: 'committed', appended: 2, duplicates: 0 });
    const rows = outbox.readPending(0, 10, 1e9);
    expect(rows.map((r) => r.seq)).toEqual([1, 2]);
    const events = rows.map((r) => JSON.parse(r.body));
    expect(events.map((e) => e.plantseq)).toEqual([1, 2]);
    for (const e of events) expect(validateEvent(e).ok).toBe(true);
    expect(events[0].source).toBe('/plantlink/plants/plant-a/sources/line');
    expect(events[0].correlationid).toBe(events[0].id);
  });

  it('dedupes the same fact and spends no sequence number on the duplicate', () => {
    const { outbox } = open();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0)]);
    const again = outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-1', 'started', T0 + 5)]);
    expect(again).toEqual({ status: 'committed', appended: 1, duplicates: 1 });
    expect(outbox.readPending(0, 10, 1e9).map((r) => r.seq)).toEqual([1, 2]);
  });

  it('never reuses a sequence number after acks and a reopen', () => {
    const { outbox, dir } = open();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-1', 'started', T0 + 1)]);
    outbox.ack([1, 2]);
    expect(outbox.stats().pending).toBe(0);
    outbox.close();
    const { outbox: reopened } = open({}, dir);
    reopened.append('line', [milestoneDraft('WO-1', 'completed', T0 + 2)]);
    expect(reopened.readPending(0, 10, 1e9).map((r) => r.seq)).toEqual([3]);
  });

  it('commits source state with the events, and neither when the outbox is full (pause policy)', () => {
    const { outbox } = open({ maxEvents: 2 });
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-1', 'started', T0 + 1)], [{ key: 'L1', value: { n: 2 } }]);
    expect(outbox.loadState('line', 'L1')).toEqual({ n: 2 });
    let resumed = 0;
    outbox.on('resumed', () => resumed++);
    const full = outbox.append('line', [milestoneDraft('WO-1', 'held', T0 + 2)], [{ key: 'L1', value: { n: 3 } }]);
    expect(full.status).toBe('paused');
    expect(outbox.loadState('line', 'L1')).toEqual({ n: 2 });
    expect(outbox.stats()).toMatchObject({ pending: 2, full: true });
    outbox.ack([1]);
    expect(resumed).toBe(1);
    expect(outbox.append('line', [milestoneDraft('WO-1', 'held', T0 + 2)], [{ key: 'L1', value: { n: 3 } }]).status).toBe('committed');
  });

  it('drop_newest drops and counts events but keeps the state moving', () => {
    const { outbox } = open({ maxEvents: 1, onFull: 'drop_newest' });
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0)]);
    const r = outbox.append('line', [milestoneDraft('WO-1', 'started', T0 + 1)], [{ key: 'L1', value: 'x' }]);
    expect(r).toEqual({ status: 'committed', appended: 0, duplicates: 0 });
    expect(outbox.stats()).toMatchObject({ pending: 1, dropped: 1 });
    expect(outbox.loadState('line', 'L1')).toBe('x');
  });

  it('quarantines an invalid event with its reason while the good ones go on', () => {
    const { outbox } = open();
    const bad = milestoneDraft('WO-2', 'started', T0);
    (bad.data as Record<string, unknown>).milestone = 'exploded';
    const r = outbox.append('line', [milestoneDraft('WO-1', 'released', T0), bad, milestoneDraft('WO-3', 'released', T0)]);
    expect(r).toMatchObject({ appended: 2 });
    const rejected = outbox.listRejected();
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ subject: 'work-order/WO-2', code: 'invalid_data' });
    expect(rejected[0]!.reason).toContain('milestone');
    expect(outbox.stats().pending).toBe(2);
  });

  it('moves events the relay refused into rejected with the relay reason', () => {
    const { outbox } = open();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-1', 'started', T0 + 1)]);
    outbox.reject([{ seq: 1, code: 'plant_mismatch', reason: 'not your plant' }]);
    expect(outbox.readPending(0, 10, 1e9).map((r) => r.seq)).toEqual([2]);
    expect(outbox.listRejected()[0]).toMatchObject({ seq: 1, code: 'plant_mismatch', reason: 'not your plant' });
  });

  it('reads pending in order, bounded by count and bytes, always at least one', () => {
    const { outbox } = open();
    outbox.append('line', Array.from({ length: 10 }, (_, i) => milestoneDraft(`WO-${i}`, 'released', T0 + i)));
    expect(outbox.readPending(0, 3, 1e9).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(outbox.readPending(3, 100, 1).map((r) => r.seq)).toEqual([4]);
    const one = outbox.readPending(0, 100, 1e9)[0]!.body.length;
    expect(outbox.readPending(0, 100, one * 2 + 2)).toHaveLength(2);
  });

  it('survives kill -9 mid-append: events and source state are never torn apart', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'append-forever.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.setEncoding('utf8');
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: string) => {
        output += chunk;
        if ((output.match(/committed/g) ?? []).length >= 50) resolve();
      });
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const { outbox } = open({}, dir);
    const state = outbox.loadState<{ batches: number }>('line', 'progress');
    const pending = outbox.readPending(0, 1e6, 1e12);
    expect(state?.batches).toBeGreaterThanOrEqual(50);
    // Every committed batch holds 10 events; the state names exactly how many batches are on disk.
    expect(pending).toHaveLength(state!.batches * 10);
    expect(pending.map((r) => r.seq)).toEqual(pending.map((_, i) => i + 1));
  });
});
