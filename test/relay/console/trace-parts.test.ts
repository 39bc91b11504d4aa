import { describe, expect, it } from 'vitest';
import { traceOf } from '../../../relay/console/trace.js';
import { LatencyWindow, readTimeMs } from '../../../relay/metrics/latency-window.js';
import type { TracedEvent } from '../../../relay/store/store.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

describe('agent-to-sink latency window', () => {
  it('gives p50, p95 and max per minute within a bucket, empty minutes as null, and forgets after an hour', () => {
    let now = 120 * 60_000;
    const w = new LatencyWindow(() => now);
    for (let i = 1; i <= 100; i++) w.record(i * 10); // 10 ms .. 1000 ms
    now += 60_000;
    w.record(5);
    const hour = w.lastHour();
    expect(hour).toHaveLength(60);
    const m = hour.at(-2)!;
    expect(m.count).toBe(100);
    expect(m.max).toBe(1000);
    // Within one bucket (9 %) of the exact quantiles 500 and 950.
    expect(m.p50!).toBeGreaterThanOrEqual(500);
    expect(m.p50!).toBeLessThanOrEqual(500 * 1.09);
    expect(m.p95!).toBeGreaterThanOrEqual(950);
    expect(m.p95!).toBeLessThanOrEqual(1000);
    expect(hour.at(-1)).toMatchObject({ count: 1, max: 5 });
    expect(hour.at(-3)).toEqual({ minuteMs: now - 2 * 60_000 - (now % 60_000), count: 0, p50: null, p95: null, max: null });
    w.record(-20); // a plant clock ahead of ours: counted as immediate
    expect(w.lastHour().at(-1)!.count).toBe(2);
    now += 61 * 60_000;
    expect(w.lastHour().every((x) => x.count === 0)).toBe(true);
  });

  it('measures from the agent\'s readtime, and leaves out events without one (their event time is the plant\'s history, not the path)', () => {
    const e = milestoneEvent('WO-1', 'released', 1);
    expect(readTimeMs(e)).toBeUndefined();
    expect(readTimeMs({ ...e, readtime: '2026-11-23T10:00:00.250Z' })).toBe(Date.parse('2026-11-23T10:00:00.250Z'));
    expect(readTimeMs({ ...e, readtime: 'not a time' })).toBeUndefined();
  });
});

describe('event trace hops', () => {
  const base = (over: Partial<TracedEvent>): TracedEvent => {
    const e = milestoneEvent('WO-1', 'started', 2, { salesOrder: 'SO-9' });
    const t = Date.parse(e.time);
    return {
      seq: 1, id: e.id, source: e.source, type: e.type, subject: e.subject, plant: 'P1', agent: 'agent-1', timeMs: t, plantseq: 7,
      correlationId: e.correlationid, salesOrder: 'SO-9', receivedMs: t + 30,
      event: { ...e, readtime: new Date(t + 5).toISOString(), outboxtime: new Date(t + 8).toISOString() },
      deliveries: [], ...over,
    };
  };

  it('lists read, outbox, received and routed with their times, then each lane\'s outcome with the CRM record id', () => {
    const t = base({});
    const e = traceOf({
      ...t,
      deliveries: [
        { lane: 'crm', status: 'delivered', attempts: 2, updatedMs: t.timeMs + 90, nextAttemptMs: 0, recordIds: ['a0X1', 'a0Y2'], lastError: null, errorCode: null },
        { lane: 'erp', status: 'dead', attempts: 1, updatedMs: t.timeMs + 70, nextAttemptMs: 0, recordIds: [], lastError: 'bad item', errorCode: 'INVALID_FLD' },
      ],
    });
    expect(e.hops.map((h) => [h.hop, h.atMs === null ? null : h.atMs - t.timeMs, h.lane ?? ''])).toEqual([
      ['read', 5, ''], ['outbox', 8, ''], ['received', 30, ''], ['routed', 30, ''], ['delivered', 90, 'crm'], ['dead-lettered', 70, 'erp'],
    ]);
    expect(e.hops[3]!.detail).toBe('routed to crm, erp');
    expect(e.hops[4]).toMatchObject({ recordIds: ['a0X1', 'a0Y2'], detail: 'delivered to crm after 2 attempts' });
    expect(e.hops[5]!.detail).toContain('INVALID_FLD: bad item');
    expect(e.what).toBe('started');
    expect(e.endToEndMs).toBeNull(); // one lane dead-lettered
  });

  it('gives the end-to-end time from the read once every lane delivered, and says when nothing routed', () => {
    const t = base({});
    const done = traceOf({ ...t, deliveries: [{ lane: 'crm', status: 'delivered', attempts: 1, updatedMs: t.timeMs + 65, nextAttemptMs: 0, recordIds: ['a0X1'], lastError: null, errorCode: null }] });
    expect(done.endToEndMs).toBe(60);
    expect(done.endToEndFrom).toBe('read');
    const pending = traceOf({ ...t, deliveries: [{ lane: 'crm', status: 'pending', attempts: 3, updatedMs: 0, nextAttemptMs: t.timeMs + 5000, recordIds: [], lastError: 'HTTP 503', errorCode: 'http_503' }] });
    expect(pending.hops.at(-1)).toMatchObject({ hop: 'pending', atMs: null, lane: 'crm' });
    expect(pending.hops.at(-1)!.detail).toContain('3 attempts so far');
    const old = traceOf({ ...t, event: { ...t.event, readtime: undefined, outboxtime: undefined }, deliveries: [] });
    expect(old.hops.slice(0, 2).map((h) => h.atMs)).toEqual([null, null]);
    expect(old.endToEndFrom).toBe('event');
    expect(old.hops[3]!.detail).toBe('no route matched: delivered nowhere');
  });
});
