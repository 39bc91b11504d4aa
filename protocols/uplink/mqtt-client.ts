/**
 * What both ends of the MQTT uplink (the agent's client, the relay's external-broker client)
 * need from mqtt.js beyond its defaults.
 */
import type { MqttClient } from 'mqtt';

/**
 * Turns Nagle's algorithm off on an mqtt.js client's TCP or TLS socket (mqtt.js leaves it on;
 * the ws library already does it for WebSocket). With it on, a small publish written while an
 * earlier one is unacknowledged waits for the peer's delayed ACK: ~40 ms per batch round trip.
 * Call it for every new client, and on every reconnect of one (each has a new socket).
 */
export function noDelay(client: MqttClient): void {
  (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
}

/** MQTT's own overhead on one uplink frame (topic, packet id, properties), on top of `maxFrameBytes`. */
export const MQTT_HEADROOM_BYTES = 64 * 1024;

/**
 * The largest packet an agent takes from the broker (MQTT 5 `maximumPacketSize`). Acks list
 * every refused event with its reason, so they are not bounded by `maxFrameBytes`; the same
 * cap as the WebSocket uplink's `maxPayload`.
 */
export const AGENT_MAX_PACKET_BYTES = 16 * 1024 * 1024;

/**
 * A broker URL fit for logs and status: any `user:password@` removed. The configs refuse
 * credentials in the URL; this is the second line of defence.
 */
export function urlForLogs(url: string): string {
  try {
    const u = new URL(url);
    if (u.username === '' && u.password === '') return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
