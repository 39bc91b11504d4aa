/**
 * The outbox failing under a running uplink (another process holding its write lock, a closed
 * database): applying the relay's ack throws, the uplink drops the connection instead of dying
 * from a socket callback, and once the outbox can be written again every event is acked and
 * stored at the relay once. Real outbox, real relay (WebSocket ingress, MQTT with aedes).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { WebSocketUplinkConfig } from '../../../agent/uplink/config.js';
import { MqttUplinkConfig } from '../../../agent/uplink/mqtt-config.js';
import { MqttUplink } from '../../../agent/uplink/mqtt-uplink.js';
import { WebSocketUplink } from '../../../agent/uplink/ws-uplink.js';
import type { Logger } from '../../../protocols/log.js';
import { milestoneDraft } from '../../helpers/drafts.js';
import { startMqttRelay } from '../../helpers/mqtt-relay.js';
import { startIngress } from '../../helpers/relay-ingress.js';
import { tempDir } from '../../helpers/temp.js';
import { capturingLogger } from './capture-logger.js';

const T0 = Date.parse('2026-11-23T08:00:00Z');
const WAIT = { timeout: 30_000 };
const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

const drafts = (count: number) => Array.from({ length: count }, (_, i) => milestoneDraft(`WO-${i}`, 'released', T0 + i));

type Uplink = WebSocketUplink | MqttUplink;

function workspace() {
  const t = tempDir();
  stops.push(t.cleanup);
  const path = join(t.dir, 'agent', 'outbox.sqlite');
  const outbox = new Outbox({ path, plant: 'plant-a', maxBytes: 1e9, maxEvents: 1e6, onFull: 'pause' });
  stops.push(() => outbox.close());
  return { dir: t.dir, path, outbox };
}

/**
 * Takes the outbox's write lock from a second connection, as a backup tool or a second agent
 * started by mistake would; released the moment the uplink reports it dropped the connection
 * over an outbox error, so the next connection can apply its acks.
 */
function lockUntilOutboxError(path: string, uplink: Uplink) {
  const locker = new Database(path);
  stops.push(() => void locker.close());
  locker.exec('BEGIN EXCLUSIVE');
  const seen = { drops: 0 };
  uplink.on('state', (s: { state: string; detail?: string }) => {
    if (s.state !== 'disconnected' || !s.detail?.includes('outbox error')) return;
    seen.drops++;
    if (locker.inTransaction) locker.exec('COMMIT');
  });
  return seen;
}

/** Each uplink against its real relay: the uplink, the relay's event count and what the uplink logs on the failure. */
const TRANSPORTS: {
  name: string;
  logged: string;
  start(dir: string, outbox: Outbox, logger: Logger): Promise<{ uplink: Uplink; relayEvents: () => number }>;
}[] = [
  {
    name: 'WebSocket',
    logged: 'could not apply a relay frame to the outbox',
    async start(dir, outbox, logger) {
      const ingress = await startIngress(join(dir, 'relay'));
      stops.push(() => ingress.stop());
      const config = WebSocketUplinkConfig.parse({ kind: 'websocket', url: ingress.url, token: ingress.tokens.a, reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, maxBatchEvents: 50 });
      return { uplink: new WebSocketUplink(config, outbox, logger), relayEvents: () => ingress.inbox.counts().events };
    },
  },
  {
    name: 'MQTT',
    logged: 'could not apply a relay message to the outbox',
    async start(dir, outbox, logger) {
      const relay = await startMqttRelay(join(dir, 'relay'), { listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
      stops.push(() => relay.stop());
      const config = MqttUplinkConfig.parse({ kind: 'mqtt', url: `mqtt://127.0.0.1:${relay.ports.tcp}`, token: relay.tokens.a, reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, maxBatchEvents: 50 });
      return { uplink: new MqttUplink(config, outbox, { agentId: 'agent-a', plant: 'plant-a' }, logger), relayEvents: () => relay.inbox.counts().events };
    },
  },
];

describe('the outbox failing under a running uplink', () => {
  for (const transport of TRANSPORTS) {
    it(`${transport.name}: drops the connection instead of crashing, and once the lock is gone delivers every event once`, async () => {
      const { dir, path, outbox } = workspace();
      outbox.append('line', drafts(40));
      const log = capturingLogger();
      const { uplink, relayEvents } = await transport.start(dir, outbox, log.logger);
      stops.push(() => uplink.stop());
      const seen = lockUntilOutboxError(path, uplink);

      uplink.start();
      await vi.waitFor(() => expect(outbox.stats().pending).toBe(0), WAIT);
      expect(seen.drops).toBe(1);
      expect(log.lines.some((l) => l.msg.includes(transport.logged) && /locked|busy/i.test(String(l.err)))).toBe(true);
      expect(relayEvents()).toBe(40);
    });
  }
});
