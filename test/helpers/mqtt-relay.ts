import { issueToken } from '../../relay/ingress/agent-auth.js';
import type { z } from 'zod';
import type { MqttIngressConfig } from '../../relay/ingress/mqtt/config.js';
import { RelayConfig } from '../../relay/config.js';
import { Relay } from '../../relay/relay.js';
import { testLogger } from './temp.js';

/** Agents every MQTT test relay knows: agent-a speaks for plant-a, agent-b for plant-b. */
export function testAgents() {
  const a = issueToken('agent-a');
  const b = issueToken('agent-b');
  return {
    tokens: { a: a.token, b: b.token },
    registry: [
      { id: 'agent-a', plant: 'plant-a', tokenHash: a.tokenHash },
      { id: 'agent-b', plant: 'plant-b', tokenHash: b.tokenHash },
    ],
  };
}

/**
 * A real relay (WebSocket ingress, MQTT ingress, SQLite inbox) on loopback ports. Its one route
 * matches no event type we send, so events are stored in the inbox and never delivered: the
 * tests look at the inbox, not at a sink.
 */
export async function startMqttRelay(
  dataDir: string,
  mqtt: z.input<typeof MqttIngressConfig>,
  options: { agents?: ReturnType<typeof testAgents>; ingress?: Partial<RelayConfig['ingress']> } = {},
) {
  const agents = options.agents ?? testAgents();
  const config = RelayConfig.parse({
    relay: { dataDir, listen: { host: '127.0.0.1', port: 0 } },
    ingress: { maxBatchEvents: 100, maxFrameBytes: 256 * 1024, heartbeatMs: 60_000, ...options.ingress },
    mqtt,
    agents: agents.registry,
    sinks: [{ name: 'crm', kind: 'webhook', url: 'http://127.0.0.1:9/never', secret: 'x'.repeat(32) }],
    routes: [{ match: { type: 'com.plantlink.test.nothing' }, sinks: ['crm'] }],
  });
  const relay = new Relay(config, { logger: testLogger() });
  await relay.start();
  return {
    relay,
    tokens: agents.tokens,
    agents,
    inbox: relay.inbox,
    ports: relay.mqttPorts,
    stop: () => relay.stop(),
  };
}
