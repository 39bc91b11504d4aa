/** Shared plant-side OPC UA adapter. */
export {
  OpcUaSubscriptionClient,
  type ClientHealth,
  type ClientHealthState,
  type MonitoredItemSpec,
  type OpcUaIdentity,
  type OpcUaSecurity,
  type ResubscribedInfo,
  type SubscriptionClientEvents,
  type SubscriptionClientOptions,
} from './subscription-client.js';
export { type Change } from './changes.js';
export { routeNodeOpcuaLogs } from './node-opcua-logs.js';
