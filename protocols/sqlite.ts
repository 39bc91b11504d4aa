/**
 * The one place SQLite databases are opened (agent outbox, relay inbox). From a source checkout
 * better-sqlite3 finds its own addon; inside the single executable (installers/sea) its addon
 * rides along as an SEA asset and is handed over as `nativeBinding`, because a file path there
 * would go through `require`, which inside an SEA loads only built-ins.
 */
import Database from 'better-sqlite3';
import { isSea } from 'node:sea';
import { loadSeaAddon } from './sea-addon.js';

/** The SEA asset name of better-sqlite3's addon (installers/sea/build.ts writes it). */
export const SQLITE_ADDON_ASSET = 'better_sqlite3.node';

export function openDatabase(path: string): Database.Database {
  if (!isSea()) return new Database(path);
  // @types/better-sqlite3 types nativeBinding as a path only; better-sqlite3 also takes the
  // addon's exports object (its lib/database.js), which is what an SEA needs.
  return new Database(path, { nativeBinding: loadSeaAddon(SQLITE_ADDON_ASSET) as string });
}
