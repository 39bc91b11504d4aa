/**
 * What the relay does with a message on an agent's events topic, the same for the embedded
 * broker and an external one: who sent it, the batch intake, and the frame to publish back on
 * that agent's acks topic.
 *
 * Invariants
 * - The agent is the one the topic names, looked up in the relay's own registry; a topic
 *   whose agent id is unknown, or whose plant is not that agent's registered plant, gets a
 *   `forbidden_topic` error and nothing is stored, and the intake checks each event's plant
 *   and source against that registration.
 * - The topic is all the relay knows of the sender. With an external broker, who may publish
 *   on which topic is the broker's ACL alone (REQUIRED, see MQTT.md): an ACL that lets one
 *   agent write another's events topic lets it send events as that agent, for that agent's
 *   plant, and the relay cannot tell; one that lets it write another's acks topic lets it
 *   forge that agent's acks.
 * - The reply (an ack, or a ledger-ack) is computed after the intake resolved, i.e. after the store's commit. One
 *   agent's messages are handled one at a time in arrival order (a queue per agent), so this
 *   replica's acks to an agent leave in the order its batches came.
 */
import type { Logger } from '../../../protocols/log.js';
import { LEDGER_FEATURE, STATUS_FEATURE, type ErrorFrame, type WelcomeFrame } from '../../../protocols/uplink/frames.js';
import { acksTopic, isTopicLevel, parseEventsTopic } from '../../../protocols/uplink/mqtt-topics.js';
import type { AgentCredential, AgentDirectory } from '../agent-auth.js';
import { batchNumberOf, SerialQueue, type BatchIntake } from '../batch-intake.js';

/** The MQTT topic protocol version (`plantlink/v1/...`). */
const MQTT_PROTOCOL = 1;

export interface Reply {
  topic: string;
  payload: string;
}

export interface Handled {
  /** What to publish on the agent's acks topic, if anything. */
  reply: Reply | undefined;
  /** Events in the batch, when it was acknowledged. */
  ackedEvents?: number;
}

export class MqttBatchHandler {
  private readonly logs = new Map<string, Logger>();
  private readonly queues = new Map<string, SerialQueue>();

  constructor(
    private readonly deps: {
      agents: AgentDirectory;
      intake: BatchIntake;
      maxInFlight: number;
      logger: Logger;
    },
  ) {}

  /** Handles one message from an events topic; returns the frame for the agent's acks topic, if any. */
  async onMessage(topic: string, payload: Buffer): Promise<Handled> {
    const where = parseEventsTopic(topic);
    if (!where) {
      this.deps.logger.warn({ topic }, 'message on a topic that is not an agent events topic; ignored');
      return { reply: undefined };
    }
    const reply = acksTopic(where.plant, where.agentId);
    const agent = this.deps.agents.get(where.agentId);
    if (!agent || agent.plant !== where.plant) {
      const reason = agent
        ? `agent ${agent.id} is registered for plant "${agent.plant}", not "${where.plant}"`
        : `no agent "${where.agentId}" is registered at this relay`;
      this.deps.logger.warn({ topic, reason }, 'batch refused: its topic names an agent or plant this relay does not have');
      return { reply: { topic: reply, payload: errorFrame('forbidden_topic', reason, batchNumberOf(payload)) } };
    }
    let queue = this.queues.get(agent.id);
    if (!queue) this.queues.set(agent.id, (queue = new SerialQueue()));
    const result = await queue.run(() => this.deps.intake.handle(agent, payload, this.logFor(agent)));
    switch (result.kind) {
      case 'ack':
        return { reply: { topic: reply, payload: JSON.stringify(result.frame) }, ackedEvents: result.events };
      case 'status':
        return { reply: undefined };
      case 'ledger':
        return { reply: { topic: reply, payload: JSON.stringify(result.frame) } };
      case 'error':
        this.logFor(agent).warn({ code: result.frame.code, reason: result.frame.reason, batch: result.frame.batch }, 'batch refused');
        return { reply: { topic: reply, payload: JSON.stringify(result.frame) } };
    }
  }

  /** One welcome per registered agent, to be published retained on its acks topic. */
  welcomes(): Reply[] {
    const limits = this.deps.intake.limits;
    return this.deps.agents
      .all()
      .filter((a) => isTopicLevel(a.plant))
      .map((agent) => {
        const welcome: WelcomeFrame = {
          t: 'welcome',
          protocol: MQTT_PROTOCOL,
          agent: agent.id,
          plant: agent.plant,
          maxFrameBytes: limits.maxFrameBytes,
          maxBatchEvents: limits.maxBatchEvents,
          maxInFlight: this.deps.maxInFlight,
          features: [STATUS_FEATURE, LEDGER_FEATURE],
        };
        return { topic: acksTopic(agent.plant, agent.id), payload: JSON.stringify(welcome) };
      });
  }

  private logFor(agent: AgentCredential): Logger {
    let log = this.logs.get(agent.id);
    if (!log) {
      log = this.deps.logger.child({ agent: agent.id, plant: agent.plant });
      this.logs.set(agent.id, log);
    }
    return log;
  }
}

function errorFrame(code: ErrorFrame['code'], reason: string, batch: number | undefined): string {
  const frame: ErrorFrame = { t: 'error', code, reason, ...(batch === undefined ? {} : { batch }) };
  return JSON.stringify(frame);
}
