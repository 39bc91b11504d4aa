import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Inbox } from '../../../relay/inbox/inbox.js';
import { openDatabase } from '../../../protocols/sqlite.js';
import { SqliteStore } from '../../../relay/store/sqlite/sqlite-store.js';
import { milestoneEvent } from '../sinks/salesforce/fixtures.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The version-1 layout, as the first releases created it. */
const V1 = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    subject TEXT NOT NULL, plant TEXT NOT NULL, agent TEXT NOT NULL, time_ms INTEGER NOT NULL,
    plantseq INTEGER NOT NULL, correlation_id TEXT NOT NULL, body TEXT NOT NULL, received_ms INTEGER NOT NULL);
  CREATE UNIQUE INDEX inbox_dedupe ON inbox (id, source);
  CREATE TABLE deliveries (
    inbox_seq INTEGER NOT NULL REFERENCES inbox(seq), sink TEXT NOT NULL, subject TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')), attempts INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL, last_error TEXT, error_code TEXT, record_ids TEXT, updated_ms INTEGER NOT NULL,
    PRIMARY KEY (sink, inbox_seq));
  CREATE TABLE subject_versions (sink TEXT NOT NULL, subject TEXT NOT NULL, time_ms INTEGER NOT NULL, plantseq INTEGER NOT NULL, PRIMARY KEY (sink, subject));
  CREATE TABLE ingress_rejections (seq INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT NOT NULL, plant TEXT NOT NULL, event_id TEXT, code TEXT NOT NULL,
    reason TEXT NOT NULL, body TEXT NOT NULL, received_ms INTEGER NOT NULL);
  INSERT INTO meta VALUES ('schema_version', '1');
`;

describe('inbox schema migration', () => {
  it('takes a version-1 inbox to the current version, keeping its events and deliveries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'inbox-mig-'));
    dirs.push(dir);
    const path = join(dir, 'inbox.sqlite');
    const old = openDatabase(path);
    old.exec(V1);
    const e = milestoneEvent('WO-1', 'released', 1);
    old.prepare(`INSERT INTO inbox (source, id, type, subject, plant, agent, time_ms, plantseq, correlation_id, body, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(e.source, e.id, e.type, e.subject, e.plant, 'agent-1', Date.parse(e.time), e.plantseq, e.correlationid, JSON.stringify(e), 5);
    old.prepare(`INSERT INTO deliveries VALUES (1, 'crm', 'P1/work-order/WO-1', 'delivered', 1, 0, NULL, NULL, '["a0X"]', 6)`).run();
    old.prepare(`INSERT INTO subject_versions VALUES ('crm', 'P1/work-order/WO-1', ?, ?)`).run(Date.parse(e.time), e.plantseq);
    old.close();

    const before = Date.now();
    const store = new SqliteStore(new Inbox(path));
    // A version from before counts as seen at the migration: kept for a whole window from then.
    const seen = store.inbox.db.prepare('SELECT seen_ms FROM subject_versions').pluck().get() as number;
    expect(seen).toBeGreaterThanOrEqual(before - 1000);
    expect(seen).toBeLessThanOrEqual(Date.now() + 1000);
    // Events stored before the migration are found by their sales order too.
    expect((await store.findEvents({ key: 'SO-100', limit: 5 })).map((x) => x.id)).toEqual([e.id]);
    const [found] = await store.findEvents({ key: 'WO-1', limit: 5 });
    expect(found).toMatchObject({ id: e.id, salesOrder: 'SO-100', deliveries: [{ lane: 'crm', status: 'delivered', recordIds: ['a0X'] }] });
    expect(await store.addLedger('agent-1', 'P1', [{ id: e.id, source: e.source, type: e.type, subject: e.subject, timeMs: 1, status: 'stored' }])).toBe(1);
    expect(store.inbox.db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get()).toBe('3');
    // Pruning a window that began before the migration forgets the old event, not the version.
    expect(await store.prune(before - 60_000)).toEqual({ events: 1, rejections: 0, versions: 0 });
    expect(await store.appliedVersions('crm', ['P1/work-order/WO-1'])).toEqual([{ orderKey: 'P1/work-order/WO-1', timeMs: Date.parse(e.time), plantseq: e.plantseq }]);
    await store.close();
    // Opening again runs nothing twice.
    const again = new Inbox(path);
    again.close();
  });

  it('refuses an inbox from a newer build', () => {
    const dir = mkdtempSync(join(tmpdir(), 'inbox-mig-'));
    dirs.push(dir);
    const path = join(dir, 'inbox.sqlite');
    const db = openDatabase(path);
    db.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '99')");
    db.close();
    expect(() => new Inbox(path)).toThrow(/schema version 99.*upgrade the relay/);
  });
});
