/** The plant-floor MQTT source: what the agent needs to configure and run it. */
export { MqttSourceConfig, type MqttSourceConfigInput } from './config.js';
export { MqttSource, type MessageOutcome, type MqttSourceEvents } from './mqtt-source.js';
export { decodeSparkplug, encodeSparkplug, parseSparkplugTopic, type SparkplugRecord } from './sparkplug.js';
