/**
 * The console's audit log of dead-letter replays: one row per replay request (who, when, what
 * they asked for, how many dead letters it matched and how many went back to pending).
 *
 * Kept in its own SQLite file, `console.sqlite` in the relay's dataDir, apart from the inbox
 * (whatever store holds the relay's state), with the same durability (WAL, synchronous=FULL):
 * the row is committed before the console answers the replay.
 *
 * Schema (version 1, `PRAGMA user_version`):
 *   replay_audit(id INTEGER PRIMARY KEY, at_ms INTEGER, by_name TEXT, role TEXT,
 *                request TEXT (JSON), matched INTEGER, replayed INTEGER)
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { openDatabase } from '../../protocols/sqlite.js';

const SCHEMA_VERSION = 1;

export interface AuditRow {
  id: number;
  atMs: number;
  by: string;
  role: string;
  /** What was asked: `{ items: [{sink, seq}] }` or `{ filter: {...} }`. */
  request: unknown;
  matched: number;
  replayed: number;
}

export class ReplayAudit {
  private readonly db: Database.Database;
  private readonly insertRow;
  private readonly recent;

  constructor(dataDir: string, private readonly now: () => number = Date.now) {
    mkdirSync(dataDir, { recursive: true });
    this.db = openDatabase(join(dataDir, 'console.sqlite'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw new Error(`console.sqlite has schema version ${version}; this relay knows up to ${SCHEMA_VERSION} (a newer relay wrote it)`);
    if (version < 1) {
      this.db.exec(`CREATE TABLE IF NOT EXISTS replay_audit (
        id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, by_name TEXT NOT NULL, role TEXT NOT NULL,
        request TEXT NOT NULL, matched INTEGER NOT NULL, replayed INTEGER NOT NULL)`);
      this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }
    this.insertRow = this.db.prepare('INSERT INTO replay_audit (at_ms, by_name, role, request, matched, replayed) VALUES (?, ?, ?, ?, ?, ?)');
    this.recent = this.db.prepare<[number], { id: number; atMs: number; by: string; role: string; request: string; matched: number; replayed: number }>(
      'SELECT id, at_ms AS atMs, by_name AS by, role, request, matched, replayed FROM replay_audit ORDER BY id DESC LIMIT ?',
    );
  }

  record(entry: { by: string; role: string; request: unknown; matched: number; replayed: number }): AuditRow {
    const atMs = this.now();
    const info = this.insertRow.run(atMs, entry.by, entry.role, JSON.stringify(entry.request), entry.matched, entry.replayed);
    return { id: Number(info.lastInsertRowid), atMs, ...entry };
  }

  list(limit = 100): AuditRow[] {
    return this.recent.all(limit).map((r) => ({ ...r, request: JSON.parse(r.request) as unknown }));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
