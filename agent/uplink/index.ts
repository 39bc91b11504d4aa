/**
 * Picks the uplink for the configured transport. Every uplink keeps the same contract
 * (see uplink.ts), so switching `uplink.kind` changes how events travel, never which
 * events arrive or when they leave the outbox.
 */
import type { Logger } from '../../protocols/log.js';
import type { Outbox } from '../outbox/outbox.js';
import type { WebSocketUplinkConfig } from './config.js';
import type { MqttUplinkConfig } from './mqtt-config.js';
import { MqttUplink, type AgentIdentity } from './mqtt-uplink.js';
import type { Uplink } from './uplink.js';
import { WebSocketUplink } from './ws-uplink.js';

export type { Uplink, UplinkHealth, UplinkState } from './uplink.js';
export type { AgentIdentity } from './mqtt-uplink.js';

export function createUplink(config: WebSocketUplinkConfig | MqttUplinkConfig, outbox: Outbox, identity: AgentIdentity, logger: Logger): Uplink {
  switch (config.kind) {
    case 'websocket':
      return new WebSocketUplink(config, outbox, logger);
    case 'mqtt':
      return new MqttUplink(config, outbox, identity, logger);
  }
}
