import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Logger } from '../../protocols/log.js';

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = 'plantlink-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A logger for tests: silent unless PLANTLINK_TEST_LOG=level is set. */
export function testLogger(): Logger {
  return pino({ level: process.env.PLANTLINK_TEST_LOG ?? 'silent' });
}
