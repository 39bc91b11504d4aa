import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TcpProxy } from './tcp-proxy.js';

const WAIT = { timeout: 10_000, interval: 20 } as const;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function echoServer(): Promise<net.Server> {
  const server = net.createServer((s) => s.on('error', () => undefined).pipe(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return server;
}

async function setup() {
  const server = await echoServer();
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  cleanups.push(() => proxy.stop());
  return proxy;
}

interface Conn {
  socket: net.Socket;
  received: () => string;
  closed: () => boolean;
  error: () => string | undefined;
}

async function connect(port: number): Promise<Conn> {
  const socket = net.connect({ host: '127.0.0.1', port });
  let data = '';
  let closed = false;
  let error: string | undefined;
  socket.on('data', (d) => (data += d.toString()));
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  socket.on('close', () => (closed = true));
  cleanups.push(() => void socket.destroy());
  await new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => resolve());
  });
  return { socket, received: () => data, closed: () => closed, error: () => error };
}

describe('TcpProxy', () => {
  it('forwards both ways and counts live connections', async () => {
    const proxy = await setup();
    const c = await connect(proxy.port);
    c.socket.write('hello');
    await vi.waitFor(() => expect(c.received()).toBe('hello'), WAIT);
    expect(proxy.connections).toBe(1);
    c.socket.destroy();
    await vi.waitFor(() => expect(proxy.connections).toBe(0), WAIT);
  });

  it('cut() resets live connections and new ones until restore()', async () => {
    const proxy = await setup();
    const live = await connect(proxy.port);
    live.socket.write('x');
    await vi.waitFor(() => expect(live.received()).toBe('x'), WAIT);
    proxy.cut();
    await vi.waitFor(() => expect(live.closed()).toBe(true), WAIT);
    expect(live.error()).toBe('ECONNRESET');
    expect(proxy.connections).toBe(0);

    const refused = await connect(proxy.port);
    await vi.waitFor(() => expect(refused.closed()).toBe(true), WAIT);

    proxy.restore();
    const again = await connect(proxy.port);
    again.socket.write('back');
    await vi.waitFor(() => expect(again.received()).toBe('back'), WAIT);
  });

  it('freeze() holds bytes on open sockets (old and new) and thaw() delivers them', async () => {
    const proxy = await setup();
    const old = await connect(proxy.port);
    proxy.freeze();
    old.socket.write('held');
    const fresh = await connect(proxy.port);
    fresh.socket.write('also held');
    await new Promise((r) => setTimeout(r, 200));
    expect(old.received()).toBe('');
    expect(fresh.received()).toBe('');
    expect(old.closed() || fresh.closed()).toBe(false);
    expect(proxy.connections).toBe(2);
    proxy.thaw();
    await vi.waitFor(() => expect([old.received(), fresh.received()]).toEqual(['held', 'also held']), WAIT);
  });

  it('stop() closes everything', async () => {
    const proxy = await setup();
    const c = await connect(proxy.port);
    await proxy.stop();
    await vi.waitFor(() => expect(c.closed()).toBe(true), WAIT);
  });
});
