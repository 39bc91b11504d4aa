/**
 * The relay's MQTT ingress: the embedded broker or an external broker's consumer, chosen by
 * config, both feeding the same batch intake (and so the same inbox path) as the WebSocket
 * ingress. See protocols/uplink/MQTT.md for the topics and the broker setup.
 */
import type { Logger } from '../../../protocols/log.js';
import type { AgentDirectory } from '../agent-auth.js';
import type { BatchIntake } from '../batch-intake.js';
import type { IngressObserver } from '../observer.js';
import type { ConnectedAgent } from '../ws-ingress.js';
import type { MqttIngressConfig } from './config.js';
import { EmbeddedBroker, type BrokerPorts } from './embedded-broker.js';
import { ExternalBrokerConsumer, type ExternalBrokerStatus } from './external-broker.js';
import { MqttBatchHandler } from './mqtt-batches.js';

export type { BrokerPorts } from './embedded-broker.js';

export class MqttIngress {
  private readonly embedded: EmbeddedBroker | undefined;
  private readonly external: ExternalBrokerConsumer | undefined;

  constructor(deps: { config: MqttIngressConfig; agents: AgentDirectory; intake: BatchIntake; maxInFlight: number; observer?: IngressObserver | undefined; logger: Logger }) {
    const logger = deps.logger.child({ transport: 'mqtt' });
    const handler = new MqttBatchHandler({ agents: deps.agents, intake: deps.intake, maxInFlight: deps.maxInFlight, logger });
    if (deps.config.listeners) {
      this.embedded = new EmbeddedBroker({
        config: deps.config.listeners,
        agents: deps.agents,
        handler,
        maxFrameBytes: deps.intake.limits.maxFrameBytes,
        observer: deps.observer,
        logger,
      });
    } else if (deps.config.external) {
      this.external = new ExternalBrokerConsumer({ config: deps.config.external, handler, maxFrameBytes: deps.intake.limits.maxFrameBytes, logger });
    }
  }

  async start(): Promise<void> {
    await this.embedded?.start();
    this.external?.start();
  }

  /** Embedded broker: the ports it listens on. */
  get ports(): BrokerPorts {
    return this.embedded?.ports ?? {};
  }

  /** Agents connected to the embedded broker (an external broker does not tell). */
  connected(): ConnectedAgent[] {
    return this.embedded?.connected() ?? [];
  }

  status(): { mode: 'embedded'; ports: BrokerPorts; agents: number } | ({ mode: 'external' } & ExternalBrokerStatus) {
    if (this.external) return { mode: 'external', ...this.external.status() };
    return { mode: 'embedded', ports: this.ports, agents: this.connected().length };
  }

  async close(): Promise<void> {
    await this.embedded?.close();
    await this.external?.close();
  }
}
