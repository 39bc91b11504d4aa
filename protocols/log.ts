/**
 * Structured JSON logs (pino) for every component. Secrets are redacted by key name
 * wherever they appear in a logged object, so a config or a request dumped into a
 * log line cannot leak a token.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export const REDACTED_KEYS = [
  'token',
  'tokenHash',
  'password',
  'secret',
  'clientSecret',
  'client_secret',
  'access_token',
  'authorization',
  'Authorization',
  'privateKey',
];

export function createLogger(name: string, options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  const level = options.level ?? process.env.PLANTLINK_LOG_LEVEL ?? 'info';
  const paths = REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);
  return pino(
    { name, level, redact: { paths, censor: '[redacted]' }, base: { pid: process.pid } },
    options.destination ?? pino.destination({ dest: 2, sync: true }),
  );
}
