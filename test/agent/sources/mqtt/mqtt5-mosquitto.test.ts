/**
 * The MQTT source on MQTT 5 against a real Mosquitto 2 (aedes speaks 3.1.1 only): user name
 * and password, and the session expiry that keeps an MQTT 5 session (and its queued
 * messages) across the agent's restart.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connectAsync } from 'mqtt';
import { join } from 'node:path';
import { MqttSource, type MqttSourceConfigInput } from '../../../../agent/sources/mqtt/index.js';
import { Mosquitto } from '../../../helpers/mosquitto.js';
import { tempDir } from '../../../helpers/temp.js';
import { outboxContext, waitFor } from './harness.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);

describe('MQTT source on MQTT 5 (Mosquitto)', () => {
  it('logs in, and after a restart gets what was published while it was stopped, each event once', async () => {
    const tmp = tempDir('plantlink-mqtt5-');
    cleanups.push(tmp.cleanup);
    const broker = await Mosquitto.start(tmp.dir, {
      users: { agent: 'agent-pw', edge: 'edge-pw' },
      acl: 'user agent\ntopic read plant/#\n\nuser edge\ntopic write plant/#\n',
    });
    cleanups.push(() => broker.stop());
    const box = outboxContext(tmp.dir);
    cleanups.push(() => box.outbox.close());
    const edge = await connectAsync(broker.url, { clientId: 'edge-1', username: 'edge', password: 'edge-pw', protocolVersion: 5, reconnectPeriod: 0 });
    cleanups.push(() => edge.endAsync(true));
    const config: MqttSourceConfigInput = {
      kind: 'mqtt',
      name: 'line-mqtt5',
      url: broker.url,
      clientId: 'plantlink-agent-v5',
      protocolVersion: 5,
      username: 'agent',
      password: 'agent-pw',
      topics: ['plant/+/events'],
      reconnectMs: 100,
      quarantineDir: join(tmp.dir, 'quarantine'),
      map: { event: 'milestone', key: 'payload.workOrder', occurredAt: 'payload.at', fields: { milestone: 'payload.state', equipment: 'levels[1]' } },
    };
    const publish = (i: number) =>
      edge.publishAsync('plant/L1/events', JSON.stringify({ workOrder: `WO-${i}`, state: 'started', at: new Date(T0 + i * 1000).toISOString() }), { qos: 1 });

    const first = new MqttSource(config);
    cleanups.push(() => first.stop());
    await first.start(box.ctx(first.name));
    await waitFor(() => first.health().state === 'connected');
    for (let i = 1; i <= 3; i++) await publish(i);
    await waitFor(() => box.outbox.stats().pending === 3);
    await first.stop();

    for (let i = 4; i <= 6; i++) await publish(i);
    const second = new MqttSource(config);
    cleanups.push(() => second.stop());
    await second.start(box.ctx(second.name));
    await waitFor(() => box.outbox.stats().pending >= 6);
    expect(box.pending().map((e) => e.data.workOrder)).toEqual(['WO-1', 'WO-2', 'WO-3', 'WO-4', 'WO-5', 'WO-6']);
  });
});
