/**
 * The uplink over MQTT: topic layout, version 1. The frames are those of frames.ts; only
 * the transport differs from the WebSocket uplink.
 *
 *   plantlink/v1/{plant}/{agentId}/events   agent -> relay   batch (and ledger) frames, QoS 1, never retained; status frames, QoS 0
 *   plantlink/v1/{plant}/{agentId}/acks     relay -> agent   welcome (retained), ack, ledger-ack and error frames, QoS 1
 *
 * Invariants
 * - One agent publishes on exactly one events topic and reads exactly one acks topic, both
 *   named by the plant it is registered for and its agent id. The broker enforces that: the
 *   embedded broker by itself, an external broker only by its ACL (see MQTT.md), which is
 *   therefore REQUIRED. Frames carry no signature: the relay takes the agent's identity from
 *   the topic. It checks that the topic's agent is registered for the topic's plant and that
 *   every event is that plant's, but it cannot tell who published. With a broker ACL that
 *   lets an agent write another agent's events topic, that agent can send events as the other
 *   one (for the other's plant); with one that lets it write another's acks topic, it can
 *   forge acks that make the other delete events it never delivered.
 * - MQTT username = agent id = client id; password = the agent's token. Binding the client
 *   id to the username keeps one agent from taking over another's persistent session.
 * - A PUBACK only says the broker has the batch. The agent deletes outbox rows only on the
 *   relay's `ack` frame on its acks topic, which the relay publishes after its inbox commit.
 *   Lost acks (broker restart, relay crash, a shared-subscription member dying) are covered by
 *   the agent resending from its outbox on reconnect or after an ack timeout; the relay
 *   dedupes on (source, id), so a resend is harmless.
 * - The retained `welcome` on the acks topic carries the relay's limits and is re-sent by the
 *   broker on every SUBSCRIBE; the agent sends nothing before it has one.
 * - Batch numbers are unique per agent across connections and restarts (they start at a
 *   random offset), because a persistent session may deliver an ack from an earlier
 *   connection: it must never be mistaken for the ack of a new batch.
 * - Plants and agent ids are single topic levels: no `/`, `+`, `#` or NUL.
 */

export const TOPIC_ROOT = 'plantlink/v1';

/** The subscription that receives every agent's batches. */
export const EVENTS_FILTER = `${TOPIC_ROOT}/+/+/events`;

/** The same, as an MQTT 5 shared subscription: each message goes to one member of `group`. */
export const sharedEventsFilter = (group: string): string => `$share/${group}/${EVENTS_FILTER}`;

export const eventsTopic = (plant: string, agentId: string): string => `${TOPIC_ROOT}/${plant}/${agentId}/events`;
export const acksTopic = (plant: string, agentId: string): string => `${TOPIC_ROOT}/${plant}/${agentId}/acks`;

/** Whether `value` can be one topic level (plants and agent ids are put into topics as they are). */
export function isTopicLevel(value: string): boolean {
  return value.length > 0 && !/[/+#\u0000]/.test(value);
}

/** Plant and agent id of an events topic, or undefined if `topic` is not one. */
export function parseEventsTopic(topic: string): { plant: string; agentId: string } | undefined {
  const parts = topic.split('/');
  if (parts.length !== 5 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT || parts[4] !== 'events') return undefined;
  const [, , plant, agentId] = parts as [string, string, string, string, string];
  if (!isTopicLevel(plant) || !isTopicLevel(agentId)) return undefined;
  return { plant, agentId };
}
