import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { LedgerSender } from '../../../agent/uplink/ledger-sender.js';
import { LedgerFrame } from '../../../protocols/uplink/frames.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { tempDir } from '../../helpers/temp.js';
import { capturingLogger } from './capture-logger.js';

const T0 = Date.parse('2026-11-23T08:00:00Z');
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function setup(ackTimeoutMs = 60_000) {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const path = join(t.dir, 'outbox.sqlite');
  const outbox = new Outbox({ path, plant: 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' });
  cleanups.push(() => outbox.close());
  const log = capturingLogger();
  return { path, outbox, log, sender: new LedgerSender(outbox, log.logger, ackTimeoutMs) };
}

const entriesOf = (frame: string) => LedgerFrame.parse(JSON.parse(frame)).entries as { id: string; subject: string; timeMs: number }[];
const nulDraft = (wo: string, at: number) => ({ ...milestoneDraft(wo, 'released', at), subject: `work-order/${wo}\u0000` });
/** A subject longer than a ledger entry may carry (256): the relay would refuse the entry. */
const longSubjectDraft = (wo: string, at: number) => ({ ...milestoneDraft(wo, 'released', at), subject: `work-order/${wo}-${'x'.repeat(300)}` });

describe('ledger sender', () => {
  it('leaves an entry with a NUL out of its frame, which still covers it, and warns once even when the frame is resent', () => {
    const { outbox, log, sender } = setup(0);
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0), nulDraft('WO-2', T0 + 1), milestoneDraft('WO-3', 'released', T0 + 2)]);
    const first = sender.next('plant-a', 256 * 1024)!;
    expect(first).toMatchObject({ upto: 3, entries: 2 });
    expect(entriesOf(first.frame).map((e) => e.subject)).toEqual(['work-order/WO-1', 'work-order/WO-3']);
    // No ack within the (zero) timeout: the frame goes again, without a second warning.
    expect(sender.next('plant-a', 256 * 1024)).toMatchObject({ upto: 3, entries: 2 });
    const warnings = log.warnings();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ seq: 2, problem: 'subject: contains a NUL character' });
    // Values stay out of the log.
    expect(JSON.stringify(warnings[0])).not.toContain('WO-2');
    expect(sender.ack(3)).toBe(true);
    expect(outbox.ledgerCursor()).toBe(3);
  });

  it('moves its cursor past entries the relay could not take even when nothing else follows them', () => {
    const { outbox, log, sender } = setup();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0)]);
    const frame = sender.next('plant-a', 256 * 1024)!;
    expect(sender.ack(frame.upto)).toBe(true);
    outbox.append('line', [nulDraft('WO-2', T0 + 1), longSubjectDraft('WO-3', T0 + 2)]);
    expect(sender.next('plant-a', 256 * 1024)).toBeUndefined();
    expect(outbox.ledgerCursor()).toBe(3);
    expect(log.warnings().map((w) => w.problem)).toEqual(['subject: contains a NUL character', expect.stringMatching(/^subject: /)]);
    // Entries after them go as usual.
    outbox.append('line', [milestoneDraft('WO-4', 'released', T0 + 3)]);
    expect(sender.next('plant-a', 256 * 1024)).toMatchObject({ upto: 4, entries: 1 });
  });

  it('sends a whole-ms time for a ledger row written with a fractional one (before the outbox truncated them)', () => {
    const { path, outbox, sender } = setup();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0 + 0.5)]);
    expect(outbox.readLedger(0, 10)[0]!.timeMs).toBe(T0);
    const db = new Database(path);
    db.prepare('UPDATE ledger SET time_ms = ? WHERE seq = 1').run(T0 + 0.75);
    db.close();
    expect(outbox.readLedger(0, 10)[0]!.timeMs).toBe(T0 + 0.75);
    expect(entriesOf(sender.next('plant-a', 256 * 1024)!.frame)[0]!.timeMs).toBe(T0);
  });

  it('warns once per ledger-ack that counts refused entries, and applies it like any other', () => {
    const { outbox, log, sender } = setup();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0), milestoneDraft('WO-2', 'released', T0 + 1)]);
    const frame = sender.next('plant-a', 256 * 1024)!;
    expect(sender.ack(frame.upto + 1, 2)).toBe(false);
    expect(log.warnings()).toEqual([]);
    expect(sender.ack(frame.upto, 1)).toBe(true);
    expect(outbox.ledgerCursor()).toBe(2);
    expect(log.warnings()).toMatchObject([{ upto: 2, refused: 1 }]);
  });

  it('sends nothing, and keeps its cursor, for a relay that registered the agent for another plant', () => {
    const { outbox, log, sender } = setup();
    outbox.append('line', [milestoneDraft('WO-1', 'released', T0)]);
    expect(sender.next('plant-b', 256 * 1024)).toBeUndefined();
    expect(sender.next('plant-b', 256 * 1024)).toBeUndefined();
    expect(outbox.ledgerCursor()).toBe(0);
    expect(log.warnings()).toHaveLength(1);
  });
});
