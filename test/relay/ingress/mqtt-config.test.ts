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

  it('listens without TLS on loopback by default, and off loopback only with allowInsecure', () => {
    const listeners = (l: object) => MqttIngressConfig.parse({ listeners: l }).listeners;
    expect(listeners({ tcp: {}, ws: {} })).toMatchObject({ tcp: { host: '127.0.0.1' }, ws: { host: '127.0.0.1' } });
    expect(() => listeners({ tcp: { host: '0.0.0.0' } })).toThrow(/clear text/);
    expect(() => listeners({ ws: { host: '10.1.2.3' } })).toThrow(/clear text/);
    expect(() => listeners({ tcp: { host: '0.0.0.0', allowInsecure: true } })).not.toThrow();
    expect(() => listeners({ ws: { host: '0.0.0.0', tls: { certFile: 'c', keyFile: 'k' } } })).not.toThrow();
    expect(() => listeners({ tls: { host: '0.0.0.0', certFile: 'c', keyFile: 'k' } })).not.toThrow();
    expect(() => listeners({ tcp: { host: '::1' } })).not.toThrow();
  });

  it('refuses an external broker URL in clear text off loopback unless allowInsecure, and any URL carrying credentials', () => {
    const parse = (e: object) => MqttIngressConfig.parse({ external: { ...external, ...e } });
    expect(() => parse({ url: 'mqtt://broker.example.com:1883' })).toThrow(/clear text/);
    expect(() => parse({ url: 'ws://broker.example.com/mqtt' })).toThrow(/clear text/);
    expect(() => parse({ url: 'mqtt://broker.example.com:1883', allowInsecure: true })).not.toThrow();
    expect(() => parse({ url: 'mqtt://127.0.0.1:1883' })).not.toThrow();
    expect(() => parse({ url: 'mqtts://relay-1:secret@broker.example.com:8883' })).toThrow(/credentials/);
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
