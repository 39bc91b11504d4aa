import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { WebSocketUplinkConfig } from '../../../agent/uplink/config.js';
import { WebSocketUplink } from '../../../agent/uplink/ws-uplink.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { startIngress } from '../../helpers/relay-ingress.js';
import { tempDir, testLogger } from '../../helpers/temp.js';
import { TcpProxy } from '../../sim/tcp-proxy.js';

const T0 = Date.parse('2026-11-23T08:00:00Z');
const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function setup(options: { token?: 'a' | 'b' | 'wrong'; plant?: string; viaProxy?: boolean; maxFrameBytes?: number } = {}) {
  const t = tempDir();
  stops.push(t.cleanup);
  const ingress = await startIngress(join(t.dir, 'relay'), options.maxFrameBytes ? { maxFrameBytes: options.maxFrameBytes } : {});
  stops.push(() => ingress.stop());
  let url = ingress.url;
  let proxy: TcpProxy | undefined;
  if (options.viaProxy) {
    proxy = await TcpProxy.start({ host: '127.0.0.1', port: ingress.port });
    stops.push(() => proxy!.stop());
    url = `ws://127.0.0.1:${proxy.port}/v1/uplink`;
  }
  const outbox = new Outbox({ path: join(t.dir, 'agent', 'outbox.sqlite'), plant: options.plant ?? 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' });
  stops.push(() => outbox.close());
  const token = options.token === 'wrong' ? 'agent-a.wrong-secret-wrong-secret' : ingress.tokens[options.token ?? 'a'];
  const config = WebSocketUplinkConfig.parse({ kind: 'websocket', url, token, reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, maxBatchEvents: 50 });
  const uplink = new WebSocketUplink(config, outbox, testLogger());
  stops.push(() => uplink.stop());
  return { ingress, outbox, uplink, proxy };
}

const drafts = (from: number, count: number, plant = 'plant-a') =>
  Array.from({ length: count }, (_, i) => milestoneDraft(`WO-${from + i}`, 'released', T0 + from + i, undefined, plant));

describe('WebSocket uplink', () => {
  it('drains the outbox in batches and deletes only what the relay acknowledged', async () => {
    const { ingress, outbox, uplink } = await setup();
    outbox.append('line', drafts(0, 500));
    uplink.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 10_000 });
    expect(ingress.inbox.counts().events).toBe(500);
    outbox.append('line', drafts(500, 3));
    await vi.waitFor(() => expect(ingress.inbox.counts().events).toBe(503), { timeout: 10_000 });
  });

  it('keeps everything through a network cut and resumes from the oldest unacknowledged event', async () => {
    const { ingress, outbox, uplink, proxy } = await setup({ viaProxy: true });
    uplink.start();
    await vi.waitFor(() => expect(uplink.status().state).toBe('connected'));
    outbox.append('line', drafts(0, 200));
    proxy!.cut();
    outbox.append('line', drafts(200, 200));
    await vi.waitFor(() => expect(uplink.status().state).not.toBe('connected'));
    expect(outbox.stats().pending).toBeGreaterThan(0);
    proxy!.restore();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 15_000 });
    expect(ingress.inbox.counts().events).toBe(400);
  });

  it('reports unauthorized on a wrong token, keeps the backlog and keeps trying', async () => {
    const { ingress, outbox, uplink } = await setup({ token: 'wrong' });
    outbox.append('line', drafts(0, 5));
    uplink.start();
    await vi.waitFor(() => expect(uplink.status()).toMatchObject({ state: 'unauthorized', detail: expect.stringContaining('401') }));
    expect(outbox.stats().pending).toBe(5);
    expect(ingress.inbox.counts().events).toBe(0);
  });

  it('quarantines events the relay refuses (another plant) with the relay reason, and delivers the rest', async () => {
    const { ingress, outbox, uplink } = await setup({ token: 'b', plant: 'plant-a' });
    // agent-b is registered for plant-b, but this outbox stamps plant-a.
    outbox.append('line', drafts(0, 3));
    uplink.start();
    await vi.waitFor(() => expect(outbox.stats().rejected).toBe(3));
    expect(outbox.stats().pending).toBe(0);
    expect(outbox.listRejected()[0]).toMatchObject({ code: 'plant_mismatch', reason: expect.stringContaining('plant-b') });
    expect(ingress.inbox.counts().events).toBe(0);
  });

  it('quarantines an event that can never fit the relay\'s frames instead of blocking the backlog behind it', async () => {
    const { ingress, outbox, uplink } = await setup({ maxFrameBytes: 1200 });
    const big = milestoneDraft('WO-BIG', 'released', T0);
    (big.data as Record<string, unknown>).product = 'x'.repeat(100); // product is capped at 128 chars; make it big otherwise
    (big.data as Record<string, unknown>).operation = 'ö'.repeat(128); // 2 bytes each in UTF-8
    (big.data as Record<string, unknown>).salesOrder = 'ü'.repeat(128);
    (big.data as Record<string, unknown>).equipment = 'ä'.repeat(128);
    (big.data as Record<string, unknown>).workOrder = 'é'.repeat(128);
    outbox.append('line', [...drafts(0, 3), big, ...drafts(3, 3)]);
    uplink.start();
    await vi.waitFor(() => expect(outbox.stats()).toMatchObject({ pending: 0, rejected: 1 }), { timeout: 10_000 });
    expect(outbox.listRejected()[0]).toMatchObject({ code: 'event_too_large', reason: expect.stringContaining('1200') });
    expect(ingress.inbox.counts().events).toBe(6);
  });

  it('refuses a plain ws:// relay URL off loopback unless explicitly allowed', () => {
    const base = { kind: 'websocket', token: 'agent-a.0123456789abcdef' };
    expect(() => WebSocketUplinkConfig.parse({ ...base, url: 'ws://relay.example.com/v1/uplink' })).toThrow(/clear text/);
    expect(() => WebSocketUplinkConfig.parse({ ...base, url: 'ws://relay.example.com/v1/uplink', allowInsecure: true })).not.toThrow();
    expect(() => WebSocketUplinkConfig.parse({ ...base, url: 'wss://relay.example.com/v1/uplink' })).not.toThrow();
    expect(() => WebSocketUplinkConfig.parse({ ...base, url: 'ws://127.0.0.1:8443/v1/uplink' })).not.toThrow();
  });

  it('respects the relay frame limit announced in the welcome', async () => {
    const { ingress, outbox, uplink } = await setup({ maxFrameBytes: 4096 });
    outbox.append('line', drafts(0, 100));
    uplink.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 10_000 });
    expect(ingress.inbox.counts().events).toBe(100);
  });
});
