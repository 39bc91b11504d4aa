import { pino } from 'pino';
import type { Logger } from '../../../protocols/log.js';

/** A logger that keeps what it logs, for tests that check a warning is given, and only once. */
export function capturingLogger(): { logger: Logger; lines: { level: number; msg: string; [field: string]: unknown }[]; warnings: () => { msg: string; [field: string]: unknown }[] } {
  const lines: { level: number; msg: string; [field: string]: unknown }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  return { logger, lines, warnings: () => lines.filter((l) => l.level === 40) };
}
