import { describe, expect, it } from 'vitest';
import { AgentConfig } from '../../../agent/config.js';
import { MqttUplinkConfig } from '../../../agent/uplink/mqtt-config.js';

const base = { kind: 'mqtt', token: 'agent-a.0123456789abcdef' };

describe('MQTT uplink config', () => {
  it('refuses a clear-text broker URL off loopback unless explicitly allowed', () => {
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'mqtt://broker.example.com:1883' })).toThrow(/clear text/);
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'ws://broker.example.com/mqtt' })).toThrow(/clear text/);
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'mqtt://broker.example.com:1883', allowInsecure: true })).not.toThrow();
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'mqtts://broker.example.com:8883' })).not.toThrow();
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'wss://broker.example.com/mqtt' })).not.toThrow();
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'mqtt://127.0.0.1:1883' })).not.toThrow();
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'https://broker.example.com' })).toThrow(/mqtt:\/\//);
  });

  it('refuses a broker URL carrying credentials (the token is the password, and never logged)', () => {
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'mqtts://agent-a:s3cret@broker.example.com:8883' })).toThrow(/credentials/);
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'wss://agent-a@broker.example.com/mqtt' })).toThrow(/credentials/);
  });

  it('defaults to MQTT 3.1.1 (the embedded broker\'s) and takes only 4 or 5', () => {
    expect(MqttUplinkConfig.parse({ ...base, url: 'mqtts://b:8883' }).protocolVersion).toBe(4);
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'mqtts://b:8883', protocolVersion: 3 })).toThrow();
    expect(() => MqttUplinkConfig.parse({ ...base, url: 'mqtts://b:8883', clean: true })).toThrow(/clean/);
  });

  it('refuses, with an MQTT uplink, a plant that cannot be a topic level', () => {
    const config = (plant: string, kind: 'mqtt' | 'websocket') => ({
      agent: { id: 'agent-a', plant },
      uplink: kind === 'mqtt' ? { ...base, url: 'mqtts://b:8883' } : { kind, url: 'wss://relay/v1/uplink', token: base.token },
      sources: [{ name: 'f', kind: 'file', folder: '/tmp/drop', format: { type: 'jsonl' }, map: { event: 'milestone', key: 'WO', occurredAt: 'At', fields: { milestone: 'M', equipment: 'L' } } }],
    });
    expect(() => AgentConfig.parse(config('plant/a', 'mqtt'))).toThrow(/topic level/);
    expect(() => AgentConfig.parse(config('plant/a', 'websocket'))).not.toThrow();
    expect(() => AgentConfig.parse(config('plant-a', 'mqtt'))).not.toThrow();
  });
});
