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
