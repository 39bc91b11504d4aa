/**
 * A loopback TCP proxy for cutting networks in tests.
 *
 * - `cut()` destroys every live connection with a TCP reset and resets new ones until
 *   `restore()`: what a client sees when a switch reboots or a cable is pulled and the
 *   far side's RST comes back.
 * - `freeze()` stops forwarding bytes in both directions but keeps every socket open,
 *   and new connections are accepted and held the same way, until `thaw()`: a
 *   "connected but stalled" link (a half-dead NAT, a wedged route). Bytes are held,
 *   not dropped, so after `thaw()` TCP delivers them late, as a real network would.
 */
import net from 'node:net';

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
}

export class TcpProxy {
  private readonly pairs = new Set<Pair>();
  private refusing = false;
  private frozen = false;

  private constructor(
    private readonly server: net.Server,
    private readonly target: { host: string; port: number },
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = net.createServer();
    const proxy = new TcpProxy(server, target);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return proxy;
  }

  get port(): number {
    const address = this.server.address();
    if (!address || typeof address === 'string') throw new Error('proxy is not listening');
    return address.port;
  }

  /** Live proxied connections. */
  get connections(): number {
    return this.pairs.size;
  }

  cut(): void {
    this.refusing = true;
    for (const pair of [...this.pairs]) this.destroy(pair);
  }

  restore(): void {
    this.refusing = false;
  }

  freeze(): void {
    if (this.frozen) return;
    this.frozen = true;
    for (const pair of this.pairs) this.hold(pair);
  }

  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    for (const pair of this.pairs) this.forward(pair);
  }

  async stop(): Promise<void> {
    this.refusing = true;
    for (const pair of [...this.pairs]) this.destroy(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect({ host: this.target.host, port: this.target.port });
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    const close = () => this.destroy(pair);
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    if (this.frozen) this.hold(pair);
    else this.forward(pair);
  }

  private forward(pair: Pair): void {
    pair.client.pipe(pair.upstream);
    pair.upstream.pipe(pair.client);
  }

  private hold(pair: Pair): void {
    pair.client.unpipe(pair.upstream);
    pair.upstream.unpipe(pair.client);
    pair.client.pause();
    pair.upstream.pause();
  }

  private destroy(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    // A reset, not a FIN: the peer sees ECONNRESET, as when a network path dies.
    if (!pair.client.destroyed) pair.client.resetAndDestroy();
    if (!pair.upstream.destroyed) {
      if (pair.upstream.connecting) pair.upstream.destroy();
      else pair.upstream.resetAndDestroy();
    }
  }
}
