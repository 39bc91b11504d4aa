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
export {
  describeCertificate,
  ensureOwnCertificate,
  listPki,
  trustRejected,
  type CertificateInfo,
  type OwnCertificate,
  type PkiListing,
  type TrustSelection,
} from './pki.js';
export {
  describeSecurityProblem,
  SECURITY_MODES,
  SECURITY_POLICIES,
  type OpcUaSecurityModeName,
  type OpcUaSecurityPolicyName,
  type SecurityProblem,
} from './security.js';
export { routeNodeOpcuaLogs } from './node-opcua-logs.js';
