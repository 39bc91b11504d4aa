import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent } from '../../../agent/agent.js';
import { AgentConfig } from '../../../agent/config.js';
import { MqttUplink } from '../../../agent/uplink/mqtt-uplink.js';
import { WebSocketUplink } from '../../../agent/uplink/ws-uplink.js';
import { startMqttRelay } from '../../helpers/mqtt-relay.js';
import { tempDir, testLogger } from '../../helpers/temp.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

/** Drops a complete JSON-lines file of `released` milestones into the folder (written aside, then renamed in). */
function drop(folder: string, file: string, workOrders: string[]): void {
  const lines = workOrders.map((wo, i) => JSON.stringify({ WO: wo, Milestone: 'released', Line: 'L1', At: new Date(Date.UTC(2026, 10, 23, 8) + i).toISOString() }));
  writeFileSync(join(folder, `${file}.part`), `${lines.join('\n')}\n`);
  renameSync(join(folder, `${file}.part`), join(folder, file));
}

const workOrders = (from: number, count: number) => Array.from({ length: count }, (_, i) => `WO-${from + i}`);

describe('switching the agent\'s uplink', () => {
  it('from websocket to mqtt changes only uplink.kind and url: the same agent, outbox and token keep delivering, each event once', async () => {
    const t = tempDir();
    stops.push(t.cleanup);
    const relay = await startMqttRelay(join(t.dir, 'relay'), { listeners: { tcp: { host: '127.0.0.1', port: 0 } } });
    stops.push(() => relay.stop());
    const folder = join(t.dir, 'drop');
    mkdirSync(folder);
    const config = {
      agent: { id: 'agent-a', plant: 'plant-a', dataDir: join(t.dir, 'agent-data') },
      uplink: { kind: 'websocket', url: relay.relay.wsUrl, token: relay.tokens.a, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } } as Record<string, unknown>,
      sources: [
        {
          name: 'mes-files',
          kind: 'file',
          folder,
          pattern: '*.jsonl',
          format: { type: 'jsonl' },
          ready: { mode: 'rename' },
          watch: { mode: 'events', pollIntervalMs: 100 },
          map: { event: 'milestone', key: 'WO', occurredAt: 'At', fields: { milestone: 'Milestone', equipment: 'Line' } },
        },
      ],
    };

    const overWebSocket = new Agent(AgentConfig.parse(config), { logger: testLogger() });
    expect(overWebSocket.uplink).toBeInstanceOf(WebSocketUplink);
    await overWebSocket.start();
    drop(folder, 'first.jsonl', workOrders(0, 40));
    await vi.waitFor(() => expect(relay.inbox.counts().events).toBe(40), { timeout: 10_000 });
    await overWebSocket.stop();

    // Read while no uplink runs: these wait in the outbox for the MQTT uplink.
    drop(folder, 'second.jsonl', workOrders(40, 30));
    config.uplink = { ...config.uplink, kind: 'mqtt', url: `mqtt://127.0.0.1:${relay.ports.tcp}` };
    const overMqtt = new Agent(AgentConfig.parse(config), { logger: testLogger() });
    stops.push(() => overMqtt.stop());
    expect(overMqtt.uplink).toBeInstanceOf(MqttUplink);
    await overMqtt.start();
    drop(folder, 'third.jsonl', workOrders(70, 30));
    await vi.waitFor(() => expect(relay.inbox.counts().events).toBe(100), { timeout: 10_000 });
    await vi.waitFor(() => expect(overMqtt.status().outbox.pending).toBe(0));
    expect(overMqtt.status().uplink).toMatchObject({ state: 'connected' });
    const distinct = relay.inbox.db.prepare('SELECT count(DISTINCT id) AS n FROM inbox').get() as { n: number };
    expect(distinct.n).toBe(100);
  });
});
