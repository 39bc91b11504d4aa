/**
 * The agent's small HTTP listener (off unless `metrics.listen` is set): Prometheus
 * `/metrics`, `/healthz` (the process answers) and `/readyz` (503 with the reason when the
 * agent cannot take data). Read-only and unauthenticated, so it listens on loopback by
 * default. Nothing else is served.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listen as listenOn } from '../../protocols/listen.js';
import type { Logger } from '../../protocols/log.js';

export interface MetricsHandlers {
  scrape: () => Promise<{ contentType: string; body: string }>;
  ready: () => { ready: true } | { ready: false; reason: string };
}

export interface MetricsServer {
  /** e.g. http://127.0.0.1:9464 */
  readonly url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(listen: { host: string; port: number }, handlers: MetricsHandlers, logger: Logger): Promise<MetricsServer> {
  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://agent').pathname;
    if (req.method !== 'GET') return json(res, 405, { error: 'GET only' });
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const r = handlers.ready();
      return r.ready ? json(res, 200, { status: 'ready' }) : json(res, 503, { status: 'not ready', reason: r.reason });
    }
    if (path === '/metrics') {
      const { contentType, body } = await handlers.scrape();
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      return void res.end(body);
    }
    return json(res, 404, { error: 'not found; try /metrics, /healthz or /readyz' });
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) json(res, 500, { error: e instanceof Error ? e.message : String(e) });
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await listenOn(server, listen.port, listen.host, logger, 'metrics');
  const { port } = server.address() as AddressInfo;
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '[::1]' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
