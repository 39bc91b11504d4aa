import { describe, expect, it } from 'vitest';
import { MqttSourceConfig } from '../../../../agent/sources/mqtt/index.js';
import { AgentConfig } from '../../../../agent/config.js';

const base = {
  kind: 'mqtt',
  name: 'line-mqtt',
  url: 'mqtt://broker.plant.local:1883',
  clientId: 'plantlink-agent-a',
  topics: ['plant/+/events'],
  map: { event: 'milestone', key: 'payload.workOrder', occurredAt: 'payload.at' },
};

describe('MQTT source config', () => {
  it('fills the defaults: MQTT 3.1.1, JSON, a week of session on MQTT 5', () => {
    expect(MqttSourceConfig.parse(base)).toMatchObject({ protocolVersion: 4, format: 'json', keepaliveSeconds: 30, reconnectMs: 5000, sessionExpirySeconds: 604_800 });
  });

  it('refuses bad topic filters, Sparkplug topics outside spBv1.0, a lone username, tls on mqtt://, a bad `when` and unknown keys', () => {
    const issue = (patch: object) => MqttSourceConfig.safeParse({ ...base, ...patch }).error?.issues[0]?.path;
    expect(issue({ topics: ['plant/#/x'] })).toEqual(['topics', 0]);
    expect(issue({ topics: ['plant/a+'] })).toEqual(['topics', 0]);
    expect(issue({ format: 'sparkplug', topics: ['spBv1.0/G/#', 'plant/#'] })).toEqual(['topics', 1]);
    expect(issue({ username: 'u' })).toEqual(['password']);
    expect(issue({ tls: { rejectUnauthorized: true } })).toEqual(['tls']);
    expect(issue({ when: 'messageType = ' })).toEqual(['when']);
    expect(issue({ url: 'http://broker' })).toEqual(['url']);
    expect(issue({ qos: 0 })).toEqual([]);
  });

  it('is a source kind of the agent config', () => {
    const config = AgentConfig.parse({
      agent: { id: 'agent-a', plant: 'plant-a' },
      uplink: { kind: 'websocket', url: 'wss://relay.example.com/agent', token: 'x'.repeat(32) },
      sources: [base],
    });
    expect(config.sources[0]?.kind).toBe('mqtt');
  });
});
