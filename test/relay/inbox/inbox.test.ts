import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CloudEventV1 } from '../../../protocols/events/envelope.js';
import { Inbox } from '../../../relay/inbox/inbox.js';
import { tempDir } from '../../helpers/temp.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

let now = 1_000_000;
let inbox: Inbox;
let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  inbox = new Inbox(join(dir, 'inbox.sqlite'), () => now);
});
afterEach(() => {
  inbox.close();
  cleanup();
});

const store = (...events: CloudEventV1[]) => inbox.store('agent-1', events.map((event) => ({ event, body: JSON.stringify(event), sinks: ['crm', 'erp'] })), []);

describe('inbox', () => {
  it('dedupes on (source, id) across a reopen, and routes each new event to every sink once', () => {
    const a = milestoneEvent('WO-1', 'released', 1);
    expect(store(a)).toEqual({ stored: 1, duplicates: 0 });
    inbox.close();
    inbox = new Inbox(join(dir, 'inbox.sqlite'), () => now);
    expect(store(a, milestoneEvent('WO-1', 'started', 2))).toEqual({ stored: 1, duplicates: 1 });
    expect(inbox.counts()).toMatchObject({ events: 2, pending: 4 });
  });

  it('offers only the oldest pending delivery of each subject, and nothing of a subject that is backing off', () => {
    store(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 1), milestoneEvent('WO-1', 'started', 2));
    const due = inbox.due('crm', 10);
    expect(due.map((d) => d.subject)).toEqual(['P1/work-order/WO-1', 'P1/work-order/WO-2']);
    inbox.record('crm', [{ kind: 'retry', d: due[0]!, error: 'HTTP 503', code: 'transient', nextAttemptMs: now + 5000 }]);
    expect(inbox.due('crm', 10).map((d) => d.subject)).toEqual(['P1/work-order/WO-2']);
    now += 5000;
    expect(inbox.due('crm', 10).map((d) => d.subject)).toEqual(['P1/work-order/WO-1', 'P1/work-order/WO-2']);
  });

  it('keeps order and versions per plant: another plant\'s WO-1 neither waits on nor outdates this one', () => {
    const mine = milestoneEvent('WO-1', 'completed', 50);
    const theirs = { ...milestoneEvent('WO-1', 'released', 1), plant: 'P2', source: '/plantlink/plants/P2/sources/line-opcua' };
    store(mine, theirs);
    const due = inbox.due('crm', 10);
    expect(due.map((d) => d.subject)).toEqual(['P1/work-order/WO-1', 'P2/work-order/WO-1']);
    inbox.record('crm', [{ kind: 'delivered', d: due[0]!, subject: due[0]!.subject, recordIds: [], stale: false }]);
    expect(inbox.isStale('crm', due[1]!.subject, due[1]!.timeMs, due[1]!.plantseq)).toBe(false);
    expect(inbox.isStale('crm', due[0]!.subject, due[0]!.timeMs - 1, 1)).toBe(true);
  });

  it('a follower behind a backing-off head does not make the worker spin (next due is the head\'s)', () => {
    store(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-1', 'started', 2));
    const [head] = inbox.due('crm', 10);
    inbox.record('crm', [{ kind: 'retry', d: head!, error: 'HTTP 503', code: 'transient', nextAttemptMs: now + 60_000 }]);
    expect(inbox.nextDueMs('crm')).toBe(now + 60_000);
  });

  it('prunes delivered events past the retention window, keeping dead letters and pending deliveries', () => {
    store(milestoneEvent('WO-1', 'released', 1), milestoneEvent('WO-2', 'released', 1), milestoneEvent('WO-3', 'released', 1));
    const [d1, d2] = inbox.due('crm', 10);
    inbox.record('crm', [
      { kind: 'delivered', d: d1!, subject: d1!.subject, recordIds: ['a'], stale: false },
      { kind: 'dead', d: d2!, error: 'bad', code: 'X' },
    ]);
    for (const d of inbox.due('erp', 10)) inbox.record('erp', [{ kind: 'delivered', d, subject: d.subject, recordIds: ['b'], stale: false }]);
    // WO-2 moves on at crm past its dead letter, and waits at erp.
    store(milestoneEvent('WO-2', 'started', 2));
    const [next] = inbox.due('crm', 10).filter((d) => d.subject.endsWith('WO-2'));
    inbox.record('crm', [{ kind: 'delivered', d: next!, subject: next!.subject, recordIds: ['c'], stale: false }]);
    now += 10_000;
    const pruned = inbox.prune(now - 1000, 1);
    // WO-1: delivered everywhere -> gone. WO-2: dead at crm -> kept. WO-3: pending at crm -> kept.
    expect(pruned.events).toBe(1);
    // Versions, one per page: quiet everywhere they are, except WO-2 (dead at crm, pending at erp).
    expect(pruned.versions).toBe(3);
    const versions = inbox.db.prepare('SELECT sink, subject FROM subject_versions ORDER BY sink, subject').all();
    expect(versions).toEqual([{ sink: 'crm', subject: 'P1/work-order/WO-2' }, { sink: 'erp', subject: 'P1/work-order/WO-2' }]);
    expect(inbox.counts()).toMatchObject({ events: 3, dead: 1, pending: 2 });
    expect(inbox.listDeliveries({ status: 'dead' })[0]).toMatchObject({ subject: 'work-order/WO-2' });
  });
});
