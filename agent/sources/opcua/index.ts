/** The OPC UA source: what the agent needs to configure and run it. */
export { OpcUaSourceConfig, type OpcUaSourceConfigInput, type OpcUaLineConfig } from './config.js';
export { OpcUaSource } from './opcua-source.js';
export { applyChanges, initialLineState, type LineState, type LineChange, type LineContext } from './line-machine.js';
