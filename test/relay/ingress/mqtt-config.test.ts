import { describe, expect, it } from 'vitest';
import { RelayConfig } from '../../../relay/config.js';
import { MqttIngressConfig } from '../../../relay/ingress/mqtt/config.js';

const external = { url: 'mqtts://broker:8883', username: 'relay-1', password: 'secret' };

describe('relay MQTT config', () => {
  it('takes exactly one of the embedded broker\'s listeners or an external broker', () => {
    expect(() => MqttIngressConfig.parse({ listeners: { tls: { certFile: 'c', keyFile: 'k' } } })).not.toThrow();
    expect(() => MqttIngressConfig.parse({ external })).not.toThrow();
    expect(() => MqttIngressConfig.parse({ listeners: { tcp: {} }, external })).toThrow(/exactly one/);
    expect(() => MqttIngressConfig.parse({})).toThrow(/exactly one/);
    expect(() => MqttIngressConfig.parse({ listeners: {} })).toThrow(/at least one/);
  });

  it('defaults an external relay to a non-persistent session in the plantlink-relay share group', () => {
    expect(MqttIngressConfig.parse({ external }).external).toMatchObject({ sharedGroup: 'plantlink-relay', sessionExpirySeconds: 0 });
    expect(() => MqttIngressConfig.parse({ external: { ...external, sharedGroup: 'a/b' } })).toThrow();
  });

  it('refuses, with MQTT configured, an agent whose plant cannot be a topic level', () => {
    const config = (plant: string, mqtt: boolean) => ({
      relay: {},
      ...(mqtt ? { mqtt: { external } } : {}),
      agents: [{ id: 'agent-a', plant, tokenHash: `sha256:${'0'.repeat(64)}` }],
      sinks: [{ name: 'crm', kind: 'webhook', url: 'https://example.com/hook', secret: 'x'.repeat(32) }],
      routes: [{ match: {}, sinks: ['crm'] }],
    });
    expect(() => RelayConfig.parse(config('plant#1', true))).toThrow(/topic level/);
    expect(() => RelayConfig.parse(config('plant#1', false))).not.toThrow();
  });
});
