/**
 * The HTTP scaffolding every emulator shares: a loopback server, the outage and
 * latency switches, and stopping.
 *
 * Invariants:
 * - Listens on 127.0.0.1 only, on an ephemeral port unless a stopped emulator's port
 *   is passed to "restart" it; `origin` is `http://127.0.0.1:<port>`.
 * - During an outage a request is cut by destroying its socket: the client gets no
 *   HTTP answer at all. Switching the outage on also closes idle keep-alive
 *   connections, so pooled clients meet it on their next request.
 * - Latency delays a request before it is processed; an outage switched on meanwhile
 *   still cuts it.
 * - `stop` closes every connection, idle or busy, and resolves once the server is closed.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export class EmulatorServer {
  readonly port: number;
  readonly origin: string;
  private outageOn = false;
  private latency = 0;

  static async listen(port = 0): Promise<EmulatorServer> {
    const server = createServer({ keepAliveTimeout: 30_000 });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new EmulatorServer(server);
  }

  private constructor(readonly server: Server) {
    this.port = (server.address() as AddressInfo).port;
    this.origin = `http://127.0.0.1:${this.port}`;
  }

  get latencyMs(): number {
    return this.latency;
  }

  setOutage(on: boolean): void {
    this.outageOn = on;
    if (on) this.server.closeIdleConnections();
  }

  setLatency(ms: number): void {
    this.latency = Math.max(0, ms);
  }

  /** True (and the request cut) when an outage is on. */
  cutIfOutage(req: IncomingMessage): boolean {
    if (!this.outageOn) return false;
    req.socket.destroy();
    return true;
  }

  /** Outage, then latency, then outage again: true when the request may be processed, false when it was cut. */
  async admit(req: IncomingMessage): Promise<boolean> {
    if (this.cutIfOutage(req)) return false;
    if (this.latency > 0) {
      await sleep(this.latency);
      if (this.cutIfOutage(req)) return false;
    }
    return true;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}
