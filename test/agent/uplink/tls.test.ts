import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { WebSocketUplinkConfig } from '../../../agent/uplink/config.js';
import { WebSocketUplink } from '../../../agent/uplink/ws-uplink.js';
import { selfSignedCert } from '../../helpers/certs.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { startIngress } from '../../helpers/relay-ingress.js';
import { tempDir, testLogger } from '../../helpers/temp.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function setup(tls: { caFile?: string } | undefined) {
  const t = tempDir();
  stops.push(t.cleanup);
  const cert = selfSignedCert(t.dir);
  const ingress = await startIngress(join(t.dir, 'relay'), {}, { cert: cert.cert, key: cert.key });
  stops.push(() => ingress.stop());
  const outbox = new Outbox({ path: join(t.dir, 'agent', 'outbox.sqlite'), plant: 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' });
  stops.push(() => outbox.close());
  const caFile = tls?.caFile === 'relay' ? cert.certFile : undefined;
  const config = WebSocketUplinkConfig.parse({
    kind: 'websocket',
    url: ingress.url,
    token: ingress.tokens.a,
    reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    ...(caFile ? { tls: { caFile } } : {}),
  });
  const uplink = new WebSocketUplink(config, outbox, testLogger());
  stops.push(() => uplink.stop());
  outbox.append('line', [milestoneDraft('WO-1', 'released', Date.parse('2026-11-23T08:00:00Z'))]);
  return { ingress, outbox, uplink };
}

describe('uplink over TLS (wss://)', () => {
  it('delivers to a relay whose certificate is signed by the configured CA', async () => {
    const { ingress, outbox, uplink } = await setup({ caFile: 'relay' });
    expect(ingress.url.startsWith('wss://')).toBe(true);
    uplink.start();
    await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), { timeout: 10_000 });
    expect(ingress.inbox.counts().events).toBe(1);
  });

  it('refuses a relay certificate it cannot verify, and keeps the backlog', async () => {
    const { ingress, outbox, uplink } = await setup(undefined);
    uplink.start();
    await vi.waitFor(() => expect(uplink.status()).toMatchObject({ state: 'disconnected', detail: expect.stringMatching(/certificate/i) }), { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    expect(outbox.stats().pending).toBe(1);
    expect(ingress.inbox.counts().events).toBe(0);
  });
});
