import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Inbox } from '../../relay/inbox/inbox.js';
import { SqliteStore } from '../../relay/store/sqlite/sqlite-store.js';
import { AgentDirectory, issueToken } from '../../relay/ingress/agent-auth.js';
import { WebSocketIngress, type IngressLimits } from '../../relay/ingress/ws-ingress.js';
import { Router } from '../../relay/router/router.js';
import { testLogger } from './temp.js';

/** A real relay ingress (HTTP server, WebSocket upgrade, SQLite inbox) on a loopback port, without sinks. */
export async function startIngress(dir: string, limits: Partial<IngressLimits> = {}, tls?: { cert: Buffer; key: Buffer }) {
  const a = issueToken('agent-a');
  const b = issueToken('agent-b');
  const inbox = new Inbox(join(dir, 'inbox.sqlite'));
  const store = new SqliteStore(inbox);
  const ingress = new WebSocketIngress({
    agents: new AgentDirectory([
      { id: 'agent-a', plant: 'plant-a', tokenHash: a.tokenHash },
      { id: 'agent-b', plant: 'plant-b', tokenHash: b.tokenHash },
    ]),
    store,
    router: new Router([{ match: {}, sinks: ['crm'] }]),
    limits: { maxFrameBytes: 256 * 1024, maxBatchEvents: 100, maxInFlight: 4, heartbeatMs: 60_000, ...limits },
    logger: testLogger(),
  });
  const server: Server = tls ? createHttpsServer(tls, (_req, res) => res.end()) : createServer((_req, res) => res.end());
  ingress.attach(server, '/v1/uplink');
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'wss' : 'ws'}://127.0.0.1:${port}/v1/uplink`,
    port,
    tokens: { a: a.token, b: b.token },
    inbox,
    /** The relay store over `inbox` (its ledger, for instance). */
    store,
    ingress,
    async stop() {
      await ingress.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      inbox.close();
    },
  };
}
