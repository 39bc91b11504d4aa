export { NetSuiteSink, type NetSuiteSinkState, type NetSuiteSinkOptions } from './netsuite-sink.js';
export {
  NetSuiteSinkConfig,
  NetSuiteAuth,
  NetSuiteMapping,
  NetSuiteSelectField,
  defaultNetSuiteMappings,
  netSuiteBaseUrl,
  type NetSuiteSinkConfigInput,
  type NetSuiteMappingInput,
} from './config.js';
export { planWrites, type WritePlan } from './plan.js';
export type { GovernanceLimits } from './rest-client.js';
export { NetSuiteRecords, EXTERNAL_ID_FIELD } from './records.js';
