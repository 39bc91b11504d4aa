/**
 * The store contract (relay/store/store.ts), one suite for every RelayStore: each
 * implementation's test file calls `storeContract` with a factory.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CloudEventV1 } from '../../../protocols/events/envelope.js';
import type { ClaimedDelivery, IngressRejection, RelayStore } from '../../../relay/store/store.js';
import { milestoneEvent, shipmentEvent } from '../sinks/salesforce/fixtures.js';

export interface StoreUnderTest {
  store: RelayStore;
  /** Closes and opens the same state again (a restart). */
  reopen(): Promise<RelayStore>;
  cleanup(): Promise<void>;
}

/** `now` is the clock the store must use for due times and receipt times. */
export type StoreFactory = (now: () => number) => Promise<StoreUnderTest>;

const delivered = (d: ClaimedDelivery, recordIds: string[] = []) => ({ kind: 'delivered' as const, d, subject: d.subject, recordIds, stale: d.stale });

export function storeContract(name: string, factory: StoreFactory): void {
  describe(`store contract: ${name}`, () => {
    let now = 1_000_000;
    let sut: StoreUnderTest;
    let store: RelayStore;
    beforeEach(async () => {
      now = 1_000_000;
      sut = await factory(() => now);
      store = sut.store;
    });
    afterEach(async () => {
      await store.close();
      await sut.cleanup();
    });

    const put = (events: CloudEventV1[], sinks = ['crm', 'erp'], rejections: IngressRejection[] = []) =>
      store.store('agent-1', events.map((event) => ({ event, body: JSON.stringify(event), sinks })), rejections);

    it('dedupes on (id, source) across a reopen, also within one batch, and routes each new event to every lane once', async () => {
      const a = milestoneEvent('WO-1', 'released', 1);
      expect(await put([a, a])).toEqual({ stored: 1, duplicates: 1 });
      store = await sut.reopen();
      expect(await put([a, milestoneEvent('WO-1', 'started', 2)])).toEqual({ stored: 1, duplicates: 1 });
      // Same id from another source is another event.
      const other = { ...a, source: `${a.source}-2` };
      expect(await put([other])).toEqual({ stored: 1, duplicates: 0 });
      expect(await store.counts()).toEqual({ events: 3, pending: 6, delivered: 0, dead: 0, ingressRejections: 0 });
    });

    it('stores ingress rejections with the batch and lists them newest first', async () => {
      const r = (id: string): IngressRejection => ({ agent: 'agent-1', plant: 'P1', id, code: 'invalid_data', reason: 'bad', body: '{}' });
      await put([milestoneEvent('WO-1', 'released', 1)], ['crm'], [r('x1'), r('x2')]);
      expect((await store.listIngressRejections()).map((x) => x.eventId)).toEqual(['x2', 'x1']);
      expect(await store.counts()).toMatchObject({ events: 1, ingressRejections: 2 });
    });

    it('claims only the oldest pending delivery of each subject, oldest first, and nothing of a subject backing off', async () => {
      await put([milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 1), milestoneEvent('WO-1', 'started', 2)]);
      const due = await store.claim('crm', 10);
      expect(due.map((d) => d.subject)).toEqual(['P1/work-order/WO-1', 'P1/work-order/WO-2']);
      expect(due.map((d) => JSON.parse(d.body).data.milestone)).toEqual(['released', 'released']);
      expect(await store.record('crm', [{ kind: 'retry', d: due[0]!, error: 'HTTP 503', code: 'transient', nextAttemptMs: now + 5000 }])).toEqual({ recorded: 1, discarded: 0 });
      await store.record('crm', [delivered(due[1]!)]);
      expect(await store.claim('crm', 10)).toEqual([]);
      expect(await store.nextDueMs('crm')).toBe(now + 5000);
      now += 5000;
      const again = await store.claim('crm', 10);
      expect(again.map((d) => [d.subject, d.attempts])).toEqual([['P1/work-order/WO-1', 1]]);
      await store.record('crm', [delivered(again[0]!)]);
      // The follower is the head now.
      const next = await store.claim('crm', 10);
      expect(next.map((d) => JSON.parse(d.body).data.milestone)).toEqual(['started']);
      // Lanes are independent: erp still has all three heads' worth of work.
      expect((await store.claim('erp', 10)).length).toBe(2);
    });

    it('advances the subject version only forwards, and marks an older event stale', async () => {
      const newer = milestoneEvent('WO-1', 'completed', 50);
      const older = milestoneEvent('WO-1', 'started', 10);
      // The newer one arrives (and is stored) first.
      await put([newer], ['crm']);
      await put([older], ['crm']);
      const [first] = await store.claim('crm', 10);
      expect(first).toMatchObject({ stale: false, timeMs: Date.parse(newer.time) });
      await store.record('crm', [delivered(first!)]);
      const [second] = await store.claim('crm', 10);
      expect(second).toMatchObject({ stale: true, timeMs: Date.parse(older.time) });
      // Even recorded as not stale, an older version never replaces a newer one.
      await store.record('crm', [{ ...delivered(second!), stale: false }]);
      await put([milestoneEvent('WO-1', 'released', 20)], ['crm']);
      const [third] = await store.claim('crm', 10);
      expect(third!.stale).toBe(true);
    });

    it('keeps order and versions per plant: another plant\'s WO-1 neither waits on nor outdates this one', async () => {
      const mine = milestoneEvent('WO-1', 'completed', 50);
      const theirs = { ...milestoneEvent('WO-1', 'released', 1), plant: 'P2', source: '/plantlink/plants/P2/sources/line-opcua' };
      await put([mine, theirs], ['crm']);
      const due = await store.claim('crm', 10);
      expect(due.map((d) => d.subject)).toEqual(['P1/work-order/WO-1', 'P2/work-order/WO-1']);
      await store.record('crm', [delivered(due[0]!)]);
      expect(due[1]!.stale).toBe(false);
    });

    it('dead-letters, lists and shows dead letters by filter, and replays them', async () => {
      await put([milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 1)], ['crm']);
      const due = await store.claim('crm', 10);
      await store.record('crm', [
        { kind: 'dead', d: due[0]!, error: 'Quantity invalid', code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' },
        { kind: 'dead', d: due[1]!, error: 'nope', code: 'OTHER' },
      ]);
      expect(await store.claim('crm', 10)).toEqual([]);
      const dead = await store.listDeliveries({ status: 'dead', code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' });
      expect(dead).toEqual([expect.objectContaining({ sink: 'crm', subject: 'work-order/WO-1', status: 'dead', attempts: 1, errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', lastError: 'Quantity invalid', plant: 'P1' })]);
      const one = await store.getDelivery('crm', dead[0]!.inboxSeq);
      expect(one).toMatchObject({ agent: 'agent-1', event: { subject: 'work-order/WO-1' } });
      expect(await store.getDelivery('crm', 999_999)).toBeUndefined();
      expect(await store.replayDead({})).toBe(0);
      expect(await store.replayDead({ subject: 'work-order/WO-2' })).toBe(1);
      expect((await store.claim('crm', 10)).map((d) => d.subject)).toEqual(['P1/work-order/WO-2']);
      expect(await store.replayDead({ all: true })).toBe(1);
      expect(await store.counts()).toMatchObject({ pending: 2, dead: 0 });
    });

    it('reports the backlog per lane and pending events per plant', async () => {
      now = 2_000_000;
      await put([milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 2)]);
      const [d] = await store.claim('crm', 1);
      await store.record('crm', [{ kind: 'dead', d: d!, error: 'x', code: 'X' }]);
      const backlog = (await store.deliveryBacklog()).sort((a, b) => a.sink.localeCompare(b.sink));
      expect(backlog).toEqual([
        { sink: 'crm', pending: 1, dead: 1, oldestPendingReceivedMs: 2_000_000 },
        { sink: 'erp', pending: 2, dead: 0, oldestPendingReceivedMs: 2_000_000 },
      ]);
      expect(await store.pendingByPlant()).toEqual([{ plant: 'P1', events: 2, oldestTimeMs: Date.parse(milestoneEvent('WO-1', 'released', 1).time) }]);
      expect(await store.pendingByPlant({ sinks: ['crm'] })).toEqual([{ plant: 'P1', events: 1, oldestTimeMs: Date.parse(milestoneEvent('WO-2', 'released', 2).time) }]);
      expect(await store.pendingByPlant({ types: [] })).toEqual([]);
    });

    it('prunes delivered events past the retention window, keeping dead letters and pending deliveries', async () => {
      await put([milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 1), milestoneEvent('WO-3', 'released', 1)]);
      const [d1, d2] = await store.claim('crm', 2);
      await store.record('crm', [delivered(d1!, ['a']), { kind: 'dead', d: d2!, error: 'bad', code: 'X' }]);
      await store.record('erp', (await store.claim('erp', 10)).map((d) => delivered(d, ['b'])));
      await store.listIngressRejections();
      now += 10_000;
      const pruned = await store.prune(now - 1000);
      expect(pruned.events).toBe(1);
      expect(await store.counts()).toMatchObject({ events: 2, dead: 1, pending: 1 });
      // A pruned event is forgotten: sent again, it is stored (and delivered) again.
      expect(await put([milestoneEvent('WO-1', 'released', 1)])).toEqual({ stored: 1, duplicates: 0 });
    });

    it('forgets a subject\'s applied version only once no delivery of it was recorded for the window and nothing of it is pending or dead', async () => {
      const keys = ['WO-1', 'WO-2', 'WO-3', 'WO-4', 'WO-5'].map((wo) => `P1/work-order/${wo}`);
      const remembered = async () => (await store.appliedVersions('crm', keys)).map((v) => v.orderKey.replace('P1/work-order/', '')).sort();
      const deliverAll = async () => store.record('crm', (await store.claim('crm', 10)).map((d) => delivered(d)));
      // At 1,000,000: WO-1 delivered twice; WO-2 delivered, then dead-lettered; WO-3 delivered, then one pending (retrying much later);
      // WO-5 delivered.
      await put([milestoneEvent('WO-1', 'released', 10), milestoneEvent('WO-2', 'released', 10), milestoneEvent('WO-3', 'released', 10), milestoneEvent('WO-5', 'started', 20)], ['crm']);
      await deliverAll();
      await put([milestoneEvent('WO-1', 'started', 20), milestoneEvent('WO-2', 'started', 20), milestoneEvent('WO-3', 'started', 20)], ['crm']);
      const second = await store.claim('crm', 10);
      const of = (wo: string) => second.find((d) => d.subject === `P1/work-order/${wo}`)!;
      await store.record('crm', [
        delivered(of('WO-1')),
        { kind: 'dead', d: of('WO-2'), error: 'bad', code: 'X' },
        { kind: 'retry', d: of('WO-3'), error: 'HTTP 503', code: 'transient', nextAttemptMs: 9e12 },
      ]);
      // Later, at 1,100,000: WO-4's old event (an agent back from a long outage) is delivered; WO-5 gets an older
      // event, delivered as stale: recording it counts as activity too.
      now = 1_100_000;
      await put([milestoneEvent('WO-4', 'released', 1)], ['crm']);
      await deliverAll();
      await put([milestoneEvent('WO-5', 'released', 5)], ['crm']);
      const [stale] = await store.claim('crm', 10);
      expect(stale).toMatchObject({ subject: 'P1/work-order/WO-5', stale: true });
      await store.record('crm', [delivered(stale!)]);
      expect(await remembered()).toEqual(['WO-1', 'WO-2', 'WO-3', 'WO-4', 'WO-5']);

      // The window starts at 1,050,000: only WO-1 is quiet since and has nothing pending or dead.
      expect((await store.prune(1_050_000)).versions).toBe(1);
      expect(await remembered()).toEqual(['WO-2', 'WO-3', 'WO-4', 'WO-5']);
      // WO-5's stale event did not move its version.
      expect((await store.appliedVersions('crm', ['P1/work-order/WO-5']))[0]!.timeMs).toBe(Date.parse(milestoneEvent('WO-5', 'started', 20).time));
      // A second prune finds nothing more; the dead letter replayed and delivered at 1,100,000 keeps its version.
      expect((await store.prune(1_050_000)).versions).toBe(0);
      expect(await store.replayDead({ subject: 'work-order/WO-2' })).toBe(1);
      await deliverAll();
      expect((await store.prune(1_050_000)).versions).toBe(0);
      expect(await remembered()).toEqual(['WO-2', 'WO-3', 'WO-4', 'WO-5']);
      // Quiet for a whole window later, all go but WO-3, still pending.
      expect((await store.prune(1_200_000)).versions).toBe(3);
      expect(await remembered()).toEqual(['WO-3']);
      // A subject whose version is forgotten (its events are too) takes an older event as the newest.
      await put([milestoneEvent('WO-1', 'released', 3)], ['crm']);
      expect((await store.claim('crm', 10)).map((d) => [d.subject, d.stale])).toEqual([['P1/work-order/WO-1', false]]);
    });

    it('finds events for the trace by work order, shipment, sales order, correlation id, event id and time, with every lane', async () => {
      const wo1 = milestoneEvent('WO-1', 'released', 1, { salesOrder: 'SO-9' });
      const wo1b = milestoneEvent('WO-1', 'started', 2, { salesOrder: 'SO-9' });
      const wo2 = { ...milestoneEvent('WO-2', 'released', 3), correlationid: 'corr-42' };
      const sh = shipmentEvent('SH-7', 'shipped', 4);
      await put([wo1, wo1b, wo2, sh], ['crm', 'erp']);
      const ids = async (key: string) => (await store.findEvents({ key, limit: 10 })).map((e) => e.id);
      expect(await ids('WO-1')).toEqual([wo1.id, wo1b.id]);
      expect(await ids('work-order/WO-1')).toEqual([wo1.id, wo1b.id]);
      expect(await ids('SH-7')).toEqual([sh.id]);
      expect(await ids('SO-9')).toEqual([wo1.id, wo1b.id]);
      expect(await ids('SO-100')).toEqual([wo2.id, sh.id]);
      expect(await ids('corr-42')).toEqual([wo2.id]);
      expect(await ids(wo1b.id)).toEqual([wo1b.id]);
      expect(await ids('nothing')).toEqual([]);

      const [head] = await store.claim('crm', 1);
      now += 250;
      await store.record('crm', [delivered(head!, ['a0X1'])]);
      const [traced] = await store.findEvents({ key: wo1.id, limit: 1 });
      expect(traced).toMatchObject({ id: wo1.id, plant: 'P1', agent: 'agent-1', receivedMs: 1_000_000, salesOrder: 'SO-9', correlationId: wo1.correlationid });
      expect(traced!.event).toEqual(wo1);
      expect(traced!.deliveries).toEqual([
        { lane: 'crm', status: 'delivered', attempts: 1, updatedMs: 1_000_250, nextAttemptMs: 0, recordIds: ['a0X1'], lastError: null, errorCode: null },
        { lane: 'erp', status: 'pending', attempts: 0, updatedMs: 1_000_000, nextAttemptMs: 0, recordIds: [], lastError: null, errorCode: null },
      ]);

      const t = (e: { time: string }) => Date.parse(e.time);
      const window = await store.findEvents({ fromMs: t(wo1b), toMs: t(sh), limit: 10 });
      expect(window.map((e) => e.id)).toEqual([wo1b.id, wo2.id]);
      const page1 = await store.findEvents({ limit: 2 });
      const page2 = await store.findEvents({ afterSeq: page1.at(-1)!.seq, limit: 2 });
      expect([...page1, ...page2].map((e) => e.id)).toEqual([wo1.id, wo1b.id, wo2.id, sh.id]);
      expect(await store.findEvents({ plant: 'P2', limit: 10 })).toEqual([]);
      expect((await store.findEvents({ newestFirst: true, limit: 2 })).map((e) => e.id)).toEqual([sh.id, wo2.id]);
      expect((await store.findEvents({ key: 'WO-1', newestFirst: true, limit: 5 })).map((e) => e.id)).toEqual([wo1b.id, wo1.id]);
    });

    it('resends delivered deliveries (only those) in subject order, and reports applied versions', async () => {
      const a = milestoneEvent('WO-1', 'released', 1);
      const b = milestoneEvent('WO-1', 'started', 2);
      await put([a, b], ['crm']);
      for (let i = 0; i < 2; i++) {
        const [d] = await store.claim('crm', 5);
        await store.record('crm', [delivered(d!)]);
      }
      expect(await store.appliedVersions('crm', ['P1/work-order/WO-1', 'P1/work-order/WO-9'])).toEqual([
        { orderKey: 'P1/work-order/WO-1', timeMs: Date.parse(b.time), plantseq: b.plantseq },
      ]);
      const seqs = (await store.findEvents({ key: 'WO-1', limit: 5 })).map((e) => e.seq);
      expect(await store.resend('crm', seqs)).toBe(2);
      expect(await store.resend('crm', seqs)).toBe(0); // already pending
      const claimed = await store.claim('crm', 5);
      expect(claimed.map((d) => d.inboxSeq)).toEqual([seqs[0]]); // the subject's oldest first
      expect(claimed[0]!.stale).toBe(true); // older than the applied version: per-event records only
      await store.record('crm', [delivered(claimed[0]!)]);
      const next = await store.claim('crm', 5);
      expect(next.map((d) => [d.inboxSeq, d.stale])).toEqual([[seqs[1], false]]); // the applied version itself is not stale
    });

    it('finds the events of many subjects at given times in one call, with their deliveries, and only of the named plant', async () => {
      const wo1 = milestoneEvent('WO-1', 'released', 1);
      const wo1Later = milestoneEvent('WO-1', 'started', 2);
      const wo2 = milestoneEvent('WO-2', 'completed', 1);
      const otherPlant = { ...milestoneEvent('WO-1', 'released', 1), plant: 'P2', source: '/plantlink/plants/P2/sources/line-opcua' };
      await put([wo1, wo1Later, wo2, otherPlant], ['crm']);
      const [head] = await store.claim('crm', 1);
      await store.record('crm', [delivered(head!, ['rec-1'])]);
      const at = (e: CloudEventV1) => ({ plant: e.plant as string, subject: e.subject!, timeMs: Date.parse(e.time!) });
      const found = await store.eventsAt([at(wo1), at(wo2), { ...at(wo1), plant: 'P9' }, { ...at(wo2), timeMs: 1 }]);
      expect(found.map((e) => e.id).sort()).toEqual([wo1.id, wo2.id].sort());
      expect(found.find((e) => e.id === wo1.id)!.deliveries).toMatchObject([{ lane: 'crm', status: 'delivered', recordIds: ['rec-1'] }]);
      expect(found.find((e) => e.id === wo2.id)!.event).toEqual(wo2);
      expect(await store.eventsAt([])).toEqual([]);
    });

    it('keeps agents\' ledgers idempotently and lists them by event time and plant', async () => {
      const entry = (id: string, timeMs: number, status: 'stored' | 'dropped' = 'stored') => ({ id, source: '/plantlink/plants/P1/sources/s', type: 't', subject: 'work-order/WO-1', timeMs, status });
      expect(await store.addLedger('agent-1', 'P1', [entry('e1', 100), entry('e2', 200), entry('e3', 300, 'dropped')])).toBe(3);
      expect(await store.addLedger('agent-1', 'P1', [entry('e2', 200), entry('e4', 400)])).toBe(1);
      // A fact dropped when the outbox was full and later stored counts as stored; never the other way.
      await store.addLedger('agent-1', 'P1', [entry('e5', 500, 'dropped')]);
      await store.addLedger('agent-1', 'P1', [entry('e5', 500, 'stored')]);
      await store.addLedger('agent-1', 'P1', [entry('e2', 200, 'dropped')]);
      expect((await store.ledger({ fromMs: 200, toMs: 501, limit: 10 })).filter((r) => ['e2', 'e5'].includes(r.id)).map((r) => [r.id, r.status])).toEqual([['e2', 'stored'], ['e5', 'stored']]);
      await store.addLedger('agent-2', 'P2', [{ ...entry('e9', 150), source: '/plantlink/plants/P2/sources/s' }]);
      const rows = await store.ledger({ fromMs: 100, toMs: 400, limit: 10 });
      expect(rows.map((r) => [r.id, r.plant, r.status])).toEqual([['e1', 'P1', 'stored'], ['e2', 'P1', 'stored'], ['e3', 'P1', 'dropped'], ['e9', 'P2', 'stored']]);
      expect(rows[0]).toMatchObject({ agent: 'agent-1', receivedMs: 1_000_000, type: 't', subject: 'work-order/WO-1', timeMs: 100 });
      expect((await store.ledger({ plant: 'P1', fromMs: 0, toMs: 1000, limit: 10 })).map((r) => r.id)).toEqual(['e1', 'e2', 'e3', 'e4', 'e5']);
      const first = await store.ledger({ plant: 'P1', fromMs: 0, toMs: 1000, limit: 2 });
      expect((await store.ledger({ plant: 'P1', fromMs: 0, toMs: 1000, afterSeq: first.at(-1)!.seq, limit: 10 })).map((r) => r.id)).toEqual(['e3', 'e4', 'e5']);
      // Pruned by event time.
      await store.prune(350);
      expect((await store.ledger({ fromMs: 0, toMs: 1000, limit: 10 })).map((r) => r.id)).toEqual(['e4', 'e5']);
    });

    it('says it is closed once closed', async () => {
      expect(store.open).toBe(true);
      await store.close();
      expect(store.open).toBe(false);
    });
  });
}
