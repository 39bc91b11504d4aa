/**
 * Listening servers (the relay's HTTP/WebSocket port, the embedded broker's listeners, the
 * agent's metrics port): `listen` fails the start on a bind error (EADDRINUSE, EACCES), and
 * once listening keeps an 'error' listener for good. A server with none dies with the first
 * accept failure (EMFILE when file descriptors run out under many agents) as an uncaught
 * exception; logged, the server keeps accepting once descriptors are free again.
 */
import type { Server } from 'node:net';
import { describeError } from './errors.js';
import type { Logger } from './log.js';

export function listen(server: Server, port: number, host: string, logger: Logger, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.on('error', (err) => logger.error({ err: describeError(err), listener: what }, 'listener error'));
      resolve();
    });
  });
}
