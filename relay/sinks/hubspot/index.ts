export { HubSpotSink, type HubSpotSinkState } from './hubspot-sink.js';
export {
  HubSpotSinkConfig,
  HubSpotMapping,
  defaultHubSpotMappings,
  HUBSPOT_MAX_BATCH_INPUTS,
  type HubSpotSinkConfigInput,
  type HubSpotMappingInput,
} from './config.js';
export { planWrites, type UpsertWrite, type WritePlan } from './plan.js';
export { nextRound, toCalls, type Call, type PendingWrite } from './rounds.js';
export { parseRateHeaders, describeHubSpotError, type HubSpotQuota } from './classify.js';
export { HubSpotRecords } from './records.js';
